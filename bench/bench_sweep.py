"""What size sweeps cost, and how often a sweep passes a size that is not faster.

1. A 10-point speed sweep of the guide's batch gather (vectorized against
   the loop, batch 1 to 1024) on the default settings (1 pinned thread,
   2 s budget per point, 99.9% corrected for the points asserted), run
   ``--runs`` times, measure-only and with the suite's thresholds (10x from
   batch 256). Wall time of the whole call (inputs, first calls, rounds),
   next to one comparison at batch 1024.
2. An equivalence sweep of the same gather over 10 batches against 10
   default checks at those batches.
3. The family-wise false-pass rate on injected synthetic timings: every
   point's true speedup is exactly ``min_speedup``; a sweep "passes a
   not-faster point" when any point passes. One verdict, an uncorrected
   sweep and the Bonferroni-corrected sweep, at confidences low enough
   for the rates to be counted (no systematic widening: the worst case).

    python bench/bench_sweep.py              # all three, about 2 minutes on 2 cores
    python bench/bench_sweep.py --runs 1 --sims 100
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import torch

from pytest_effective_torch import assert_faster_than_reference, assert_same_as_reference
from pytest_effective_torch.speed import stats
from pytest_effective_torch.speed.sweep import sweep_confidence
from reference_impls.batch_gather import (
    gather_by_batch,
    gather_flat_index,
    gather_loop,
    gather_nbytes,
    vectorized_beats_loop_cpu,
)

BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024]


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def speed_cost(runs: int) -> None:
    print(f"## 1. A 10-point speed sweep of the batch gather, batch {BATCHES[0]}..{BATCHES[-1]} ({runs} runs)")
    print(f"torch {torch.__version__}, intra-op threads pinned to 1 while timing")
    print("| what | wall s (median, min-max) | rounds (median) | verdicts |")
    print("|---|---|---|---|")
    for label, wanted in (("measure-only", None), ("asserted 10x from batch 256", vectorized_beats_loop_cpu)):
        walls, rounds, verdicts = [], [], []
        for _ in range(runs):
            wall, sweep = timed(
                lambda wanted=wanted: assert_faster_than_reference(
                    gather_flat_index, gather_loop, gather_by_batch, sizes={"batch": BATCHES},
                    min_speedup=wanted, nbytes=gather_nbytes, inconclusive="warn",
                )
            )
            walls.append(wall)
            rounds.append(sum(p.result.rounds for p in sweep.points))
            verdicts.append(sweep.verdict)
        print(
            f"| {label} | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
            f"{statistics.median(rounds):.0f} | {', '.join(sorted(set(verdicts)))} |"
        )
    walls = []
    for _ in range(runs):
        wall, _ = timed(
            lambda: assert_faster_than_reference(
                gather_flat_index, gather_loop, lambda make: gather_by_batch(make, batch=1024), min_speedup=10
            )
        )
        walls.append(wall)
    print(f"| one comparison at batch 1024, 10x | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) | | |")


def equivalence_cost(runs: int) -> None:
    print(f"\n## 2. Equivalence: a 10-size sweep against 10 default checks ({runs} runs)")
    sweep_walls, single_walls = [], []
    for _ in range(runs):
        wall, _ = timed(lambda: assert_same_as_reference(gather_flat_index, gather_loop, gather_by_batch, sizes={"batch": BATCHES}))
        sweep_walls.append(wall)
        wall, _ = timed(
            lambda: [
                assert_same_as_reference(gather_flat_index, gather_loop, lambda make, b=b: gather_by_batch(make, batch=b))
                for b in BATCHES
            ]
        )
        single_walls.append(wall)
    sweep, single = statistics.median(sweep_walls), statistics.median(single_walls)
    print("| what | trials | wall s (median) |")
    print("|---|---|---|")
    print(f"| sweep of 10 sizes | 20 | {sweep:.3f} |")
    print(f"| 10 default checks | 60 | {single:.3f} |")
    print(f"sweep / checks: {sweep / single:.2f}")


def not_faster(seed: int, confidence: float, budget: float = 60.0) -> str:
    """One verdict on synthetic rounds (1 s blocks, 5% lognormal noise) whose true speedup is min_speedup."""
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
        measure_round, min_speedup=1.0, confidence=confidence, budget=budget, clock=lambda: now[0], systematic=0.0
    ).verdict


def family(sims: int) -> None:
    print(f"\n## 3. Passing a not-faster point: one verdict vs a sweep ({sims} simulated sweeps each)")
    print("| confidence | points | one verdict | sweep, uncorrected | sweep, Bonferroni |")
    print("|---|---|---|---|---|")
    for confidence, points in ((0.9, 5), (0.9, 10), (0.99, 5), (0.99, 10)):
        single = sum(not_faster(s, confidence) == stats.PASS for s in range(sims)) / sims

        def rate(per_point: float, base: int, points: int = points) -> float:
            hits = 0
            for s in range(sims):
                hits += any(not_faster(base + s * points + i, per_point) == stats.PASS for i in range(points))
            return hits / sims

        plain = rate(confidence, 10**6)
        corrected = rate(sweep_confidence(confidence, points), 2 * 10**6)
        print(f"| {confidence:g} | {points} | {single:.1%} | {plain:.1%} | {corrected:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sims", type=int, default=400)
    args = parser.parse_args()
    speed_cost(args.runs)
    equivalence_cost(args.runs)
    family(args.sims)


if __name__ == "__main__":
    main()
