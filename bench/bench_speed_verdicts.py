"""How reliable are speed verdicts? Repeat known comparisons and count the outcomes.

Three comparisons whose true answer is known, each repeated ``--trials``
times with the default settings (1 pinned thread, 2 s budget, 99.9%
interval):

* identical functions, min_speedup=1.1           -> must never pass
* the candidate does half the work, min 1.5      -> must always pass
* the candidate does 1/1.3 of the work, min 1.1  -> must pass >= 90%

With ``--load`` the same runs again while another process burns a core.
Prints one table; the targets are in bench/RESULTS.md.

On a GPU, ``--timer`` picks the clock the verdicts use (``host``:
synchronized wall-clock time, ``device``: CUDA events) and
``--time-budget`` bounds each verdict, so that a fixed number of trials fits
a short slot (an inconclusive verdict is counted, never a pass):

    python bench/bench_speed_verdicts.py --trials 50 --load
    python bench/bench_speed_verdicts.py --trials 5      # a quick look
    python bench/bench_speed_verdicts.py --device=cuda --timer=device --time-budget=1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pytest_effective_torch import CheckFailed, assert_faster_than_reference

BURN = "while True:\n    pass\n"


def matmuls(reps: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``reps`` 128x128 matmuls: the work is proportional to ``reps``."""

    def work(x: torch.Tensor) -> torch.Tensor:
        out = x
        for _ in range(reps):
            out = torch.mm(x, x)
        return out

    work.__qualname__ = f"matmul_x{reps}"
    return work


@dataclass(frozen=True)
class Case:
    name: str
    reference_reps: int
    candidate_reps: int
    min_speedup: float
    target: str


CASES = (
    Case("identical", 10, 10, 1.1, "pass 0%"),
    Case("half the work", 20, 10, 1.5, "pass 100%"),
    Case("1/1.3 of the work", 13, 10, 1.1, "pass >= 90%"),
)


def run_case(
    case: Case, trials: int, device: str, *, timer: str = "host", time_budget: float = 2.0
) -> dict[str, object]:
    x = torch.randn(128, 128, device=device)
    candidate, reference = matmuls(case.candidate_reps), matmuls(case.reference_reps)
    outcomes: list[str] = []
    seconds: list[float] = []
    rounds: list[int] = []
    for _ in range(trials):
        start = time.perf_counter()
        try:
            result = assert_faster_than_reference(
                candidate,
                reference,
                (x,),
                min_speedup=case.min_speedup,
                device=device,
                timer=timer,
                time_budget=time_budget,
            )
            outcomes.append("pass")
            rounds.append(result.rounds)
        except CheckFailed as exc:
            outcomes.append("inconclusive" if str(exc).startswith("inconclusive") else "fail")
        seconds.append(time.perf_counter() - start)
    return {
        "case": case.name,
        "min": case.min_speedup,
        "target": case.target,
        "pass": outcomes.count("pass"),
        "fail": outcomes.count("fail"),
        "inconclusive": outcomes.count("inconclusive"),
        "trials": trials,
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "median_rounds": statistics.median(rounds) if rounds else None,
    }


def met(row: dict[str, object]) -> bool:
    passed, trials = int(row["pass"]), int(row["trials"])  # type: ignore[arg-type]
    if row["case"] == "identical":
        return passed == 0
    if row["case"] == "half the work":
        return passed == trials
    return passed >= 0.9 * trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="repetitions per case (default 50)")
    parser.add_argument("--load", action="store_true", help="also run with a core-burning process")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--timer",
        choices=("host", "device"),
        default="host",
        help="the clock verdicts use on CUDA: host or device time (default host)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=2.0,
        help="seconds each verdict may take before it is inconclusive (default 2.0)",
    )
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print(
                f"bench_speed_verdicts.py: --device={args.device} but torch "
                f"{torch.__version__} sees no CUDA device here",
                file=sys.stderr,
            )
            return 2
        # cuBLAS and the context start on the first matmul: not in a verdict.
        warm = torch.randn(128, 128, device=args.device)
        torch.mm(warm, warm)
        torch.cuda.synchronize(args.device)
        where = f"{args.device} ({torch.cuda.get_device_name(args.device)})"
    else:
        where = args.device

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, device {where}, "
        f"timer {args.timer}, time budget {args.time_budget:g} s per verdict, "
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    header = (
        "| load | case | min_speedup | pass | fail | inconclusive | target | met "
        "| median verdict s | max s | median rounds (passes) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    all_met = True
    for loaded in (False, True) if args.load else (False,):
        burner = subprocess.Popen([sys.executable, "-c", BURN]) if loaded else None
        try:
            if burner is not None:
                time.sleep(0.5)  # let it get going
            for case in CASES:
                row = run_case(
                    case, args.trials, args.device, timer=args.timer, time_budget=args.time_budget
                )
                ok = met(row)
                all_met &= ok
                median_rounds = row["median_rounds"]
                print(
                    f"| {'second core busy' if loaded else 'idle'} | {row['case']} | {row['min']} "
                    f"| {row['pass']}/{row['trials']} | {row['fail']} | {row['inconclusive']} "
                    f"| {row['target']} | {'yes' if ok else 'NO'} | {row['median_s']:.3f} "
                    f"| {row['max_s']:.3f} | {median_rounds if median_rounds is not None else '-'} |",
                    flush=True,
                )
        finally:
            if burner is not None:
                burner.terminate()
                burner.wait()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("all targets met" if all_met else "SOME TARGETS MISSED")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
