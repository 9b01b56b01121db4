"""assert_faster_than_reference(..., sizes=...): one verdict per point, honest as a family.

The statistics are tested on injected synthetic timings; the engine with
functions whose costs differ twentyfold, so every verdict here is
deterministic; none asserts a wall-clock threshold.
"""

from __future__ import annotations

import csv
import math
import random
import struct
import sys
import warnings

import pytest
import torch

from pytest_effective_torch import (
    CheckFailed,
    SpeedInconclusiveWarning,
    SpeedSweepResult,
    assert_faster_than_reference,
)
from pytest_effective_torch.speed import stats
from pytest_effective_torch.speed.sweep import sweep_confidence


def busy(reps: int, name: str | None = None):
    def work(x):
        for _ in range(reps):
            torch.mm(x, x)
        return x

    work.__qualname__ = name or f"mm_x{reps}"
    return work


def per_row(x):
    """Cost grows with the rows: one small matmul per row."""
    square = x.new_ones(48, 48)
    for row in x:
        torch.mm(row[None], square)
    return x


def fixed_cost(x):
    """The same cost at every size: 20 matmuls of 48x48."""
    square = x.new_ones(48, 48)
    for _ in range(20):
        torch.mm(square, square)
    return x


def rows(make, *, n):
    return (make(n, 48),)


def square(make, *, n):
    return (make(48, 48),)


def square_grid(make, *, m, n):
    return (make(48, 48),)


def doubled(x):
    return x * 2


# --- the statistics, on injected timings ---------------------------------------------


def test_bonferroni_splits_the_chance_of_a_false_pass_over_the_asserted_points():
    assert sweep_confidence(0.999, 1) == 0.999
    assert sweep_confidence(0.999, 10) == pytest.approx(0.9999)
    assert sweep_confidence(0.99, 0) == 0.99  # nothing asserted: nothing to correct


def _not_faster(seed: int, confidence: float, rounds_budget: float = 60.0) -> str:
    """One verdict on synthetic rounds whose true speedup is exactly min_speedup (1.0).

    Each block takes 1 s times lognormal noise (5%); the fake clock advances
    by what was measured; no systematic widening, so that false passes are
    frequent enough to count.
    """
    rng = random.Random(seed)
    now = [0.0]

    def block() -> float:
        seconds = math.exp(rng.gauss(0.0, 0.05))
        now[0] += seconds
        return seconds

    def measure_round(reference_first: bool) -> tuple[float, float]:
        first, second = block(), block()
        return (first, second) if reference_first else (second, first)

    return stats.run_sequential(
        measure_round, min_speedup=1.0, confidence=confidence, budget=rounds_budget,
        clock=lambda: now[0], systematic=0.0,
    ).verdict  # fmt: skip


def _sweep_passes_a_point(seed: int, points: int, confidence: float) -> bool:
    return any(_not_faster(seed * points + i, confidence) == stats.PASS for i in range(points))


def test_a_corrected_sweep_keeps_the_single_verdicts_bound_on_passing_a_not_faster_point():
    # 90% intervals, so that false passes are common enough to count in a test;
    # the engine's 99.9% behaves alike, only rarer (bench/bench_sweep.py).
    confidence, points, runs = 0.9, 5, 300
    single = sum(_not_faster(10_000 + s, confidence) == stats.PASS for s in range(runs)) / runs
    uncorrected = sum(_sweep_passes_a_point(20_000 + s, points, confidence) for s in range(runs)) / runs
    corrected = sum(
        _sweep_passes_a_point(30_000 + s, points, sweep_confidence(confidence, points)) for s in range(runs)
    ) / runs
    # The single verdict's guarantee: at most (1 - confidence) / 2 per look
    # (docs/speed.md); 60 one-second rounds' worth of budget gives 9 looks.
    looks = sum(1 for n in stats.look_schedule(30) if n <= 30)
    bound = looks * (1 - confidence) / 2
    assert 0.05 < single <= bound
    assert uncorrected > bound  # five chances break one verdict's guarantee...
    assert corrected <= bound  # ...which the corrected sweep keeps
    assert corrected < uncorrected / 2


def test_each_sides_band_is_the_medians_interval_and_never_leaves_the_rounds():
    from pytest_effective_torch.speed.sweep import time_interval

    rounds = [float(v) for v in range(1, 101)]
    random.Random(0).shuffle(rounds)
    # 95%: the 40th and 61st of 100 sorted rounds (the binomial's 2.5% tails)
    assert time_interval(rounds, 0.95) == (40.0, 61.0)
    assert time_interval(rounds[:4], 0.999) == (min(rounds[:4]), max(rounds[:4]))
    low, high = time_interval(list(range(1, 5001)), 0.999)
    assert low < 2500.5 < high and high - low < 250  # the normal approximation for many rounds
    assert time_interval([1.0], 0.9) is None


# --- the engine ---------------------------------------------------------------------


def test_every_point_gets_a_verdict_at_the_corrected_confidence():
    sweep = assert_faster_than_reference(busy(1), busy(20), square, sizes={"n": [1, 2, 3]}, min_speedup=2)
    assert isinstance(sweep, SpeedSweepResult) and sweep.passed
    assert [p.label for p in sweep.points] == ["n=1", "n=2", "n=3"]
    assert all(p.verdict == "pass" for p in sweep.points)
    assert all(p.result.confidence == pytest.approx(1 - 0.001 / 3) for p in sweep.points)
    assert sweep.point_confidence == pytest.approx(1 - 0.001 / 3) and sweep.asserted == 3
    assert "Bonferroni" in str(sweep)


def test_a_candidate_slower_at_small_sizes_fails_naming_those_points_only():
    with pytest.raises(CheckFailed) as info:
        assert_faster_than_reference(fixed_cost, per_row, rows, sizes={"n": [1, 400]}, min_speedup=1)
    message = str(info.value)
    head = message.splitlines()[0]
    assert head.startswith(
        "candidate fixed_cost is not faster than reference per_row as required at 1 of 2 sizes of n=[1, 400]: n=1 ("
    )
    assert "n=400" not in head
    table = message.splitlines()[1:4]
    assert table[0].split() == ["size", "reference", "candidate", "speedup", "[interval]", "required", "verdict"]
    assert table[1].startswith("n=1 ") and table[1].endswith("fail")
    assert table[2].startswith("n=400 ") and table[2].endswith("pass")
    assert "intervals: 99.95% per size (99.9% corrected for 2 asserted sizes, Bonferroni)" in message


def test_min_speedup_per_size_and_none_to_measure_only_there():
    sweep = assert_faster_than_reference(
        fixed_cost, per_row, rows, sizes={"n": [1, 400]}, min_speedup=lambda n: 2 if n >= 100 else None
    )
    assert [(p.label, p.verdict, p.result.min_speedup) for p in sweep.points] == [
        ("n=1", "measured", None), ("n=400", "pass", 2.0),
    ]  # fmt: skip
    assert sweep.asserted == 1 and sweep.point_confidence == 0.999


def test_measure_only_sweeps_assert_nothing():
    sweep = assert_faster_than_reference(busy(20), busy(1), square, sizes={"n": [1, 2]}, min_speedup=None)
    assert sweep.verdict == "measured" and sweep.asserted == 0


def test_a_bad_per_size_min_speedup_names_the_size():
    with pytest.raises(ValueError, match=r"min_speedup at n=2 must be a finite number > 0, got -1"):
        assert_faster_than_reference(busy(1), busy(20), square, sizes={"n": [1, 2]}, min_speedup=lambda n: 1 if n == 1 else -1)
    with pytest.raises(TypeError, match=r"min_speedup must be a number or a callable of the size keywords \(n\)"):
        assert_faster_than_reference(busy(1), busy(20), square, sizes={"n": [1]}, min_speedup=lambda m: 1)


def test_nbytes_and_flops_per_size_become_achieved_rates():
    sweep = assert_faster_than_reference(
        busy(1), busy(20), square, sizes={"n": [1, 2]}, min_speedup=None,
        nbytes=lambda n: 1000 * n, flops=2 * 48**3,
    )  # fmt: skip
    for p in sweep.points:
        result = p.result
        assert result.nbytes == 1000 * p.point["n"]
        assert result.bandwidth("candidate") == pytest.approx(result.nbytes / result.candidate_time)
        assert result.flop_rate("reference") == pytest.approx(2 * 48**3 / result.reference_time)
        assert result.copy_bandwidth is None  # measured on GPUs only
    assert "candidate achieved" in sweep.table_lines()[0]


def test_each_mode_is_its_own_curve():
    sweep = assert_faster_than_reference(
        lambda x: x.sum(1), lambda x: torch.stack([r.sum() for r in x]), rows,
        sizes={"n": [4, 8]}, mode=["forward", "backward", "full"], min_speedup=None,
    )  # fmt: skip
    assert [p.label for p in sweep.points] == [
        "mode=forward,n=4", "mode=forward,n=8", "mode=backward,n=4", "mode=backward,n=8",
        "mode=full,n=4", "mode=full,n=8",
    ]  # fmt: skip
    assert [p.result.measured for p in sweep.points] == ["forward"] * 2 + ["backward"] * 2 + ["forward+backward"] * 2


def test_the_backward_mode_times_the_backward_pass_alone():
    calls = {"forward": 0}

    def counted(x):
        calls["forward"] += 1
        return x * 2

    result = assert_faster_than_reference(counted, counted, (torch.ones(8),), mode="backward", min_speedup=None, time_budget=0.05)
    assert result.measured == "backward"
    # one forward builds the graph (the first call); the timed calls only go backward
    assert calls["forward"] == 2  # the first call of each side


def test_mode_errors_are_the_callers():
    with pytest.raises(ValueError, match="mode must be one of forward, backward, full"):
        assert_faster_than_reference(busy(1), busy(20), square, sizes={"n": [1]}, mode="sideways")
    with pytest.raises(ValueError, match=r"several modes \(\['forward', 'full'\]\) are several curves: they need sizes="):
        assert_faster_than_reference(busy(1), busy(20), (torch.ones(48, 48),), mode=["forward", "full"])
    with pytest.raises(ValueError, match="backward=True times forward plus backward"):
        assert_faster_than_reference(busy(1), busy(20), (torch.ones(48, 48),), mode="backward", backward=True)
    with pytest.raises(TypeError, match="min_speedup is a callable of the size keywords: it needs sizes="):
        assert_faster_than_reference(busy(1), busy(20), (torch.ones(48, 48),), min_speedup=lambda n: 2)


def test_an_undecided_point_follows_the_inconclusive_policy_and_is_named():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep = assert_faster_than_reference(
            busy(1), busy(1), square, sizes={"n": [1, 2]}, min_speedup=1.0, time_budget=1e-9, inconclusive="warn"
        )
    assert sweep.verdict == "inconclusive"
    (warning,) = [w for w in caught if issubclass(w.category, SpeedInconclusiveWarning)]
    assert str(warning.message).startswith("inconclusive at 2 of 2 sizes of n=[1, 2]: n=1 (")
    assert warning.filename == __file__
    with pytest.raises(CheckFailed, match="inconclusive at 2 of 2 sizes"):
        assert_faster_than_reference(busy(1), busy(1), square, sizes={"n": [1, 2]}, time_budget=1e-9)


def test_a_crash_at_a_size_is_an_error_that_names_the_size():
    def breaks_at_3(x):
        if x.shape[0] == 3:
            raise RuntimeError("no kernel for 3 rows")
        return x

    with pytest.raises(RuntimeError, match="no kernel for 3 rows") as info:
        assert_faster_than_reference(breaks_at_3, doubled, rows, sizes={"n": [2, 3]}, min_speedup=None, time_budget=0.02)
    if sys.version_info >= (3, 11):
        assert "effective-torch: at size n=3 of the speed sweep n=[2, 3] (before it: n=2 measured)" in info.value.__notes__


# --- the plot ------------------------------------------------------------------------


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_a_sweep_saves_a_png_of_the_expected_size_and_its_data_as_csv(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    from pytest_effective_torch.speed.plots import figure_pixels, panels

    sweep = assert_faster_than_reference(
        busy(1), busy(20), square_grid, sizes={"m": [1, 2], "n": [3, 4]}, min_speedup=2, nbytes=lambda m, n: 100 * n,
    )  # fmt: skip
    assert panels(sweep) == ["time", "speedup", "bandwidth"]
    png, table = sweep.save_plot(tmp_path / "deep" / "sweep")
    assert png.name == "sweep.png" and table.name == "sweep.csv"
    assert png_size(png) == figure_pixels(sweep) == (900, 648)
    with table.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [r["point"] for r in records] == ["m=1,n=3", "m=1,n=4", "m=2,n=3", "m=2,n=4"]
    for record, point in zip(records, sweep.points, strict=True):
        assert float(record["speedup"]) == pytest.approx(point.result.speedup)
        assert float(record["candidate_bytes_per_second"]) == pytest.approx(point.result.bandwidth("candidate"))
        assert record["verdict"] == "pass" and record["n"] == str(point.point["n"])


def test_under_tritons_interpreter_a_sweep_runs_each_size_once_and_skips(monkeypatch):
    calls = []

    def candidate(x):
        calls.append(x.shape[0])
        return x

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(pytest.skip.Exception, match=r"speed sweep skipped: Triton kernels are interpreted"):
        assert_faster_than_reference(candidate, doubled, rows, sizes={"n": [2, 3]}, min_speedup=2)
    assert calls == [2, 3]  # each size once, so a crash still shows; never timed
