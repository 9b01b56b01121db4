"""The speed verdict's statistics, on synthetic timing sequences (no wall clock)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest

from pytest_effective_torch.speed import stats as _stats
from pytest_effective_torch.speed.stats import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    decide,
    log_speedups,
    look_schedule,
    run_sequential,
    t_quantile,
    trimmed_interval,
)

CONFIDENCE = 0.999

#: machine(t, rng) -> how much slower than nominal the machine runs at time t.
Machine = Callable[[float, random.Random], float]


def steady(t: float, rng: random.Random) -> float:
    return math.exp(rng.gauss(0.0, 0.02))


def simulate(
    reference: float,
    candidate: float,
    *,
    min_speedup: float | None,
    machine: Machine = steady,
    seed: int = 0,
    budget: float = 2.0,
    spikes: Callable[[int, str, random.Random], float] | None = None,
) -> _stats.Measurement:
    """Replay a synthetic machine: each side's block takes its nominal time
    times the machine's slowdown at that moment (times any spike); the fake
    clock advances by exactly what was 'measured'."""
    rng = random.Random(seed)
    now = [0.0]
    round_no = [0]

    def block(role: str, nominal: float) -> float:
        seconds = nominal * machine(now[0], rng)
        if spikes is not None:
            seconds *= spikes(round_no[0], role, rng)
        now[0] += seconds
        return seconds

    def measure_round(reference_first: bool) -> tuple[float, float]:
        if reference_first:
            ref = block("reference", reference)
            cand = block("candidate", candidate)
        else:
            cand = block("candidate", candidate)
            ref = block("reference", reference)
        round_no[0] += 1
        return ref, cand

    return run_sequential(
        measure_round,
        min_speedup=min_speedup,
        confidence=CONFIDENCE,
        budget=budget,
        clock=lambda: now[0],
    )


def verdicts(reference: float, candidate: float, min_speedup: float, **kw) -> list[str]:
    return [
        simulate(reference, candidate, min_speedup=min_speedup, seed=seed, **kw).verdict
        for seed in range(20)
    ]


# --------------------------------------------------------- building blocks


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 10, 2.2281), (0.975, 1, 12.7062), (0.9995, 2, 31.5991), (0.95, 30, 1.6973)],
)
def test_t_quantiles_match_the_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_rejects_a_lower_tail_probability():
    with pytest.raises(ValueError, match=r"0\.5 < p < 1"):
        t_quantile(0.4, 3)


def test_untrimmed_interval_is_the_classic_t_interval():
    values = [0.2, 0.1, 0.3]  # n=3: nothing trimmed, no positive autocorrelation
    iv = trimmed_interval(values, confidence=0.95)
    sd = 0.1
    half = t_quantile(0.975, 2) * sd / math.sqrt(3)
    assert iv.estimate == pytest.approx(0.2)
    assert (iv.low, iv.high) == pytest.approx((0.2 - half, 0.2 + half))


def test_trimming_keeps_a_few_wild_rounds_from_moving_the_estimate():
    values = [0.26, 0.27, 0.25, 0.26, 0.26, 0.27, 0.25, 0.26, -4.0, 5.0]
    iv = trimmed_interval(values, confidence=CONFIDENCE)
    assert iv.estimate == pytest.approx(0.26, abs=0.005)
    assert iv.low > math.log(1.1)


def test_an_interval_needs_two_values():
    with pytest.raises(ValueError, match="at least 2"):
        trimmed_interval([0.1], confidence=0.9)


def test_decide_compares_the_whole_interval_with_the_threshold():
    assert decide(_stats.Interval(0.3, 0.2, 0.4, 10), 1.1) == PASS
    assert decide(_stats.Interval(0.0, -0.05, 0.05, 10), 1.1) == FAIL
    assert decide(_stats.Interval(0.1, 0.05, 0.15, 10), 1.1) == INCONCLUSIVE


def test_the_look_schedule_starts_at_the_minimum_and_grows_by_a_quarter():
    schedule = look_schedule(1000)
    assert schedule[:7] == [4, 5, 7, 9, 12, 15, 19]
    assert all(b / a <= 1.34 for a, b in itertools.pairwise(schedule[5:]))
    # few looks, so repeated looking cannot wear the 99.9% interval down
    assert len(look_schedule(2000)) < 30


def test_log_speedups_drop_rounds_with_a_zero_time():
    assert log_speedups([2.0, 0.0, 1.0], [1.0, 1.0, 0.0]) == [math.log(2.0)]


# ----------------------------------------------------- sequential verdicts


def test_identical_functions_never_pass_and_fail_quickly():
    results = [simulate(1e-3, 1e-3, min_speedup=1.1, seed=s) for s in range(20)]
    assert [r.verdict for r in results] == [FAIL] * 20
    assert max(r.rounds for r in results) <= 30


def test_half_the_work_passes_at_one_and_a_half():
    assert verdicts(2e-3, 1e-3, 1.5) == [PASS] * 20


def test_a_third_faster_passes_at_one_point_one():
    assert verdicts(1.3e-3, 1e-3, 1.1) == [PASS] * 20


def test_rounds_alternate_which_side_goes_first():
    order = []

    def measure_round(reference_first: bool) -> tuple[float, float]:
        order.append(reference_first)
        return 2.0, 1.0

    run_sequential(measure_round, min_speedup=1.5, confidence=0.99, budget=1.0, clock=lambda: 0.0)
    assert order[:4] == [True, False, True, False]


def test_a_slow_drift_cancels_out():
    # The machine slows down threefold over the run: a blocked A-then-B
    # comparison would see a false speedup; alternating pairs do not.
    def drifting(t: float, rng: random.Random) -> float:
        return (1.0 + 1.0 * t) * math.exp(rng.gauss(0.0, 0.01))

    assert FAIL in verdicts(1e-3, 1e-3, 1.1, machine=drifting)
    assert PASS not in verdicts(1e-3, 1e-3, 1.1, machine=drifting)
    assert verdicts(1.3e-3, 1e-3, 1.1, machine=drifting) == [PASS] * 20


def test_outliers_on_the_reference_cannot_make_a_copy_pass():
    # 10% of the reference's blocks are hit by a 50x preemption.
    def preempted(round_no: int, role: str, rng: random.Random) -> float:
        return 50.0 if role == "reference" and rng.random() < 0.1 else 1.0

    assert PASS not in verdicts(1e-3, 1e-3, 1.1, spikes=preempted)
    # ...nor keep a real speedup from passing
    assert verdicts(1.3e-3, 1e-3, 1.1, spikes=preempted) == [PASS] * 20


def test_a_bimodal_machine_neither_passes_a_copy_nor_hides_a_real_speedup():
    def two_modes(t: float, rng: random.Random) -> float:
        return 1.5 if rng.random() < 0.5 else 1.0

    assert PASS not in verdicts(1e-3, 1e-3, 1.1, machine=two_modes)
    results = verdicts(2e-3, 1e-3, 1.5, machine=two_modes)
    assert FAIL not in results and results.count(PASS) >= 18


def test_a_step_change_in_machine_speed_affects_both_sides_alike():
    def step(t: float, rng: random.Random) -> float:
        return (2.0 if t > 0.01 else 1.0) * math.exp(rng.gauss(0.0, 0.02))

    assert PASS not in verdicts(1e-3, 1e-3, 1.1, machine=step)
    assert verdicts(2e-3, 1e-3, 1.5, machine=step) == [PASS] * 20


def test_a_speedup_on_the_threshold_stays_inconclusive_until_the_budget():
    result = simulate(1.1e-3, 1e-3, min_speedup=1.1, budget=0.5, seed=3)
    assert result.verdict == INCONCLUSIVE
    assert result.elapsed >= 0.5
    assert result.interval is not None
    assert result.interval.speedup_low < 1.1 < result.interval.speedup_high


def test_the_same_timings_give_the_same_verdict():
    a = simulate(1.2e-3, 1e-3, min_speedup=1.1, seed=7)
    b = simulate(1.2e-3, 1e-3, min_speedup=1.1, seed=7)
    assert (a.verdict, a.rounds, a.interval) == (b.verdict, b.rounds, b.interval)


def test_no_verdict_before_the_minimum_rounds():
    # The budget runs out after two rounds: an interval exists, but too few
    # rounds to decide, however clear the ratio looks.
    result = simulate(1e-1, 1e-3, min_speedup=1.1, budget=0.15)
    assert result.rounds < _stats.MIN_ROUNDS
    assert result.verdict == INCONCLUSIVE


def test_a_clock_that_never_advances_stops_at_the_round_cap():
    result = run_sequential(
        lambda first: (1.0, 1.0),
        min_speedup=1.0,
        confidence=0.99,
        budget=1.0,
        clock=lambda: 0.0,
        max_rounds=50,
    )
    assert result.rounds == 50
    assert result.verdict == INCONCLUSIVE


def test_repeated_looks_rarely_pass_a_candidate_exactly_on_the_threshold():
    # The worst case for a sequential test: the true speedup *is* min_speedup.
    # About 20 looks at a 99.9% interval bound a false pass by ~1% per side.
    results = [
        simulate(1.1e-3, 1e-3, min_speedup=1.1, seed=seed, budget=0.5).verdict
        for seed in range(100)
    ]
    assert results.count(PASS) <= 4
    assert results.count(INCONCLUSIVE) >= 90


def ar1_rounds(true_speedup: float, phi: float, seed: int) -> _stats.MeasureRound:
    """Rounds whose log speedup follows an AR(1) process: a machine state that
    lasts several rounds and moves neighbouring ratios together."""
    rng = random.Random(seed)
    state = [0.0]

    def measure_round(reference_first: bool) -> tuple[float, float]:
        state[0] = phi * state[0] + math.sqrt(1 - phi * phi) * rng.gauss(0.0, 0.05)
        return true_speedup * math.exp(state[0]) * 1e-3, 1e-3

    return measure_round


def test_autocorrelated_rounds_widen_the_interval():
    trending = [0.01 * i for i in range(40)]
    shuffled = list(trending)
    random.Random(0).shuffle(shuffled)
    drift, independent = trimmed_interval(trending, 0.99), trimmed_interval(shuffled, 0.99)
    assert drift.autocorrelation > 5 and independent.autocorrelation < 2
    assert drift.high - drift.low > 2 * (independent.high - independent.low)
    assert trimmed_interval([0.0, 0.39] * 20, 0.99).autocorrelation == 1.0  # alternating


def test_autocorrelated_rounds_rarely_pass_a_candidate_exactly_on_the_threshold():
    # Independent-rounds intervals passed about half of these (the rounds
    # drift together, so the spread understates the uncertainty).
    verdicts_ = [
        run_sequential(
            ar1_rounds(1.1, 0.9, seed),
            min_speedup=1.1,
            confidence=CONFIDENCE,
            budget=1.0,
            clock=lambda: 0.0,
            max_rounds=400,
        ).verdict
        for seed in range(60)
    ]
    assert verdicts_.count(PASS) <= 6


def test_a_verdict_needs_the_minimum_number_of_usable_rounds():
    # Every other round has a zero time (a clock too coarse for the block):
    # four rounds give two ratios, too few to decide however clear they look.
    calls = [0]

    def measure_round(reference_first: bool) -> tuple[float, float]:
        calls[0] += 1
        return (2.0, 1.0) if calls[0] % 2 else (0.0, 1.0)

    result = run_sequential(
        measure_round, min_speedup=1.1, confidence=0.99, budget=1.0, clock=lambda: 0.0, max_rounds=5
    )
    assert result.verdict == INCONCLUSIVE


def test_a_difference_within_the_systematic_allowance_is_never_called():
    # Two instances of the same function differ by up to ~1-3% between runs
    # on a real machine (memory layout, code placement): an offset rounds
    # cannot average away. A 1% edge at min_speedup=1.0 stays inconclusive,
    # however many rounds; so does a 1% deficit.
    faster = simulate(1.01e-3, 1e-3, min_speedup=1.0, budget=5.0)
    slower = simulate(1e-3, 1.01e-3, min_speedup=1.0, budget=5.0)
    assert faster.verdict == slower.verdict == INCONCLUSIVE
    assert faster.rounds > 1000
    assert faster.interval.low < 0.0 < faster.interval.high
    # a real 5% speedup is still called
    assert simulate(1.05e-3, 1e-3, min_speedup=1.0).verdict == PASS


# ------------------------------------------------- measured, not asserted


def test_without_min_speedup_the_verdict_is_measured_whatever_the_speedup():
    for reference, candidate in ((3e-3, 1e-3), (1e-3, 3e-3), (1e-3, 1e-3)):
        result = simulate(reference, candidate, min_speedup=None)
        assert result.verdict == _stats.MEASURED
        assert result.interval is not None
        assert result.interval.speedup_low < reference / candidate < result.interval.speedup_high


def test_a_measurement_stops_once_the_interval_is_precise_not_at_the_budget():
    result = simulate(3e-3, 1e-3, min_speedup=None, budget=10.0)
    assert result.elapsed < 1.0
    assert result.rounds >= _stats.MIN_ROUNDS
    low, high = result.interval.speedup_low, result.interval.speedup_high
    # within the precision asked for, plus the systematic allowance each side
    assert math.log(high / low) <= 2 * (_stats.MEASURE_PRECISION + _stats.SYSTEMATIC) + 1e-12


def test_a_noisy_measurement_is_still_measured_when_the_budget_runs_out():
    def noisy(t: float, rng: random.Random) -> float:
        return math.exp(rng.gauss(0.0, 1.0))

    result = simulate(2e-3, 1e-3, min_speedup=None, budget=0.05, machine=noisy)
    assert result.verdict == _stats.MEASURED
    assert result.elapsed >= 0.05
