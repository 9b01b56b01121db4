"""How often does a candidate whose true speedup is exactly min_speedup pass?

No real workload has an exact ratio, so this replays synthetic rounds through
the verdict's sequential rule (``_stats.run_sequential``: 99.9% interval, the
4, 5, 7, 9, 12, ... look schedule) with a fake clock, for several kinds of
per-round noise. Deterministic (seeded); prints one table.

    python bench/bench_speed_threshold.py --trials 300 --max-rounds 3000
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable

from pytest_effective_torch.speed import stats as _stats

Noise = Callable[[random.Random, dict, bool], float]


def normal(rng: random.Random, state: dict, reference_first: bool) -> float:
    return rng.gauss(0.0, 0.05)


def student_t2(rng: random.Random, state: dict, reference_first: bool) -> float:
    chi2 = (rng.gauss(0, 1) ** 2 + rng.gauss(0, 1) ** 2) / 2
    return 0.02 * rng.gauss(0, 1) / math.sqrt(chi2)


def ar1(phi: float) -> Noise:
    def noise(rng: random.Random, state: dict, reference_first: bool) -> float:
        state["e"] = phi * state.get("e", 0.0) + math.sqrt(1 - phi * phi) * rng.gauss(0, 0.05)
        return state["e"]

    return noise


def order_effect(rng: random.Random, state: dict, reference_first: bool) -> float:
    return (0.05 if reference_first else -0.05) + rng.gauss(0.0, 0.02)


NOISES = {
    "independent, normal": normal,
    "independent, Student t with 2 df": student_t2,
    "AR(1), correlation 0.5": ar1(0.5),
    "AR(1), correlation 0.9": ar1(0.9),
    "alternating order effect of 5%": order_effect,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--max-rounds", type=int, default=3000)
    parser.add_argument("--min-speedup", type=float, default=1.1)
    args = parser.parse_args()
    print("| per-round log ratios | pass | fail | inconclusive |")
    print("|---|---|---|---|")
    for name, noise in NOISES.items():
        counts = {_stats.PASS: 0, _stats.FAIL: 0, _stats.INCONCLUSIVE: 0}
        for seed in range(args.trials):
            rng, state = random.Random(seed), {}

            def measure_round(reference_first: bool) -> tuple[float, float]:
                e = noise(rng, state, reference_first)  # noqa: B023
                return args.min_speedup * math.exp(e) * 1e-3, 1e-3

            result = _stats.run_sequential(
                measure_round,
                min_speedup=args.min_speedup,
                confidence=0.999,
                budget=math.inf,
                clock=lambda: 0.0,
                max_rounds=args.max_rounds,
            )
            counts[result.verdict] += 1
        print(
            f"| {name} | {counts[_stats.PASS]}/{args.trials} | {counts[_stats.FAIL]} "
            f"| {counts[_stats.INCONCLUSIVE]} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
