"""Speed comparisons stored through pytest-benchmark, read back by its own tools."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _speed_sources import BUSY

pytest_plugins = ["pytester"]

TESTS = BUSY + """

def test_gather(assert_faster_than_reference, benchmark):
    benchmark.extra_info["note"] = "kept"
    # CANDIDATE_REPS lets a second run make the candidate slower.
    reps = int(os.environ.get("CANDIDATE_REPS", "1"))
    assert_faster_than_reference(busy(reps), busy(40), lambda make: (make(48, 48),), min_speedup=2)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


def test_the_private_pytest_benchmark_api_we_rely_on_is_still_there():
    # If this fails, pytest-benchmark changed: update _benchmark_bridge and
    # the version range pinned in pyproject.toml.
    import inspect

    from pytest_benchmark import __version__
    from pytest_benchmark.fixture import BenchmarkFixture
    from pytest_benchmark.session import BenchmarkSession
    from pytest_benchmark.stats import Metadata, Stats

    assert tuple(int(p) for p in __version__.split(".")[:2]) < (6, 0)  # pyproject pins <6
    assert list(inspect.signature(BenchmarkFixture._make_stats).parameters) == [
        "self",
        "iterations",
    ]
    assert "_mode" in inspect.getsource(BenchmarkFixture.__init__)
    metadata_init = inspect.getsource(Metadata.__init__)
    for attribute in ("name", "fullname", "extra_info", "options", "stats"):
        assert f"self.{attribute} =" in metadata_init
    assert list(inspect.signature(Metadata.update).parameters) == ["self", "duration"]
    for attribute in ("compared_mapping", "xdist_warning", "disabled"):
        assert attribute in inspect.getsource(BenchmarkSession)
    assert "data" not in Stats.fields and "median" in Stats.fields


def test_a_saved_comparison_is_read_back_by_pytest_benchmark_compare(pytester):
    pytester.makepyfile(test_mine=TESTS)
    run(pytester, "--benchmark-json=run.json").assert_outcomes(passed=1)

    saved = json.loads((pytester.path / "run.json").read_text())
    (entry,) = saved["benchmarks"]
    assert entry["fullname"] == "test_mine.py::test_gather[cpu-float32]"
    info = entry["extra_info"]
    assert info["note"] == "kept"
    assert info["verdict"] == "pass" and info["speedup"] > 2
    assert info["speedup_low"] < info["speedup"] < info["speedup_high"]
    assert info["reference_stats"]["rounds"] == entry["stats"]["rounds"]
    assert info["reference_stats"]["median"] > entry["stats"]["median"]
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["threads"] == 1
    assert info["torch_version"].startswith("2.")
    assert saved["machine_info"]["effective_torch"]["torch"] == info["torch_version"]

    compare = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", "run.json", "--columns=min,median,rounds"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert compare.returncode == 0, compare.stderr
    assert "test_gather[cpu-float32]" in compare.stdout


def test_autosave_then_compare_and_compare_fail_work_on_comparisons(pytester, monkeypatch):
    pytester.makepyfile(test_mine=TESTS)
    run(pytester, "--benchmark-autosave", "--benchmark-storage=store").assert_outcomes(passed=1)
    assert list((pytester.path / "store").rglob("*.json"))

    # The candidate now does 10x the work: still 4x faster than the
    # reference, but its absolute time regressed far beyond 50%.
    monkeypatch.setenv("CANDIDATE_REPS", "10")
    result = run(
        pytester,
        "--benchmark-storage=store",
        "--benchmark-compare",
        "--benchmark-compare-fail=median:50%",
    )
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        ["Performance has regressed:", "*test_gather[[]cpu-float32[]]*Field 'median' has failed*"]
    )


def test_a_speedup_that_drops_against_the_saved_run_fails_the_run(pytester, monkeypatch):
    pytester.makepyfile(test_mine=TESTS)
    run(pytester, "--benchmark-save=base", "--benchmark-storage=store").assert_outcomes(passed=1)

    monkeypatch.setenv("CANDIDATE_REPS", "10")  # speedup ~40x -> ~4x
    result = run(
        pytester,
        "--benchmark-storage=store",
        "--benchmark-compare",
        "--effective-torch-max-speedup-drop=50",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "SPEEDUP REGRESSION: test_mine.py::test_gather[[]cpu-float32[]]: speedup *x [[]*[]], was *x "
            "in the saved run (-*%, more than --effective-torch-max-speedup-drop=50%: even the "
            "interval's top, *x, is below *x)"
        ]
    )

    # the same candidate as the saved run: no regression
    monkeypatch.setenv("CANDIDATE_REPS", "1")
    same = run(
        pytester,
        "--benchmark-storage=store",
        "--benchmark-compare=0001",
        "--effective-torch-max-speedup-drop=50",
    )
    assert same.ret == pytest.ExitCode.OK
    assert "SPEEDUP REGRESSION" not in same.stdout.str()


def test_the_speedup_drop_option_on_the_command_line_needs_benchmark_compare_at_once(pytester):
    pytester.makepyfile(test_mine=TESTS)
    result = run(pytester, "--effective-torch-max-speedup-drop=10")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--effective-torch-max-speedup-drop needs a saved run to compare with: *--benchmark-compare*"]
    )
    assert "passed" not in result.stdout.str()  # refused before any test ran


@pytest.mark.filterwarnings("ignore:Can't compare. No benchmark files")  # pytest-benchmark's own, expected here
def test_a_first_run_with_no_saved_run_yet_passes_with_a_notice(pytester):
    # A fresh CI runner: --benchmark-compare is in the CI command, the storage is empty.
    pytester.makepyfile(test_mine=TESTS)
    result = run(
        pytester, "--benchmark-storage=store", "--benchmark-compare", "--effective-torch-max-speedup-drop=10"
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["--effective-torch-max-speedup-drop: no saved run to compare with yet, so no speedup was checked*"]
    )


def test_a_speedup_saved_with_another_clock_is_not_compared(pytester):
    pytester.makepyfile(test_mine=TESTS)
    run(pytester, "--benchmark-save=base", "--benchmark-storage=store").assert_outcomes(passed=1)
    [saved] = (pytester.path / "store").rglob("*base.json")
    data = json.loads(saved.read_text())
    for bench in data["benchmarks"]:
        bench["extra_info"]["timer"] = "device"  # as if saved on a GPU with device time
        bench["extra_info"]["speedup"] = 1e6  # would be a huge drop if compared
    saved.write_text(json.dumps(data))
    result = run(
        pytester, "--benchmark-storage=store", "--benchmark-compare", "--effective-torch-max-speedup-drop=10"
    )
    assert result.ret == pytest.ExitCode.OK
    assert "SPEEDUP REGRESSION" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*test_gather[[]cpu-float32[]]: not compared with the saved run, which was timed with device time; "
         "this run used host time*"]
    )


def test_without_speed_tests_the_speedup_drop_option_prints_and_demands_nothing(pytester):
    # Set in the ini file, as a project would, while running only tests without speed checks.
    pytester.makeini("[pytest]\neffective_torch_max_speedup_drop = 10\n")
    pytester.makepyfile(
        test_plain="""
def test_plain():
    pass


def test_other_fixture(dtype):
    pass
"""
    )
    result = run(pytester)
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    assert "effective-torch speed verdicts" not in result.stdout.str()
    assert "needs a saved run" not in result.stdout.str()


def test_the_synchronized_timer_drives_the_plain_benchmark_fixture(pytester):
    pytester.makepyfile(
        test_plain="""
import torch


def test_mm(benchmark):
    x = torch.randn(32, 32)
    benchmark(torch.mm, x, x)
"""
    )
    result = run(
        pytester,
        "--benchmark-timer=pytest_effective_torch.synchronized_timer",
        "--benchmark-json=plain.json",
        "--benchmark-max-time=0.05",
    )
    result.assert_outcomes(passed=1)
    saved = json.loads((pytester.path / "plain.json").read_text())
    assert saved["benchmarks"][0]["options"]["timer"] == "synchronized_timer"


def test_timing_under_xdist_is_serialized_per_device_by_a_file_lock():
    from filelock import FileLock

    from pytest_effective_torch.plugin.storage import device_lock

    lock = device_lock("cuda:1")
    assert isinstance(lock, FileLock)
    assert lock.lock_file.endswith("cuda-1.lock")
    assert device_lock("cuda:1").lock_file == lock.lock_file != device_lock("cpu").lock_file
    with lock:
        assert lock.is_locked


def test_a_speedup_drop_counts_only_when_the_interval_shows_it():
    # A point estimate below the allowed value is noise while the interval
    # still reaches it; the run fails only on a drop the interval confirms.
    from pytest_effective_torch.plugin.summary import speedup_drop

    row = {"entry": "t::x", "speedup": 3.0, "low": 2.0, "high": 4.5}
    assert speedup_drop(4.0, row, 20.0) is None  # 3.0x < 3.2x, but 4.5x reaches it
    row = {"entry": "t::x", "speedup": 2.0, "low": 1.8, "high": 2.2}
    message = speedup_drop(4.0, row, 20.0)
    assert message == (
        "t::x: speedup 2x [1.8x, 2.2x], was 4x in the saved run (-50.0%, more than "
        "--effective-torch-max-speedup-drop=20%: even the interval's top, 2.2x, is below 3.2x)"
    )
    assert speedup_drop(4.0, {"entry": "t::x", "speedup": None}, 20.0) is None
