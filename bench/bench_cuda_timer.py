"""Is the plugin's CUDA device time right? Checked against triton's do_bench on a ~20 us gather.

One gather kernel (``src[idx]``: a 16 MiB float32 source, random int64
indices, their count sized by measuring so that one call takes about
``--target-us`` microseconds with a warm L2) is timed in one process, the
two clocks alternating ``--repeats`` times under matched conditions:

* ``triton.testing.do_bench``: CUDA events around each call, L2 flushed
  (256 MB zeroed) before each call, median over its calls;
* the plugin: ``assert_faster_than_reference(gather, gather_again, ...,
  min_speedup=None, timer="device", flush_l2=True, device="cuda")`` and its
  ``candidate_device_time`` (median over rounds of one call each, after an
  L2 flush of at least 256 MiB, behind a sleep kernel so that the events
  bracket the kernel rather than the launch).

It prints both, their ratio and whether the plugin is within 5% of do_bench.
For context also: the plugin's host time (launch and synchronisation
included, which is what a caller of eager code waits for), and both of the
plugin's clocks without the flush against CUDA events around a block of
back-to-back calls (L2 warm).

Needs a CUDA device (exits 2 without one) and triton (exits 1 without it,
after the plugin's numbers). Prints a table; it asserts nothing about time,
and "within 5%" is reported, not enforced.

    python bench/bench_cuda_timer.py [--target-us 20] [--repeats 3] [--time-budget 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from pytest_effective_torch import SpeedResult, assert_faster_than_reference

DEVICE = "cuda"
SOURCE_ELEMENTS = 1 << 22  # 16 MiB of float32: fits in an H200's L2, so the flush matters
TOLERANCE = 0.05


def gather(src: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return src[idx]


def gather_again(src: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The same kernel under another name: the plugin's reference side."""
    return src[idx]


def block_seconds(call: Callable[[], object], calls: int) -> float:
    """Seconds per call from CUDA events around ``calls`` back-to-back calls (L2 warm)."""
    call()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / calls


def size_indices(
    src: torch.Tensor, target: float, generator: torch.Generator
) -> tuple[torch.Tensor, float]:
    """Indices whose gather takes about ``target`` seconds per call (warm), and that time."""
    n = 1 << 20
    for _ in range(5):
        idx = torch.randint(0, src.numel(), (n,), device=src.device, generator=generator)
        seconds = block_seconds(lambda idx=idx: gather(src, idx), 100)
        if abs(seconds / target - 1) < 0.1:
            break
        n = min(max(int(n * target / seconds), 1 << 12), 1 << 28)
    return idx, seconds


@dataclass
class Column:
    """One way of timing the kernel: its seconds per call in each repeat."""

    clock: str
    l2: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def plugin_result(
    src: torch.Tensor, idx: torch.Tensor, *, flush: bool, budget: float
) -> SpeedResult:
    return assert_faster_than_reference(
        gather,
        gather_again,
        (src, idx),
        min_speedup=None,
        device=DEVICE,
        timer="device",
        flush_l2=flush,
        time_budget=budget,
    )


def seconds_of(value: float | None, what: str) -> float:
    if value is None:
        raise RuntimeError(f"the plugin reported no {what}; is this a CUDA device?")
    return value


def ratio_line(what: str, numerator: Column, denominator: Column) -> str:
    ratios = [a / b for a, b in zip(numerator.samples, denominator.samples, strict=True)]
    ratio = statistics.median(ratios)
    within = "yes" if abs(ratio - 1) <= TOLERANCE else "NO"
    each = ", ".join(f"{r:.3f}" for r in ratios)
    return f"{what}: {ratio:.3f} (repeats: {each}); within {TOLERANCE:.0%}: {within}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target-us",
        type=float,
        default=20.0,
        help="microseconds per call to size for (default 20)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternations of the clocks (default 3)"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=2.0,
        help="seconds per plugin measurement (default 2.0)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.target_us <= 0 or args.time_budget <= 0:
        parser.error("--repeats, --target-us and --time-budget must be positive")
    if not torch.cuda.is_available():
        print(
            f"bench_cuda_timer.py: torch {torch.__version__} sees no CUDA device here; "
            "this benchmark times a CUDA kernel and needs one",
            file=sys.stderr,
        )
        return 2
    missing = ""
    try:
        from triton.testing import do_bench
    except ImportError as exc:
        do_bench = None
        missing = f"triton is not importable ({exc}): no do_bench comparison"
    device = torch.device(DEVICE)
    generator = torch.Generator(device=device).manual_seed(0)
    src = torch.rand(SOURCE_ELEMENTS, device=device, generator=generator)
    idx, sized = size_indices(src, args.target_us * 1e-6, generator)

    def call() -> torch.Tensor:
        return gather(src, idx)

    triton_version = getattr(sys.modules.get("triton"), "__version__", "not installed")
    print(
        f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}), triton {triton_version}"
    )
    print(
        f"kernel: src[idx], src {src.numel() * 4 / 2**20:.0f} MiB float32, idx {idx.numel():,} "
        f"int64; sized to {sized * 1e6:.1f} us per call (warm L2, events around 100 calls)"
    )

    bench = Column("triton do_bench: events per call, median", "flushed")
    device_flushed = Column("plugin device time (candidate)", "flushed")
    device_flushed_ref = Column("plugin device time (reference: the same kernel)", "flushed")
    host_flushed = Column("plugin host time: one call per block, launch + sync", "flushed")
    block = Column("events around 200 back-to-back calls", "warm")
    device_warm = Column("plugin device time (candidate)", "warm")
    host_warm = Column("plugin host time (candidate)", "warm")
    spread: list[str] = []
    for _ in range(args.repeats):
        if do_bench is not None:
            median_ms, low_ms, high_ms = do_bench(call, quantiles=[0.5, 0.2, 0.8])
            bench.samples.append(median_ms / 1e3)
            spread.append(f"{low_ms * 1e3:.1f}-{high_ms * 1e3:.1f}")
        flushed = plugin_result(src, idx, flush=True, budget=args.time_budget)
        device_flushed.samples.append(
            seconds_of(flushed.candidate_device_time, "candidate device time")
        )
        device_flushed_ref.samples.append(
            seconds_of(flushed.reference_device_time, "reference device time")
        )
        host_flushed.samples.append(seconds_of(flushed.candidate_host_time, "candidate host time"))
        block.samples.append(block_seconds(call, 200))
        warm = plugin_result(src, idx, flush=False, budget=args.time_budget)
        device_warm.samples.append(seconds_of(warm.candidate_device_time, "candidate device time"))
        host_warm.samples.append(seconds_of(warm.candidate_host_time, "candidate host time"))

    base = bench if bench.samples else None
    print()
    print(f"| clock | L2 | us per call (median of {args.repeats}) | each repeat | vs do_bench |")
    print("|---|---|---|---|---|")
    columns = (
        bench,
        device_flushed,
        device_flushed_ref,
        host_flushed,
        block,
        device_warm,
        host_warm,
    )
    for column in columns:
        if not column.samples:
            print(f"| {column.clock} | {column.l2} | - | - | - |")
            continue
        each = " ".join(f"{s * 1e6:.1f}" for s in column.samples)
        versus = f"{column.median / base.median:.3f}" if base is not None else "-"
        print(f"| {column.clock} | {column.l2} | {column.median * 1e6:.2f} | {each} | {versus} |")
    if spread:
        print(f"do_bench 20th-80th percentile per repeat, us: {', '.join(spread)}")
    print(ratio_line("plugin device time / events around a block (L2 warm)", device_warm, block))
    if base is None:
        print(missing)
        return 1
    print(ratio_line("plugin device time / do_bench (L2 flushed)", device_flushed, bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
