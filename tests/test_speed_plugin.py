"""The assert_faster_than_reference fixture, its options and its summary, through pytester.

The compared functions differ twentyfold, so every verdict here is
deterministic; inconclusive runs come from a budget too short for the
minimum number of rounds.
"""

from __future__ import annotations

import _speed_sources
import pytest

pytest_plugins = ["pytester"]

BUSY = _speed_sources.BUSY + """

def inputs(make):
    return (make(48, 48),)
"""


def make_tests(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_mine=BUSY + body)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Without hypothesis's plugin an inner run does not re-import (and
    # assertion-rewrite) hypothesis's modules: seconds per run saved.
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


FAST_AND_SLOW = """
def test_fast(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2)


def test_slow(assert_faster_than_reference):
    assert_faster_than_reference(busy(20), busy(1), inputs, min_speedup=2)
"""


def test_it_passes_a_fast_candidate_and_fails_a_slow_one_with_a_rerun_line(pytester):
    make_tests(pytester, FAST_AND_SLOW)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CheckFailed: candidate mm_x20 is not 2x faster than reference mm_x1: speedup *",
            "*rerun: pytest 'test_mine.py::test_slow[[]cpu-float32[]]' --effective-torch-seed=0*",
        ]
    )


def test_it_prints_a_summary_table_of_every_verdict(pytester):
    make_tests(pytester, FAST_AND_SLOW)
    result = run(pytester)
    result.stdout.fnmatch_lines(
        [
            "*- effective-torch speed verdicts -*",
            "test*device*dtype*reference*candidate*speedup [[]interval[]]*verdict",
            "test_mine.py::test_fast[[]cpu-float32[]]*cpu*float32*us*us*x [[]*, *[]]*pass (min 2x)",
            "test_mine.py::test_slow[[]cpu-float32[]]*cpu*float32*us*us*x [[]*, *[]]*fail (min 2x)",
            "times: median per call over interleaved rounds; verdict from host time*",
        ]
    )


def test_the_fixture_runs_on_each_selected_dtype(pytester):
    make_tests(pytester, FAST_AND_SLOW.split("def test_slow")[0])
    result = run(pytester, "--dtype=float32,float64", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_fast[[]cpu-float64[]]*cpu*float64*pass*"])


def test_benchmark_disable_runs_each_side_once_and_skips_the_verdict(pytester):
    make_tests(
        pytester,
        """
calls = []


def counted(fn):
    def wrapper(x):
        calls.append(fn.__qualname__)
        return fn(x)
    return wrapper


def test_fast(assert_faster_than_reference):
    assert_faster_than_reference(counted(busy(1)), counted(busy(20)), inputs, min_speedup=2)


def test_each_side_ran_once():
    assert sorted(calls) == ["mm_x1", "mm_x20"]
""",
    )
    result = run(pytester, "--benchmark-disable", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*test_fast*skipped (min 2x)",
            "benchmarks are disabled (--benchmark-disable)",
            "SKIPPED*speed verdict skipped: benchmarks are disabled (--benchmark-disable); "
            "candidate and reference each ran once",
        ]
    )


def test_benchmark_skip_skips_speed_tests_and_benchmark_only_selects_them(pytester):
    make_tests(
        pytester,
        FAST_AND_SLOW.split("def test_slow")[0]
        + """
def test_plain():
    pass
""",
    )
    run(pytester, "--benchmark-skip").assert_outcomes(passed=1, skipped=1)
    run(pytester, "--benchmark-only").assert_outcomes(passed=1, skipped=1)


def test_a_short_budget_is_inconclusive_and_the_option_turns_it_into_a_skip(pytester):
    make_tests(
        pytester,
        """
import time


def nap(x):
    time.sleep(0.03)  # longer than the whole budget: no round can finish in time


def test_same(assert_faster_than_reference):
    assert_faster_than_reference(nap, nap, inputs, min_speedup=1.0)
""",
    )
    failed = run(pytester, "--effective-torch-time-budget=0.05")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        ["*CheckFailed: inconclusive: after * rounds, too few rounds to decide whether nap is*"]
    )
    skipped = run(pytester,
        "--effective-torch-time-budget=0.05", "--effective-torch-inconclusive=skip", "-rs"
    )
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*inconclusive (skipped)*", "SKIPPED*inconclusive: after *"])


def test_the_threads_option_is_applied_and_reported(pytester):
    make_tests(
        pytester,
        """
def test_fast(assert_faster_than_reference):
    before = torch.get_num_threads()
    # measured, not asserted: a verdict on 2 threads of 2 shared cores is the machine's, not the option's
    result = assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=None, time_budget=0.2)
    assert result.threads == 2
    assert torch.get_num_threads() == before
""",
    )
    run(pytester, "--effective-torch-threads=2").assert_outcomes(passed=1)


def test_two_unnamed_comparisons_in_one_test_are_an_error_that_says_what_to_do(pytester):
    make_tests(
        pytester,
        """
def test_twice(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2)
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2)
""",
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ValueError: assert_faster_than_reference was already called in this test with "
            "no name=; each comparison in one test needs its own name= (stored as "
            "'<test>::<name>' in pytest-benchmark), or parametrize the test"
        ]
    )


def test_named_comparisons_are_each_stored_under_their_own_name(pytester):
    make_tests(
        pytester,
        """
def test_two(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2, name="small")
    assert_faster_than_reference(busy(2), busy(40), inputs, min_speedup=2, name="large")
""",
    )
    result = run(pytester, "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    import json

    saved = json.loads((pytester.path / "out.json").read_text())
    names = sorted(b["fullname"] for b in saved["benchmarks"])
    assert names == [
        "test_mine.py::test_two[cpu-float32]::large",
        "test_mine.py::test_two[cpu-float32]::small",
    ]


def test_using_the_plain_benchmark_fixture_too_is_a_clear_error(pytester):
    make_tests(
        pytester,
        """
def test_both(benchmark, assert_faster_than_reference):
    benchmark(lambda: None)
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2)
""",
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: this test already used the benchmark fixture*"])


def test_under_xdist_verdicts_still_run_and_the_summary_says_storage_was_off(pytester):
    pytest.importorskip("xdist")
    make_tests(pytester, FAST_AND_SLOW)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CheckFailed: candidate mm_x20 is not 2x faster*",
            "*test_fast*pass (min 2x)*",
            "pytest-benchmark storage off: pytest-benchmark is disabled under pytest-xdist",
        ]
    )


CRASHES = """
def reshape(x):
    return x.view(3, -1, 7)


def test_first_call_crash(assert_faster_than_reference):
    assert_faster_than_reference(reshape, busy(1), inputs)


def test_crash_in_the_rounds(assert_faster_than_reference):
    calls = [0]

    def flaky(x):
        calls[0] += 1
        if calls[0] == 3:  # after the first call: in the warm-up or the rounds
            raise RuntimeError("out of workspace")
        return torch.mm(x, x)

    assert_faster_than_reference(flaky, busy(20), inputs)


def test_crash_in_backward(assert_faster_than_reference):
    class Boom(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("no backward for you")

    def boom(x):
        return Boom.apply(x)

    assert_faster_than_reference(boom, busy(1), inputs, backward=True)


def test_crash_while_measuring_memory(assert_faster_than_reference):
    def profiled_only(x):
        if torch.autograd._profiler_enabled():
            raise MemoryError("no memory under the profiler")
        return x + 1

    assert_faster_than_reference(profiled_only, busy(20), inputs, measure_memory=True)


def test_twice(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2, time_budget=0.5)
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2)


def test_bad_min_speedup(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=-2)


def test_builder_returns_a_tensor(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), lambda make: make(4))


def test_direct_call_crash():
    from pytest_effective_torch import assert_faster_than_reference

    assert_faster_than_reference(reshape, busy(1), (torch.ones(4, 4),))
"""


def test_crashes_show_the_users_frames_and_context_never_the_speed_engines(pytester):
    make_tests(pytester, CRASHES)
    result = run(pytester)
    result.assert_outcomes(failed=8)
    out = result.stdout.str()
    for internal in (
        "_speed_run.py", "_timing.py", "_speed.py", "_stats.py", "_memory.py",
        "_speed_verdict.py", "_benchmark_bridge.py", "_check_name", "<string>",
    ):  # fmt: skip
        assert internal not in out, internal
    result.stdout.fnmatch_lines(
        [
            # first call: the user's frame, then the context and the rerun line
            ">*return x.view(3, -1, 7)",
            "E*RuntimeError: shape '[[]3, -1, 7[]]' is invalid for input of size 2304",
            "E*effective-torch: while calling the candidate (reshape) for its first call "
            "[[]assert_faster_than_reference, device cpu, dtype float32, inputs ((48, 48) float32)[]]",
            "E*rerun: pytest 'test_mine.py::test_first_call_crash[[]cpu-float32[]]' --effective-torch-seed=0*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            '>*raise RuntimeError("out of workspace")',
            "E*RuntimeError: out of workspace",
            "E*effective-torch: while timing the candidate (flaky) after its first call succeeded "
            "[[]assert_faster_than_reference, device cpu, dtype float32, inputs ((48, 48) float32)[]]*",
            "E*rerun: pytest 'test_mine.py::test_crash_in_the_rounds[[]cpu-float32[]]'*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            '>*raise RuntimeError("no backward for you")',
            "E*RuntimeError: no backward for you",
            "E*effective-torch: while calling the candidate (boom) for its first call "
            "[[]assert_faster_than_reference, device cpu, dtype float32, inputs ((48, 48) float32), "
            "forward+backward[]]",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            '>*raise MemoryError("no memory under the profiler")',
            "E*effective-torch: while measuring the peak memory of the candidate (profiled_only)*",
            "E*rerun: pytest 'test_mine.py::test_crash_while_measuring_memory[[]cpu-float32[]]'*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            ">*assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2)",
            "E*ValueError: assert_faster_than_reference was already called in this test*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            ">*assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=-2)",
            "E*ValueError: min_speedup must be a positive finite number (or None: measure, do not assert), got -2",
        ]
    )
    result.stdout.fnmatch_lines([">*assert_faster_than_reference(reshape, busy(1), (torch.ones(4, 4),))"])


def test_min_speedup_none_is_measured_not_passed_in_the_table_and_still_stored(pytester):
    make_tests(
        pytester,
        """
def test_measured(assert_faster_than_reference):
    result = assert_faster_than_reference(busy(20), busy(1), inputs, min_speedup=None)
    assert result.verdict == "measured"
""",
    )
    result = run(pytester, "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["test_mine.py::test_measured[[]cpu-float32[]]*cpu*float32*us*us*x [[]*, *[]]*measured (not asserted)"]
    )
    assert "pass (min" not in result.stdout.str()
    import json

    (entry,) = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    assert entry["extra_info"]["verdict"] == "measured"
    assert entry["extra_info"]["min_speedup"] is None
    assert entry["extra_info"]["speedup"] < 1


def test_the_flush_l2_help_says_what_the_timer_does(pytester):
    # CudaBlockTimer flushes before every block, and with the flush on a
    # block is one call (_speed_run._block_calls): before every timed call.
    help_text = " ".join(run(pytester, "--help").stdout.str().split())
    flag = help_text.split("--effective-torch-flush-l2", 1)[1][:300]
    assert "before every timed call" in flag
    assert "between timed rounds" not in flag
