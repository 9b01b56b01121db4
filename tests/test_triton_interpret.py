"""``--effective-torch-triton-interpret``: Triton kernels on CPU tensors, correctness only.

Each run is a fresh process: whether triton was imported, and the
environment the flag sets, are process-wide state.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None or importlib.util.find_spec("numpy") is None,
    reason="needs triton and numpy (pip install -e '.[triton]')",
)

KERNEL_TESTS = '''
import torch
import triton
import triton.language as tl


@triton.jit  # defined when the module is imported: interpreted only if the flag came first
def add_one(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + 1, mask=mask)


def triton_add_one(x):
    x = x.contiguous()  # the kernel indexes with stride 1 (the layout trial catches it otherwise)
    out = torch.empty_like(x)
    add_one[(triton.cdiv(x.numel(), 16),)](x, out, x.numel(), BLOCK=16)
    return out


def test_the_kernel_runs_on_cpu_tensors(assert_same_as_reference):
    assert_same_as_reference(triton_add_one, lambda x: x + 1, lambda make: (make(37),), check_grad=False)


def test_its_speed_is_not_judged(assert_faster_than_reference):
    assert_faster_than_reference(triton_add_one, lambda x: x + 1, lambda make: (make(37),))
'''


def _run(pytester: pytest.Pytester, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = pytester.path / "runner.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)], cwd=pytester.path, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@needs_triton
def test_a_module_defining_kernels_at_import_runs_them_interpreted_and_speed_is_skipped(pytester):
    pytester.makepyfile(test_kernels=KERNEL_TESTS)
    run = _run(
        pytester,
        """
        import os, sys
        import pytest

        os.environ.pop("TRITON_INTERPRET", None)
        code = pytest.main(["-rs", "-p", "no:cacheprovider", "--effective-torch-triton-interpret", "test_kernels.py"])
        print("TRITON_INTERPRET after the session:", os.environ.get("TRITON_INTERPRET"))
        sys.exit(code)
        """,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "1 passed, 1 skipped" in out
    assert (
        "effective-torch: Triton kernels run in Triton's interpreter (TRITON_INTERPRET=1, "
        "command line --effective-torch-triton-interpret): correctness only, speed verdicts skipped"
    ) in out
    assert "speed verdict skipped: Triton kernels are interpreted (TRITON_INTERPRET=1, as " in out
    assert "TRITON_INTERPRET after the session: None" in out  # put back as it was


@needs_triton
def test_triton_imported_before_the_flag_takes_effect_is_a_usage_error(pytester):
    pytester.makepyfile(test_kernels=KERNEL_TESTS)
    run = _run(
        pytester,
        """
        import os, sys
        import triton  # as a plugin or sitecustomize might, before the plugin sets the variable
        import pytest

        os.environ.pop("TRITON_INTERPRET", None)
        sys.exit(pytest.main(["-p", "no:cacheprovider", "--effective-torch-triton-interpret", "test_kernels.py"]))
        """,
    )
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert (
        "ERROR: --effective-torch-triton-interpret (from command line --effective-torch-triton-interpret): "
        "triton was imported before the plugin could set TRITON_INTERPRET=1, so kernels defined so far "
        "would run compiled, not interpreted; set TRITON_INTERPRET=1 in the environment instead"
    ) in run.stderr


def test_the_interpreter_with_a_cuda_device_is_a_usage_error(pytester, monkeypatch):
    pytester.makepyfile("def test_x(device):\n    pass\n")
    # Checked from what was asked for, before the devices are looked up, so
    # the combination is refused on a machine without a GPU too:
    monkeypatch.setenv("EFFECTIVE_TORCH_TRITON_INTERPRET", "1")
    result = pytester.runpytest_subprocess("--device=cuda", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --effective-torch-triton-interpret runs Triton kernels on CPU tensors through Triton's "
            "interpreter, so it cannot be combined with a CUDA device (triton interpret from environment "
            "variable EFFECTIVE_TORCH_TRITON_INTERPRET, devices from command line); run CUDA tests without "
            "it, where the kernels run compiled"
        ]
    )
