"""What one default assert_same_as_reference costs, against the calls it has to make.

For each case it times (1 pinned thread, CPU unless --device):

* the whole default check (input generation, copies, runs, comparisons);
* the forward and backward calls that check has to make, alone, once per
  trial, on inputs and cotangents prepared outside the clock: forward and
  backward of the candidate and of the reference on float64 copies, and the
  reference's forward in the working dtype (a passing check of a function
  never needs the reference's own gradient, only its truth's);

and prints the ratio, the bookkeeping time (check minus calls) and that time
in "passes": how many fp32 clones of the largest tensor it equals; then, per
run of the check and of the calls alone, the user and system CPU time and
the minor page faults (getrusage), and the process's peak resident memory
after the case. System time and page faults are what fresh large
allocations cost: memory handed back to the OS and touched again.

    python bench/bench_equivalence.py [--quick] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from pytest_effective_torch import assert_same_as_reference
from pytest_effective_torch.equivalence.plan import plan
from pytest_effective_torch.inputs import Maker, derive_seed


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def usage() -> tuple[float, float, int]:
    """(user s, system s, minor page faults) of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime, ru.ru_minflt


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warm: bool = True) -> float:
    """Median seconds of ``repeats`` synchronized calls (after one warm-up)."""
    if warm:
        fn()
        sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def calls_alone(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    shapes: list[tuple[int, ...]],
    device: torch.device,
    dtype: torch.dtype,
    n_trials: int,
) -> Callable[[], None]:
    """The forward+backward calls of one check, on prepared inputs."""
    prepared = []
    for i in range(n_trials):
        make = Maker(device, dtype, derive_seed(0, "bench", i))
        xs = [make(*s) for s in shapes]
        x64 = [x.double() for x in xs]
        for x in (*xs, *x64):
            x.requires_grad_(True)
        with torch.no_grad():
            out = reference(*xs)
        cot = torch.rand_like(out)
        prepared.append((xs, x64, cot, cot.double()))

    def run() -> None:
        for xs, x64, cot, cot64 in prepared:
            for fn, args, v in ((candidate, xs, cot), (reference, xs, None), (reference, x64, cot64)):
                out = fn(*args)
                if v is not None:
                    torch.autograd.grad(out, args, v)

    return run


def one_pass(shape: tuple[int, ...], device: torch.device) -> float:
    x = torch.rand(shape, device=device)
    return timed(lambda: x.clone(), device, 5)


def case(
    name: str,
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    shapes: list[tuple[int, ...]],
    device: torch.device,
    repeats: int,
    target: str,
) -> dict[str, Any]:
    dtype = torch.float32

    def inputs(make: Maker) -> tuple[torch.Tensor, ...]:
        return tuple(make(*s) for s in shapes)

    elements = sum(torch.Size(s).numel() for s in shapes)
    n_trials = len(plan(0, builder=True, trials=3, dtype=dtype, input_elements=elements))
    # Alternate the two so that load from other processes hits both alike.
    run_check = lambda: assert_same_as_reference(candidate, reference, inputs, device=device)  # noqa: E731
    run_calls = calls_alone(candidate, reference, shapes, device, dtype, n_trials)
    run_check()
    run_calls()
    checks, calls_ = [], []
    spent = {"check": [0.0, 0.0, 0], "calls": [0.0, 0.0, 0]}

    def counted(what: str, fn: Callable[[], Any]) -> float:
        before = usage()
        seconds = timed(fn, device, 1, warm=False)
        after = usage()
        for i in range(3):
            spent[what][i] += after[i] - before[i]
        return seconds

    for _ in range(repeats):
        checks.append(counted("check", run_check))
        calls_.append(counted("calls", run_calls))
    check, calls = statistics.median(checks), statistics.median(calls_)
    largest = max(shapes, key=lambda s: torch.Size(s).numel())
    per_pass = one_pass(largest, device)
    extra = max(check - calls, 0.0)
    return {
        "case": name,
        "trials": n_trials,
        "check ms": check * 1e3,
        "min check ms": min(checks) * 1e3,
        "calls ms": calls * 1e3,
        "ratio": check / calls,
        "bookkeeping ms": extra * 1e3,
        "~passes/trial": extra / per_pass / n_trials,
        "user s (check/calls)": f"{spent['check'][0] / repeats:.3g}/{spent['calls'][0] / repeats:.3g}",
        "sys s (check/calls)": f"{spent['check'][1] / repeats:.3g}/{spent['calls'][1] / repeats:.3g}",
        "page faults (check/calls)": f"{spent['check'][2] // repeats}/{spent['calls'][2] // repeats}",
        "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "target": target,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="skip the large cases")
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)

    def softmax(x: torch.Tensor) -> torch.Tensor:
        e = torch.exp(x - x.amax(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True)

    def torch_softmax(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, -1)

    cases = [
        ("softmax 64x100", softmax, torch_softmax, [(64, 100)], 51, "check <= 5 ms"),
        ("matmul 2048x2048", torch.matmul, lambda a, b: a @ b, [(2048, 2048), (2048, 2048)], 3, "ratio <= 1.5"),
        ("softmax 4096x4096", softmax, torch_softmax, [(4096, 4096)], 3, "ratio <= 2.5"),
    ]
    if args.quick:
        cases = cases[:1]
    if args.only:
        cases = [c for c in cases if args.only in c[0]]
    rows = [case(name, cand, ref, shapes, device, repeats, target) for name, cand, ref, shapes, repeats, target in cases]

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
