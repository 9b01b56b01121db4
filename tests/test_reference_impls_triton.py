"""The Triton pairs of ``reference_impls``: where they run, how they skip, the main job.

The kernels themselves are tested in ``test_reference_impls_triton_kernels.py``,
which needs Triton's interpreter for the whole process (``TRITON_INTERPRET=1``
decides, once, how kernels are defined) or a CUDA device. A plain ``pytest``
session does not switch itself to the interpreter: here that file and
``python -m reference_impls -k triton`` run in subprocesses with
``TRITON_INTERPRET=1``, skipped only where triton is not installed. When this
process already interprets, the kernel file has run in-process and its
subprocess run is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import reference_impls
from reference_impls import CLAIMS, PAIRS, _suite, triton_ops
from reference_impls.triton_ops import (
    INTERPRET_ENV,
    interpreting,
    triton_missing,
    triton_skip_reason,
)

ROOT = Path(__file__).resolve().parent.parent
KERNEL_TESTS = Path(__file__).resolve().parent / "test_reference_impls_triton_kernels.py"
TRITON_PAIRS = ["batch_gather.triton", "cross_entropy.triton"]

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None or importlib.util.find_spec("numpy") is None,
    reason="triton (and numpy for its interpreter) not installed: pip install 'pytest-effective-torch[triton]'",
)


def _environ(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EFFECTIVE_TORCH_") and k != INTERPRET_ENV
    }
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


def _row(stdout: str, key: str) -> list[str]:
    table = stdout.split("reference_impls: the guide's claims")[1]
    return [line for line in table.splitlines() if line.startswith(key + " ")]


# ---------------------------------------------------------------- where they run


def test_cuda_runs_the_kernels_compiled_and_cpu_only_under_the_interpreter(monkeypatch):
    monkeypatch.setattr(triton_ops, "triton_missing", lambda: None)
    monkeypatch.delenv(INTERPRET_ENV, raising=False)
    assert triton_skip_reason("cuda:0") is None
    assert triton_skip_reason("cuda", timing=True) is None
    reason = triton_skip_reason("cpu")
    assert reason is not None and "--effective-torch-triton-interpret" in reason and "-k triton" in reason
    assert "timed on CUDA only" in triton_skip_reason("cpu", timing=True)
    assert "no backend for mps" in triton_skip_reason("mps")

    monkeypatch.setenv(INTERPRET_ENV, "1")
    assert interpreting()
    assert triton_skip_reason("cpu") is None
    assert "never timed" in triton_skip_reason("cpu", timing=True)
    assert "never timed" in triton_skip_reason("cuda", timing=True)


def test_without_triton_every_reason_is_the_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    for device in ("cpu", "cuda"):
        assert (
            triton_skip_reason(device)
            == "triton is not installed (pip install 'pytest-effective-torch[triton]')"
        )
    assert triton_missing() is not None


def test_the_interpreter_also_needs_numpy(monkeypatch):
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "numpy" else object()
    )
    monkeypatch.setenv(INTERPRET_ENV, "1")
    assert "needs numpy" in triton_missing()
    monkeypatch.delenv(INTERPRET_ENV)
    assert triton_missing() is None  # compiled kernels do not


def test_the_triton_pairs_are_registered_with_their_claims():
    for name in TRITON_PAIRS:
        pair = PAIRS[name]
        assert pair.triton and pair.compile_inputs is None and pair.differentiable
        ids = {c.id for c in CLAIMS if c.subject == name}
        assert {f"{name}:equal", f"{name}:faster", f"{name}:faster:backward"} <= ids
    assert PAIRS["batch_gather.triton"].exact and PAIRS["batch_gather.triton"].twice_differentiable
    assert not PAIRS["cross_entropy.triton"].twice_differentiable
    assert "cross_entropy.triton:stabler" in {c.id for c in CLAIMS}
    assert not any(p.triton for n, p in PAIRS.items() if n not in TRITON_PAIRS)


def test_the_suite_skips_triton_items_by_device_and_kind(monkeypatch):
    monkeypatch.setattr(triton_ops, "triton_missing", lambda: None)
    monkeypatch.delenv(INTERPRET_ENV, raising=False)
    pair = PAIRS["cross_entropy.triton"]
    faster = next(c for c in CLAIMS if c.id == "cross_entropy.triton:faster")
    assert _suite._triton_skip({"pair": pair, "device": "cuda"}) is None
    assert "--effective-torch-triton-interpret" in _suite._triton_skip({"pair": pair, "device": "cpu"})
    assert _suite._triton_skip({"pair": PAIRS["cross_entropy.stable"], "device": "cpu"}) is None
    monkeypatch.setenv(INTERPRET_ENV, "1")
    assert _suite._triton_skip({"pair": pair, "device": "cpu"}) is None
    assert "never timed" in _suite._triton_skip({"claim": faster, "device": "cpu"})


def test_the_triton_extra_installs_triton_and_numpy():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.split(r"[<>=!~ ;\[]", spec)[0] for spec in extras["triton"]}
    assert names == {"triton", "numpy"}


def test_the_bandwidth_report_says_why_it_does_not_time_triton_on_cpu(capsys):
    from reference_impls.bandwidth import main

    assert main(["--device=cpu", "--scale=0.001"]) == 0
    out = capsys.readouterr().out
    assert "vectorized gather:" in out
    line = next(line for line in out.splitlines() if line.startswith("Triton gather"))
    assert "not timed (" in line


@needs_triton
def test_the_tilings_are_powers_of_two_within_their_budgets():
    from reference_impls._triton_cross_entropy import TILE_ELEMENTS, cross_entropy_config
    from reference_impls._triton_gather import ROW_BYTES, TILE_BYTES, gather_config

    def pow2(x: int) -> bool:
        return x > 0 and x & (x - 1) == 0

    for rows, width, size in [(65536, 256, 4), (3, 7, 4), (100, 5000, 2), (1, 1, 8), (37, 24, 4)]:
        config = gather_config(rows, width, size)
        assert pow2(config.block_rows) and pow2(config.block_cols) and pow2(config.num_warps)
        assert config.block_rows * config.block_cols * size <= max(TILE_BYTES, ROW_BYTES)
        assert config.block_cols * size <= ROW_BYTES or config.block_cols == 1
        assert config.block_rows < 2 * rows and config.block_cols < 2 * width
    big = gather_config(65536, 256, 4)
    assert (big.block_rows, big.block_cols) == (16, 256)  # 16 KiB, whole 1 KiB rows
    assert big.grid(65536, 256) == (4096, 1)
    assert gather_config(10, 5000, 4).grid(10, 5000) == (3, 5)  # 4 rows x 1024 columns
    for rows, cols, acc in [
        (256, 1024, 4),
        (8, 10, 4),
        (4096, 50000, 4),
        (3, 4, 8),
        (4096, 4096, 8),
    ]:
        config = cross_entropy_config(rows, cols, acc)
        assert pow2(config.block_rows) and pow2(config.block_cols)
        assert config.block_rows * config.block_cols <= TILE_ELEMENTS * 4 // acc
        assert config.block_rows < 2 * rows and config.block_cols < 2 * cols


# ---------------------------------------------------------------- subprocess runs


@needs_triton
def test_the_kernels_compile_for_an_h200_with_wide_loads_without_one():
    # Compiled, not run: triton ships ptxas, so a CPU machine sees the PTX.
    done = _run([str(Path(__file__).resolve().parent / "_triton_ptx.py")], _environ())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ptx = json.loads(done.stdout)
    assert len(ptx) == 18
    # The gathered rows move in 128-bit loads and stores, never element-wise.
    for dtype, vector in [
        ("fp32", "v4.b32"),
        ("fp16", "v4.b32"),
        ("bf16", "v4.b32"),
        ("fp64", "v2.b64"),
    ]:
        ops = ptx[f"gather {dtype}"]
        assert f"ld.global.{vector}" in ops and f"st.global.{vector}" in ops, (dtype, ops)
        assert not any(op.startswith("st.global") and "v" not in op.split(".")[2] for op in ops), (
            ops
        )
    assert any(".add.v4.f32" in op for op in ptx["scatter_add atomic=True"])
    assert "ld.global.v4.b32" in ptx["cross_entropy forward fp32"]
    assert "st.global.v4.b32" in ptx["cross_entropy backward fp32 labels_grad=True"]


@needs_triton
@pytest.mark.skipif(
    interpreting(),
    reason="this process interprets: run test_reference_impls_triton_kernels.py in it directly",
)
def test_the_kernel_tests_pass_under_the_interpreter():
    done = _run(
        ["-m", "pytest", str(KERNEL_TESTS), "-p", "no:cacheprovider", "-q", "--device=cpu", "-rs",
         "--effective-torch-triton-interpret"],
        _environ(),
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 60 and "skipped" not in summary and "failed" not in summary, summary


@needs_triton
def test_python_m_reference_impls_k_triton_verifies_the_triton_pairs_on_cpu():
    done = _run(
        [
            "-m",
            "reference_impls",
            "-k",
            "triton",
            "--device=cpu",
            "--effective-torch-triton-interpret",
            "-p",
            "no:cacheprovider",
        ],
        _environ(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for key in (
        "batch_gather.triton:equal",
        "cross_entropy.triton:equal",
        "cross_entropy.triton:stabler",
    ):
        (line,) = _row(done.stdout, key)
        assert " verified " in line and "float32,float64,float16,bfloat16" in line, line
    assert "bitwise equal" in _row(done.stdout, "batch_gather.triton:equal")[0]
    assert "gradgradcheck too" in _row(done.stdout, "batch_gather.triton:gradcheck")[0]
    assert "first order" in _row(done.stdout, "cross_entropy.triton:gradcheck")[0]
    assert "500, grad [0.5, -0.5]" in _row(done.stdout, "cross_entropy.triton:stabler")[0]
    for key in ("batch_gather.triton:faster", "cross_entropy.triton:faster:backward"):
        (line,) = _row(done.stdout, key)
        assert " skipped " in line and "never timed" in line, line


@needs_triton
def test_without_the_interpreter_the_triton_pairs_skip_and_say_how_to_run_them():
    done = _run(
        [
            "-m",
            "reference_impls",
            "-k",
            "triton",
            "--device=cpu",
            "--benchmark-disable",
            "-p",
            "no:cacheprovider",
        ],
        _environ(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary, summary
    (line,) = _row(done.stdout, "batch_gather.triton:equal")
    assert " skipped " in line and "python -m reference_impls -k triton --effective-torch-triton-interpret" in line
    (line,) = _row(done.stdout, "cross_entropy.triton:faster")
    assert " skipped " in line and "timed on CUDA only" in line


def test_without_triton_the_package_imports_and_the_triton_pairs_skip_saying_so():
    # sys.modules["triton"] = None makes "import triton" fail as if it were
    # not installed, in a fresh interpreter.
    script = (
        "import sys; sys.modules['triton'] = None\n"
        "import reference_impls\n"
        "from reference_impls.__main__ import main\n"
        "from reference_impls.triton_ops import gather_triton\n"
        "import torch\n"
        "try:\n"
        "    gather_triton(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))\n"
        "except ImportError as e:\n"
        "    print('IMPORT ERROR:', e)\n"
        "sys.exit(main(['-k', 'triton', '--device=cpu', '--benchmark-disable', '-p', 'no:cacheprovider']))\n"
    )
    done = _run(["-c", script], _environ(**{INTERPRET_ENV: "1"}))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "IMPORT ERROR: triton is not installed" in done.stdout
    (line,) = _row(done.stdout, "cross_entropy.triton:equal")
    assert " skipped " in line and "triton is not installed" in line
    assert "batch_gather.flat_index" in reference_impls.PAIRS  # the rest is registered as usual


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@needs_triton
@pytest.mark.skipif(
    interpreting(), reason="CUDA kernels are compiled only without TRITON_INTERPRET"
)
def test_the_kernel_tests_pass_compiled_on_cuda():
    # Mostly Triton compiling each specialisation: spread over cores where xdist is.
    spread = ["-n", "4"] if importlib.util.find_spec("xdist") else []
    done = _run(
        ["-m", "pytest", str(KERNEL_TESTS), "-p", "no:cacheprovider", "-q", "--device=cuda", *spread],
        _environ(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
