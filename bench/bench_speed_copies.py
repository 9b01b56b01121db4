"""Two instances of the same function timed against each other, in fresh runs.

Within one run the rounds average noise away, but an offset that is fixed for
the run (memory layout, code placement) is not noise: it moves the whole
interval. This repeats A/A comparisons at the default ``min_speedup=1.0``
and prints each run's speedup estimate and verdict (p pass, f fail,
i inconclusive), the measurement behind ``_stats.SYSTEMATIC``.

    python bench/bench_speed_copies.py --runs 12 --budget 0.6
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import torch

from pytest_effective_torch.speed.result import SpeedOptions
from pytest_effective_torch.speed.run import compare_speed


def matmuls(reps: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def work(x: torch.Tensor) -> torch.Tensor:
        out = x
        for _ in range(reps):
            out = torch.mm(x, x)
        return out

    return work


CASES: dict[str, tuple[int, Callable[[], Callable[[torch.Tensor], torch.Tensor]]]] = {
    "1 matmul 32x32 (~5 us)": (32, lambda: matmuls(1)),
    "x + 1 on 16x16 (~2 us)": (16, lambda: lambda x: x + 1),
    "10 matmuls 128x128 (~350 us)": (128, lambda: matmuls(10)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--budget", type=float, default=0.6)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("| function | speedups, sorted | sd | verdicts |")
    print("|---|---|---|---|")
    for name, (size, make) in CASES.items():
        x = torch.randn(size, size)
        estimates, verdicts = [], []
        for _ in range(args.runs):
            options = SpeedOptions(min_speedup=1.0, time_budget=args.budget)
            result = compare_speed(make(), make(), (x,), options)
            estimates.append(result.speedup)
            verdicts.append(result.verdict[0])
        print(
            f"| {name} | {' '.join(f'{e:.3f}' for e in sorted(estimates))} "
            f"| {statistics.stdev(estimates):.4f} | {''.join(verdicts)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
