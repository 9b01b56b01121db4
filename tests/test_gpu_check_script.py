"""scripts/gpu_check.sh, checked where it will not run for real: on a machine without a GPU.

The GPU loan is one short slot, so the script's plumbing (step selection,
results written as it goes, the files that come back, reruns) is tested here
with --dry-run and with GPU_CHECK_SELFTEST=1, which swaps the real steps for
five tiny fake ones and skips the CUDA check and the install.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STEPS = [
    "tests",
    "reference_impls",
    "bandwidth",
    "cuda_timer",
    "verdicts_host",
    "verdicts_device",
    "engine_dtypes",
    "engine_float16",
    "xdist",
    "bench_equivalence",
    "compile",
]
FAKE_STEPS = {
    "ok": "passed",
    "fails": "failed",
    "slow": "timeout",
    "expects": "failed",
    "forbids": "failed",
}


def gpu_check(
    *args: str, out: Path | None = None, selftest: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_SELFTEST")}
    if out is not None:
        environ["OUT"] = str(out)
    if selftest:
        environ["GPU_CHECK_SELFTEST"] = "1"
    environ.update(env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environ, timeout=120
    )


def listed(stdout: str) -> list[tuple[str, int, str]]:
    """(name, timeout, command) of each step line of a --dry-run."""
    steps = []
    for line in stdout.splitlines():
        match = re.match(r"^(\w+) +(\d+)s  (.+?)(?:   # before: .*)?$", line)
        if match:
            steps.append((match[1], int(match[2]), match[3]))
    return steps


def results(out: Path) -> list[list[str]]:
    return [line.split("\t") for line in (out / "results.tsv").read_text().splitlines()]


def test_the_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_a_dry_run_lists_every_step_with_its_timeout_and_command_and_needs_no_gpu():
    result = gpu_check("--dry-run", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr
    steps = listed(result.stdout)
    assert [name for name, _, _ in steps] == STEPS
    commands = dict((name, command) for name, _, command in steps)
    assert commands["tests"].startswith("python3 -m pytest")
    assert " tests --device=cuda" in commands["tests"]
    assert " -x" not in commands["tests"]  # one failure must not hide the rest
    assert "--dtype=float32,float64,bfloat16" in commands["engine_dtypes"]
    assert "--dtype=float16" in commands["engine_float16"]
    assert "-n 2" in commands["xdist"]
    assert commands["reference_impls"].startswith("python3 -m reference_impls --device=cuda")
    assert commands["bandwidth"] == "python3 -m reference_impls.bandwidth --device=cuda --sweep"
    assert "bench/bench_cuda_timer.py" in commands["cuda_timer"]
    assert "--timer=host" in commands["verdicts_host"]
    assert "--timer=device" in commands["verdicts_device"]
    assert "--effective-torch-variants=compile" in commands["compile"]
    assert all(0 < limit <= 240 for _, limit, _ in steps)  # no step may take the whole budget
    assert "pip install --no-deps --no-build-isolation" in result.stdout
    assert "at most 480 s in all" in result.stdout


def test_only_picks_steps_and_a_dry_run_lists_just_those():
    result = gpu_check("--only=xdist,tests", "--dry-run")
    assert result.returncode == 0, result.stderr
    # in the script's order, not the order asked for
    assert [name for name, _, _ in listed(result.stdout)] == ["tests", "xdist"]


def test_an_unknown_step_is_a_usage_error_that_lists_the_steps():
    result = gpu_check("--only=tests,nope", "--dry-run")
    assert result.returncode == 2
    assert f"no step named 'nope'; steps: {','.join(STEPS)}" in result.stderr


def test_without_a_cuda_device_it_exits_2_at_once_and_says_so(tmp_path):
    # CUDA_VISIBLE_DEVICES hides any GPU, so this holds on a GPU machine too.
    out = tmp_path / "out"
    result = gpu_check("--only=tests", out=out, CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2
    assert "gpu_check.sh: torch sees no CUDA device here" in result.stderr
    assert "run this on a CUDA machine, or use --dry-run" in result.stderr
    assert not out.exists()  # nothing installed, nothing written


def test_versions_name_the_python_torch_triton_pytest_numpy_and_gpu_and_need_no_gpu():
    result = gpu_check("--versions", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for start in ("python 3.", "torch ", "triton", "pytest ", "pytest-benchmark ", "numpy "):
        assert any(line.startswith(start) for line in lines), (start, result.stdout)
    assert "CUDA: torch sees no device" in lines
    assert any(line.startswith("nvidia-smi") for line in lines)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "out"
    return out, gpu_check(out=out, selftest=True)


def test_a_failing_step_does_not_stop_the_others_and_each_leaves_a_result(first_run):
    out, run = first_run
    assert run.returncode == 1
    assert [(name, status) for name, status, *_ in results(out)] == list(FAKE_STEPS.items())
    by_name = {row[0]: row for row in results(out)}
    assert by_name["ok"][2:] == ["0", "0", "10", "3 passed in 0.01s"]
    assert by_name["fails"][5] == "1 failed, 2 passed in 0.02s"
    assert by_name["slow"][2] == "124" and by_name["slow"][5].startswith("killed after 1 s")
    assert by_name["expects"][5].endswith("missing: storage off")
    assert "found: SKIPPED [1] test_x.py:3: needs a CUDA device" in by_name["forbids"][5]


def test_what_comes_back_is_a_few_plainly_named_files(first_run):
    out, _ = first_run
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["logs.tar.gz", "results.tsv", "summary.md", "tails.txt"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in files)
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {f"{step}.log" for step in FAKE_STEPS} <= names
    tails = (out / "tails.txt").read_text()
    assert "===== fails: failed, rc=1, 0 s =====" in tails
    assert "FAILED test_x.py::test_y" in tails


def test_the_summary_has_a_row_per_step_and_the_command_to_rerun_the_failures(first_run):
    out, _ = first_run
    summary = (out / "summary.md").read_text()
    assert "| step | status | rc | seconds | timeout | result |" in summary
    assert "| ok | passed | 0 | 0 | 10 | 3 passed in 0.01s |" in summary
    assert "| slow | timeout | 124 |" in summary
    assert "pytest " in summary and "torch " in summary  # the versions, at the top
    assert "`bash scripts/gpu_check.sh --only=fails,slow,expects,forbids`" in summary


def test_rerun_failed_runs_only_what_did_not_pass_and_keeps_the_earlier_rows(first_run, tmp_path):
    earlier, _ = first_run
    planned = gpu_check("--rerun-failed", f"--from={earlier}", "--dry-run", selftest=True)
    assert planned.returncode == 0, planned.stderr
    assert [name for name, _, _ in listed(planned.stdout)] == [
        "fails",
        "slow",
        "expects",
        "forbids",
    ]
    assert "# before: timeout" in planned.stdout

    out = tmp_path / "again"
    rerun = gpu_check("--rerun-failed", f"--from={earlier}", "--only=ok", out=out, selftest=True)
    assert rerun.returncode == 2  # --only and --rerun-failed together are ambiguous
    rerun = gpu_check("--rerun-failed", f"--from={earlier}", out=out, selftest=True)
    assert rerun.returncode == 1
    rows = results(out)
    assert [r[0] for r in rows[:5]] == list(FAKE_STEPS)  # the earlier run's lines come first
    assert [r[0] for r in rows[5:]] == ["fails", "slow", "expects", "forbids"]
    summary = (out / "summary.md").read_text()
    assert "| ok | passed | 0 | 0 | 10 | (earlier run) 3 passed in 0.01s |" in summary
    with tarfile.open(out / "logs.tar.gz") as tar:  # the earlier logs came along
        assert "ok.log" in {Path(n).name for n in tar.getnames()}


def test_rerun_failed_without_earlier_results_says_to_name_the_steps(tmp_path):
    result = gpu_check("--rerun-failed", "--dry-run", out=tmp_path)
    assert result.returncode == 2
    assert "pass the failed steps with --only=NAME,... instead" in result.stderr


def test_a_spent_budget_starts_no_step_and_records_why(tmp_path):
    out = tmp_path / "out"
    result = gpu_check("--budget=0", "--only=ok,fails", out=out, selftest=True)
    assert result.returncode == 1
    rows = results(out)
    assert [(r[0], r[1]) for r in rows] == [("ok", "not-run"), ("fails", "not-run")]
    assert rows[0][5] == "not started: 0 s of the 0 s budget left"
