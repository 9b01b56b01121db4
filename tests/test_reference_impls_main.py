"""``python -m reference_impls``: argument pass-through, item selection, the claims table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import reference_impls
from reference_impls import __main__ as main_module
from reference_impls._suite import MEASURED_KEY, ROW_KEY, ClaimTable, Row, table_lines

SUITE = Path(reference_impls.__file__).resolve().parent / "test_claims.py"


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Without TRITON_INTERPRET the Triton pairs skip on CPU (their runs under
    # the interpreter are in test_reference_impls_triton.py).
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EFFECTIVE_TORCH_") and k != "TRITON_INTERPRET"
    }
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reference_impls", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def test_pytest_args_put_the_suite_first_and_pass_everything_else_through():
    args = main_module.pytest_args(["--device=cuda", "-k", "softmax", "-x"])
    assert args[0] == str(SUITE)
    assert args[-4:] == ["--device=cuda", "-k", "softmax", "-x"]


def test_the_old_compile_flag_is_a_usage_error_pointing_at_the_variant_option(capsys):
    assert main_module.main(["--compile", "-q"]) == 4
    err = capsys.readouterr().err
    assert "--compile is gone" in err
    assert "use --effective-torch-variants=eager,compile" in err


def test_help_describes_the_main_job_without_running_pytest(capsys):
    assert main_module.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: python -m reference_impls [pytest arguments...]" in out
    assert "--device=cuda" in out and "--effective-torch-variants=eager,compile" in out


@pytest.fixture(scope="module")
def main_run() -> subprocess.CompletedProcess[str]:
    """The whole suite through the main job, speed verdicts off (as CI can afford).

    Every equivalence, gradcheck, stability and fit claim is verified here on
    each test run; the speed and memory verdicts skip, so a busy CI machine
    cannot fail them. The main job without --benchmark-disable decides them.
    """
    return run_main("--device=cpu", "--benchmark-disable", "-v", "-rs")


def table_row(result: subprocess.CompletedProcess[str], key: str) -> str:
    table = result.stdout.split("reference_impls: the guide's claims")[1]
    return next(row for row in table.splitlines() if row.startswith(key + " "))


def test_every_claim_but_speed_holds_and_the_table_lists_it(main_run):
    assert main_run.returncode == 0, main_run.stdout[-3000:] + main_run.stderr
    out = main_run.stdout
    assert "devices: cpu [command line]" in out
    assert "PytestAssertRewriteWarning" not in out + main_run.stderr
    assert "test_stabler[cpu-float16-softmax.stable:stabler] PASSED" in out
    table = out.split("reference_impls: the guide's claims")[1]
    assert table.splitlines()[1].split()[:3] == ["claim", "the", "guide"]
    for claim in reference_impls.CLAIMS:
        line = table_row(main_run, claim.id)
        expected = "skipped" if claim.kind in ("faster", "less_memory") else "verified"
        if reference_impls.PAIRS.get(claim.subject) and reference_impls.PAIRS[claim.subject].triton:
            expected = "skipped"  # CPU without Triton's interpreter
        if claim.kind == "caught":
            expected = "caught"
        assert expected in line, line
    line = table_row(main_run, "softmax.stable:stabler")
    assert "float32,float64,float16,bfloat16" in line
    assert "naive [nan, 0], candidate [1, 0]" in line
    assert "candidate 500, grad [0.5, -0.5]" in table_row(main_run, "cross_entropy.stable:stabler")
    assert "candidate shape () vs (3,)" in table_row(main_run, "broadcast_trap.sum_all:caught")


def test_speed_claims_skip_instead_of_failing_when_benchmarks_are_disabled(main_run):
    line = table_row(main_run, "row_sum.sum:faster")
    assert "skipped" in line and "benchmarks are disabled" in line


def test_by_default_nothing_runs_compiled(main_run):
    assert "-compile" not in main_run.stdout and ":compile" not in main_run.stdout


def test_under_the_compile_variant_eager_only_claims_and_pairs_without_compile_inputs_skip_saying_why():
    # Nothing here compiles: every selected compiled item skips at setup.
    result = run_main(
        "--effective-torch-variants=compile", "--benchmark-disable", "-rs",
        "-k", "(test_stabler and softmax) or (test_same_as_reference and torchscript)",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert "variant compile: test_stabler checks an eager claim (only equivalence and speed run compiled)" in out
    assert "variant compile: batch_gather.torchscript has no compile_inputs (not run compiled)" in out
    assert "compiled: " in table_row(result, "softmax.stable:stabler:compile")


def test_dtypes_pass_through_and_unsupported_ones_are_dropped_per_pair():
    result = run_main("--collect-only", "-q", "--dtype=float64,float16", "-k", "same_as_reference")
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [i for i in result.stdout.splitlines() if "::" in i]
    assert ids and all("-float64-" in i or "-float16-" in i for i in ids)
    assert any("row_sum.sum" in i and "float16" in i for i in ids)
    assert not any("row_sum.unbind" in i and "float16" in i for i in ids)
    assert "deselected" in result.stdout


def test_table_groups_dtypes_per_device_and_outcome():
    row = Row("softmax.stable:equal")
    row.results += [
        ("cpu", "float32", "verified", "worst 1%"),
        ("cpu", "float64", "verified", "worst 0%"),
        ("cpu", "float16", "FAILED", ""),
    ]
    lines = table_lines([row])
    assert lines[0].split() == [
        "claim",
        "the",
        "guide",
        "says",
        "device",
        "result",
        "dtypes",
        "measured",
    ]
    verified = next(line for line in lines if "verified" in line)
    assert "float32,float64" in verified and "float32: worst 1% | float64: worst 0%" in verified
    assert any("FAILED" in line and "float16" in line for line in lines)


def _report(outcome: str, when: str = "call", longrepr: object = None) -> pytest.TestReport:
    return pytest.TestReport(
        nodeid="reference_impls/test_claims.py::test_faster[cpu-float32-row_sum.sum:faster]",
        location=("reference_impls/test_claims.py", 1, "test_faster"),
        keywords={},
        outcome=outcome,
        longrepr=longrepr,
        when=when,
        user_properties=[
            (ROW_KEY, "row_sum.sum:faster"),
            (MEASURED_KEY, "3x [2x, 4x] (needs 50x)"),
        ],
    )


def test_a_failed_claim_shows_what_went_wrong_in_the_table():
    class Crash:
        message = "CheckFailed: fail: speedup 3x [2x, 4x] is below 50x\nmore lines"

    class Longrepr:
        reprcrash = Crash()

    table = ClaimTable(config=None)  # type: ignore[arg-type]
    table.pytest_runtest_logreport(_report("passed", when="setup"))
    table.pytest_runtest_logreport(_report("failed", longrepr=Longrepr()))
    table.pytest_runtest_logreport(_report("passed", when="teardown"))
    (row,) = table.rows.values()
    assert row.results == [
        ("cpu", "float32", "FAILED", "CheckFailed: fail: speedup 3x [2x, 4x] is below 50x")
    ]


def test_a_speed_claim_that_is_only_measured_never_reads_verified():
    # The guide's "TorchScript is ~10% faster" is measured, not asserted
    # (it does not reproduce on torch 2.13); its row must not claim more.
    done = run_main("-k", "test_faster and torchscript", "--effective-torch-time-budget=0.5")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("batch_gather.torchscript:faster"))
    assert " measured " in row and "verified" not in row and "(reported)" in row


def test_the_main_job_writes_a_plot_per_speed_sweep(tmp_path):
    # The measure-only sweep: the files are what is tested, not a verdict.
    result = run_main("--device=cpu", "-k", "softmax and faster and sweep", f"--effective-torch-plots={tmp_path}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    (png,) = tmp_path.glob("*.png")
    assert png.name == "reference_impls-test_claims.py-test_faster-cpu-float32-softmax.torch-faster-sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = png.with_suffix(".csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 5  # header, 2 modes x 5 row lengths
    assert "softmax.torch:faster:sweep" in table_row(result, "softmax.torch:faster:sweep")
