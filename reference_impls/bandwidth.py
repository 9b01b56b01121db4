"""How close the vectorized batch gather gets to the device's copy bandwidth.

``python -m reference_impls.bandwidth --device=cuda`` times the flat-index
gather on a large input (:data:`reference_impls.batch_gather.HUGE`: a 1 GiB
float32 source, 64 MiB gathered) and a plain device-to-device copy of a
buffer of the same size as the source, and prints both as bytes moved per
second. A gather reads the gathered rows and the indices and writes the
output, so it moves ``2 * output + indices`` bytes; a copy moves ``2 * size``.
On an H200 the gather measured 1.47 TB/s against about 4.3 TB/s of copy
bandwidth (ANCHORS.md).

On CUDA the time is device time from CUDA events around a block of calls
(median over blocks); elsewhere it is synchronized wall-clock time. On the
CPU the default sizes are smaller (``--scale``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from pytest_effective_torch import Maker
from reference_impls.batch_gather import gather_flat_index, gather_inputs


@dataclass(frozen=True)
class Bandwidth:
    """Seconds per call and bytes moved per call of one operation."""

    name: str
    seconds: float
    nbytes: int

    @property
    def bytes_per_second(self) -> float:
        return self.nbytes / self.seconds

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.nbytes / 2**20:.0f} MiB in {self.seconds * 1e6:.1f} us "
            f"= {self.bytes_per_second / 1e9:.1f} GB/s"
        )


def time_per_call(
    fn: Callable[[], object], device: torch.device, *, calls: int = 20, blocks: int = 7
) -> float:
    """Median seconds per call over ``blocks`` blocks of ``calls`` calls (after warm-up)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(blocks):
        if device.type == "cuda":
            # The events go on the measured GPU's stream (not the current
            # GPU's), and its work is launched with that GPU current.
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            stream = torch.cuda.current_stream(device)
            torch.cuda.synchronize(device)
            with torch.cuda.device(device):
                start.record(stream)
                for _ in range(calls):
                    fn()
                end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / calls)
        else:
            begin = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - begin) / calls)
    return statistics.median(times)


def measure(
    device: torch.device | str, *, batch: int = 1 << 16, n: int = 16, width: int = 256
) -> tuple[Bandwidth, Bandwidth]:
    """(gather, copy) bandwidth on ``device`` for a ``[batch, n, width]`` float32 source."""
    device = torch.device(device)
    make = Maker(device, torch.float32, seed=0)
    tensor, indices = gather_inputs(batch, n, width)(make)
    out = gather_flat_index(tensor, indices)
    gather_bytes = 2 * out.numel() * out.element_size() + indices.numel() * indices.element_size()
    gather = Bandwidth(
        "vectorized gather",
        time_per_call(lambda: gather_flat_index(tensor, indices), device),
        gather_bytes,
    )
    dst = torch.empty_like(tensor)
    copy_bytes = 2 * tensor.numel() * tensor.element_size()
    copy = Bandwidth("device copy", time_per_call(lambda: dst.copy_(tensor), device), copy_bytes)
    return gather, copy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference_impls.bandwidth", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="default: cuda if available, else cpu",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="fraction of the default batch (65536); default 1 on cuda, 1/16 elsewhere",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    scale = args.scale if args.scale is not None else (1.0 if device.type == "cuda" else 1 / 16)
    batch = max(1, int((1 << 16) * scale))
    gather, copy = measure(device, batch=batch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {device} ({name}), source [{batch}, 16, 256] float32")
    print(gather)
    print(copy)
    print(f"gather / copy bandwidth: {gather.bytes_per_second / copy.bytes_per_second:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
