"""The compile variant on the guide's ops: compile time apart, eager and compiled speedups.

For every pair of ``reference_impls`` that runs compiled (it has
``compile_inputs``) this times, with the plugin's own speed engine
(``min_speedup=None``: measured, not asserted):

- ``eager``: the candidate against the eager reference (the guide's claim);
- ``compiled``: ``torch.compile(candidate)`` against the same eager reference;
- ``compiled/eager``: ``torch.compile(candidate)`` against the eager candidate;

at the pair's small ``compile_inputs`` and at the size of its speed claim
(or its ``large_inputs``), except where the candidate is a Python loop
that torch.compile would unroll row by row. ``compile`` is the compiled
candidate's first call (compiling plus one run), which no speedup counts.
The 99.9% intervals are in brackets.

    python bench/bench_compile_variant.py [--budget 1.0] [--only softmax]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from typing import Any

import torch

import reference_impls
from pytest_effective_torch import assert_faster_than_reference

#: Candidates that are Python loops over rows: compiled only at their small inputs.
LOOPS = {"row_sum.unbind"}


def _sizes(pair: Any) -> list[tuple[str, Any, Any]]:
    """(label, inputs, claim or None) for the small and the claim's size."""
    out = [("small", pair.compile_inputs, None)]
    if pair.name in LOOPS:
        return out
    claim = next(
        (c for c in reference_impls.CLAIMS if c.subject == pair.name and c.kind == "faster" and not c.sizes and not c.backward),
        None,
    )
    inputs = claim.inputs if claim is not None and claim.inputs is not None else pair.large_inputs
    out.append(("claim" if claim is not None else "large", inputs, claim))
    return out


def _measure(candidate: Any, reference: Any, inputs: Any, variant: str, budget: float) -> Any:
    return assert_faster_than_reference(
        candidate, reference, inputs, min_speedup=None, device="cpu", dtype=torch.float32,
        time_budget=budget, variant=variant,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per speed comparison (default 1.0)")
    parser.add_argument("--only", default="", help="pairs whose name contains this")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{torch.get_num_threads()} intra-op threads (timing pins 1), budget {args.budget} s per comparison")  # fmt: skip
    header = f"{'pair':<22} {'size':<6} {'inputs':<26} {'compile':>8} {'eager':>22} {'compiled':>22} {'compiled/eager':>22}"
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for pair in reference_impls.PAIRS.values():
        if pair.compile_inputs is None or args.only not in pair.name:
            continue
        for label, inputs, claim in _sizes(pair):
            if claim is not None:
                candidate, reference = claim.bind(pair, torch.device("cpu"), torch.float32)
            else:
                candidate, reference = pair.bind("cpu", torch.float32)
            eager = _measure(candidate, reference, inputs, "eager", args.budget)
            compiled = _measure(candidate, reference, inputs, "compile", args.budget)
            alone = _measure(candidate, candidate, inputs, "compile", args.budget)
            name = getattr(inputs, "__name__", "?")
            print(
                f"{pair.name:<22} {label:<6} {name:<26} {compiled.compile_seconds:>7.1f}s "
                f"{eager.speedup_text():>22} {compiled.speedup_text():>22} {alone.speedup_text():>22}",
                flush=True,
            )
    print(f"total {time.perf_counter() - started:.0f} s; {compiled.compile_description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
