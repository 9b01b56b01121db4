"""assert_faster_than_reference called directly, with real tensors.

Outcomes here are deterministic without wall-clock thresholds: the two sides
differ twentyfold (a verdict no machine noise can flip), or the time budget
is too short for the minimum number of rounds.
"""

from __future__ import annotations

import sys
import time

import pytest
import torch

from pytest_effective_torch import (
    CheckFailed,
    SpeedInconclusiveWarning,
    SpeedResult,
    assert_faster_than_reference,
)


def busy(reps: int, size: int = 48):
    """A sleep-free busy function doing ``reps`` small matmuls."""

    def work(x):
        out = x
        for _ in range(reps):
            out = torch.mm(x, x)
        return out

    work.__qualname__ = f"mm_x{reps}"
    return work


def slow_copy(x):
    """Longer than the whole budget of the tests that use it: no round can finish in time."""
    time.sleep(0.03)
    return x


def inputs(make):
    return (make(48, 48),)


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", [])) + str(exc)


def test_a_twentyfold_faster_candidate_passes_and_reports_what_it_measured():
    result = assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=2)
    assert isinstance(result, SpeedResult)
    assert result.verdict == "pass" and result.passed
    assert result.speedup > 2 and result.interval[0] > 2
    assert result.rounds >= 4
    assert result.measured == "forward"
    assert result.device == "cpu" and result.dtype == "float32"
    assert result.threads == 1
    assert result.timer == "host"
    assert result.candidate_time < result.reference_time
    assert len(result.candidate_times) == result.rounds
    assert "mm_x1 vs mm_x20: pass" in str(result)


def test_a_twentyfold_slower_candidate_fails_with_a_message_to_act_on():
    with pytest.raises(CheckFailed) as info:
        assert_faster_than_reference(busy(20), busy(1), inputs, min_speedup=1.5)
    message = str(info.value)
    first = message.splitlines()[0]
    assert first.startswith("candidate mm_x20 is not 1.5x faster than reference mm_x1: speedup")
    assert "lies below 1.5x" in first
    assert "99.9% interval [" in message
    assert "(widened by 2% each side for offsets fixed within a run); required: more than 1.5x" in message
    assert "time per call (median of rounds, host time): reference" in message
    assert "interleaved rounds of" in message
    assert "timer: host time (perf_counter); intra-op threads 1" in message
    assert "device cpu" in message and "dtype float32" in message
    assert "first calls (not in the rounds): reference" in message


def test_fixed_arguments_work_like_a_builder():
    x = torch.randn(48, 48)
    result = assert_faster_than_reference(busy(1), busy(20), (x,), min_speedup=2)
    assert result.passed and result.dtype == "float32"


def test_forward_and_backward_are_timed_together_when_asked():
    result = assert_faster_than_reference(
        busy(1), busy(20), inputs, min_speedup=2, backward=True
    )
    assert result.passed
    assert result.measured == "forward+backward"


def test_threads_are_pinned_while_timing_and_restored_after():
    before = torch.get_num_threads()
    result = assert_faster_than_reference(busy(1), busy(20), inputs, min_speedup=None, threads=2, time_budget=0.2)
    assert result.threads == 2
    assert torch.get_num_threads() == before


def test_first_call_costs_are_reported_apart_from_the_rounds():
    state = {"compiled": False}

    def compiles_first(x):
        if not state["compiled"]:
            time.sleep(0.05)  # stands in for compilation or autotuning
            state["compiled"] = True
        return torch.mm(x, x)

    calls = []
    original = compiles_first

    def counted(x):
        calls.append(state["compiled"])
        return original(x)

    result = assert_faster_than_reference(counted, busy(20), inputs, min_speedup=2)
    # The compiling call was the first one, which first_call timed (a sleep
    # lasts at least its length); every call of the rounds came after it.
    assert calls[0] is False and all(calls[1:]) and len(calls) > 1 + result.rounds
    assert result.first_call[1] >= 0.05


def test_too_short_a_budget_is_inconclusive_and_fails_by_default():
    with pytest.raises(CheckFailed) as info:
        assert_faster_than_reference(
            slow_copy, slow_copy, inputs, min_speedup=1.0, time_budget=0.05
        )
    message = str(info.value)
    assert message.startswith("inconclusive: after ")
    assert "too few rounds to decide whether slow_copy is 1x faster than slow_copy" in message
    assert "--effective-torch-time-budget, now 0.05 s" in message
    assert "--effective-torch-inconclusive=skip or warn" in message


def test_inconclusive_can_skip_instead():
    with pytest.raises(pytest.skip.Exception, match="inconclusive"):
        assert_faster_than_reference(
            slow_copy, slow_copy, inputs, time_budget=0.05, inconclusive="skip"
        )


def test_inconclusive_can_warn_and_return_the_result():
    with pytest.warns(SpeedInconclusiveWarning, match="inconclusive"):
        result = assert_faster_than_reference(
            slow_copy, slow_copy, inputs, time_budget=0.05, inconclusive="warn"
        )
    assert result.verdict == "inconclusive"


def test_a_crashing_candidate_is_an_error_with_context_not_a_verdict():
    def broken(x):
        raise RuntimeError("shapes do not match")

    with pytest.raises(Exception) as info:
        assert_faster_than_reference(broken, busy(1), inputs)
    assert not isinstance(info.value, CheckFailed)
    text = notes(info.value)
    assert "shapes do not match" in text
    assert "while calling the candidate (" in text and "broken" in text
    assert "inputs ((48, 48) float32)" in text
    if sys.version_info >= (3, 11):
        assert isinstance(info.value, RuntimeError)


def test_a_crashing_inputs_builder_says_so():
    def bad_inputs(make):
        raise KeyError("no such shape")

    with pytest.raises(Exception) as info:
        assert_faster_than_reference(busy(1), busy(2), bad_inputs)
    assert "while building the inputs" in notes(info.value)


def test_the_candidate_needing_more_memory_than_allowed_fails():
    def wasteful(x):
        scratch = torch.ones(4_000_000)  # 16 MB nobody needs
        return x + scratch[:1]

    def lean(x):
        return x + 1

    with pytest.raises(CheckFailed) as info:
        assert_faster_than_reference(
            wasteful, lean, inputs, min_speedup=None, max_memory_ratio=1.5, time_budget=0.5
        )
    message = str(info.value)
    assert message.startswith("candidate wasteful needs too much memory: peak 15.")
    assert "max_memory_ratio=1.5 allows at most" in message
    assert "peak memory: reference" in message
    # the other way round it passes, and both peaks are reported
    result = assert_faster_than_reference(
        lean, wasteful, inputs, min_speedup=None, max_memory_ratio=1.0, time_budget=0.5
    )
    reference_peak, candidate_peak = result.peak_memory
    assert reference_peak >= 16_000_000 > candidate_peak


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        (
            {"min_speedup": 0},
            ValueError,
            "min_speedup must be a positive finite number (or None: measure, do not assert), got 0",
        ),
        ({"min_speedup": float("nan")}, ValueError, "min_speedup must be a positive finite"),
        (
            {"min_speedup": "2"},
            TypeError,
            "min_speedup must be a number (or None: measure, do not assert), got '2'",
        ),
        ({"max_memory_ratio": -1.0}, ValueError, "max_memory_ratio must be a positive"),
        ({"time_budget": 0}, ValueError, "time_budget must be a positive"),
        ({"threads": 0}, ValueError, "threads must be a positive integer, got 0"),
        ({"timer": "wall"}, ValueError, "timer must be one of host, device, got 'wall'"),
        ({"inconclusive": "maybe"}, ValueError, "inconclusive must be one of fail, skip, warn"),
        ({"confidence": 1.0}, ValueError, "confidence must be a float in"),
        ({"backward": "yes"}, TypeError, "backward must be True or False"),
    ],
)
def test_bad_argument_values_are_rejected_with_the_value(kwargs, error, text):
    with pytest.raises(error, match="^" + text.replace("(", r"\(").replace(")", r"\)")):
        assert_faster_than_reference(busy(1), busy(2), inputs, **kwargs)


def test_a_candidate_that_is_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match="candidate must be callable, got 3"):
        assert_faster_than_reference(3, busy(2), inputs)


def test_backward_needs_a_floating_input():
    def index(i):
        return i * 2

    with pytest.raises(ValueError, match="backward=True needs at least one floating-point"):
        assert_faster_than_reference(
            index, index, (torch.arange(4),), backward=True
        )


def test_backward_needs_an_output_that_requires_grad():
    def detached(x):
        return x.detach() * 2

    with pytest.raises(ValueError, match=r"no output of the reference \(detached\) requires grad"):
        assert_faster_than_reference(detached, detached, inputs, backward=True)


def batch_norm_eval(x, running_mean, running_var, weight, bias):
    return torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training=False)


def statistics_inputs(make):
    return make(4, 3, 8), make(3), make(3, low=0.5, high=2), make(3), make(3)


def test_backward_with_an_input_torch_cannot_differentiate_gets_a_hint_to_no_grad():
    with pytest.raises(RuntimeError) as info:
        assert_faster_than_reference(batch_norm_eval, batch_norm_eval, statistics_inputs, backward=True, min_speedup=None)
    notes = "\n".join(getattr(info.value, "__notes__", [])) or str(info.value)
    assert "while calling the reference (batch_norm_eval) for its first call" in notes
    assert "keep arguments out of them with no_grad=(position or keyword name, ...)" in notes


def test_backward_leaves_the_arguments_no_grad_names_alone():
    result = assert_faster_than_reference(
        batch_norm_eval, batch_norm_eval, statistics_inputs, backward=True, min_speedup=None, no_grad=(1, 2), time_budget=0.2
    )
    assert result.min_speedup is None  # measured, not asserted


@pytest.mark.parametrize(("no_grad", "error", "match"), [
    (True, TypeError, "no_grad names arguments"),
    (("mask",), ValueError, r"no_grad names arguments the inputs do not have: \['mask'\]"),
])
def test_a_bad_no_grad_is_a_clear_error(no_grad, error, match):
    with pytest.raises(error, match=match):
        assert_faster_than_reference(batch_norm_eval, batch_norm_eval, statistics_inputs, backward=True, no_grad=no_grad)


def test_with_backward_the_first_call_cost_includes_the_first_forward():
    # The first forward (where torch.compile compiles, lazy modules
    # initialise) must be in the reported first call, not hidden by the
    # probe that checks the outputs require grad.
    state = {"compiled": False}

    def compiles_first(x):
        if not state["compiled"]:
            time.sleep(0.05)  # stands in for compilation
            state["compiled"] = True
        return torch.mm(x, x)

    result = assert_faster_than_reference(
        compiles_first, busy(20), inputs, min_speedup=2, backward=True
    )
    assert result.first_call[1] >= 0.05


def test_a_crashing_reference_is_an_error_that_names_the_reference():
    def broken_reference(x):
        raise RuntimeError("reference blew up")

    with pytest.raises(Exception) as info:
        assert_faster_than_reference(busy(1), broken_reference, inputs)
    assert not isinstance(info.value, CheckFailed)
    text = notes(info.value)
    assert "reference blew up" in text
    assert "while calling the reference (broken_reference)" in text


def test_a_crash_after_the_first_call_is_an_error_with_context_and_restores_the_machine():
    import gc

    calls = [0]

    def flaky(x):
        calls[0] += 1
        if calls[0] == 3:  # during warm-up or the rounds, not the first call
            raise RuntimeError("out of workspace")
        return torch.mm(x, x)

    threads = torch.get_num_threads()
    with pytest.raises(Exception) as info:
        assert_faster_than_reference(flaky, busy(20), inputs, threads=1)
    assert not isinstance(info.value, CheckFailed)
    text = notes(info.value)
    assert "out of workspace" in text
    assert "while timing the candidate (flaky)" in text
    assert torch.get_num_threads() == threads
    assert gc.isenabled()


def test_backward_does_not_touch_the_callers_tensors():
    x = torch.randn(48, 48, requires_grad=True)
    assert_faster_than_reference(busy(1), busy(20), (x,), min_speedup=2, backward=True)
    assert x.grad is None


def test_max_memory_ratio_on_a_device_without_memory_statistics_is_refused_before_timing():
    # The meta device stands in for any backend whose peak memory cannot be
    # measured (MPS, XLA): say so at once, not after the time budget.
    calls = [0]

    def counted(x):
        calls[0] += 1
        return x * 2

    with pytest.raises(ValueError) as info:
        assert_faster_than_reference(
            counted, counted, inputs, device="meta", max_memory_ratio=0.5
        )
    assert str(info.value) == (
        "max_memory_ratio is not supported on device meta: its peak memory cannot be "
        "measured (supported: cpu, cuda)"
    )
    assert calls[0] == 0  # refused before anything was timed


def test_flush_l2_only_changes_cuda_timing():
    # There is no L2 flush on the CPU, so the option must not shrink the CPU
    # blocks to one call (timer overhead would then dominate tiny functions).
    result = assert_faster_than_reference(
        busy(1), busy(20), inputs, min_speedup=2, flush_l2=True
    )
    assert result.calls_per_round[1] > 1
    assert "flush" not in result.timer_description


def _result(**overrides) -> SpeedResult:
    fields = dict(
        verdict="inconclusive", candidate_name="fast", reference_name="slow",
        min_speedup=1.1, speedup=1.1, interval=(1.04, 1.17), confidence=0.999,
        reference_time=1.1e-3, candidate_time=1e-3, rounds=3000, calls_per_round=(1, 1),
        elapsed=2.0, timer="host", timer_description="host time (perf_counter)", threads=1,
        device="cpu", device_name="x86_64", dtype="float32", measured="forward",
        first_call=(2e-3, 1.5e-3), budget=2.0,
    )  # fmt: skip
    fields.update(overrides)
    return SpeedResult(**fields)


def test_an_interval_that_straddles_at_the_budget_says_inconclusive_with_the_interval():
    from pytest_effective_torch.speed.result import SpeedOptions
    from pytest_effective_torch.speed.verdict import conclude

    with pytest.raises(CheckFailed) as info:
        conclude(_result(), SpeedOptions(min_speedup=1.1))
    first = str(info.value).splitlines()[0]
    assert first == (
        "inconclusive: after 2.00 s and 3000 rounds, the 99.9% interval of the speedup of "
        "fast over slow, 1.1x [1.04x, 1.17x], still contains min_speedup 1.1x. To decide, "
        "raise the time budget (--effective-torch-time-budget, now 2 s), make the machine "
        "quieter, or accept it with --effective-torch-inconclusive=skip or warn"
    )
    assert "first calls (not in the rounds): reference 2 ms, candidate 1.5 ms" in str(info.value)


def test_a_crash_while_measuring_memory_is_an_error_with_context():
    def fails_under_the_profiler(x):
        if torch.autograd.profiler._is_profiler_enabled:
            raise RuntimeError("not profilable")
        return x * 2

    with pytest.raises(Exception) as info:
        assert_faster_than_reference(
            fails_under_the_profiler, busy(20), inputs, min_speedup=None, max_memory_ratio=10,
            time_budget=0.3,
        )
    assert not isinstance(info.value, CheckFailed)
    text = notes(info.value)
    assert "not profilable" in text
    assert "while measuring the peak memory of the candidate (fails_under_the_profiler)" in text


def test_min_speedup_none_measures_without_asserting_even_a_slower_candidate():
    result = assert_faster_than_reference(busy(20), busy(1), inputs, min_speedup=None)
    assert result.verdict == "measured" and not result.passed
    assert result.min_speedup is None
    assert result.speedup < 1 and result.interval[1] < 1
    assert "measured, not asserted" in str(result)
    assert "pass" not in str(result)


def test_min_speedup_none_still_asserts_the_memory_ratio():
    def wasteful(x):
        return x + torch.ones(4_000_000)[:1]

    with pytest.raises(CheckFailed, match=r"^candidate wasteful needs too much memory") as info:
        assert_faster_than_reference(
            wasteful, busy(1), inputs, min_speedup=None, max_memory_ratio=1.0, time_budget=0.5
        )
    assert "required: nothing, min_speedup=None (measured, not asserted)" in str(info.value)


def test_str_of_a_result_gives_the_times_in_the_order_it_names_the_sides():
    text = str(_result(verdict="pass", candidate_time=1e-3, reference_time=4e-3))
    assert text.startswith("fast vs slow: pass, speedup 1.1x")
    assert text.endswith("1 ms vs 4 ms per call")


@pytest.mark.parametrize(
    ("policy", "advice", "not_advised"),
    [
        ("skip", "it is not an error: --effective-torch-inconclusive=skip is in force", "accept it with"),
        ("warn", "it is not an error: --effective-torch-inconclusive=warn is in force", "accept it with"),
    ],
)
def test_inconclusive_advice_does_not_suggest_the_policy_in_force(policy, advice, not_advised):
    from pytest_effective_torch.speed.result import SpeedOptions
    from pytest_effective_torch.speed.verdict import conclude

    options = SpeedOptions(min_speedup=1.1, inconclusive=policy)
    if policy == "skip":
        with pytest.raises(pytest.skip.Exception) as info:
            conclude(_result(), options)
        message = str(info.value)
    else:
        with pytest.warns(SpeedInconclusiveWarning) as record:
            conclude(_result(), options)
        message = str(record[0].message)
    assert advice in message
    assert not_advised not in message


def test_an_inconclusive_warning_points_at_the_callers_line():
    with pytest.warns(SpeedInconclusiveWarning) as record:
        assert_faster_than_reference(slow_copy, slow_copy, inputs, time_budget=0.05, inconclusive="warn")
    assert record[0].filename == __file__


def test_under_tritons_interpreter_nothing_is_timed_and_the_verdict_is_skipped(monkeypatch):
    calls = []

    def candidate(x):
        calls.append(1)
        return x

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(pytest.skip.Exception, match=r"speed verdict skipped: Triton kernels are interpreted"):
        assert_faster_than_reference(candidate, slow_copy, inputs, min_speedup=2)
    assert len(calls) == 1  # run once, so a crash still shows; never timed
