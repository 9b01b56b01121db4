"""How close the vectorized batch gather gets to the device's copy bandwidth.

``python -m reference_impls.bandwidth --device=cuda`` times the flat-index
gather on a large input (:data:`reference_impls.batch_gather.HUGE`: a 1 GiB
float32 source, 64 MiB gathered) and a plain device-to-device copy of a
buffer of the same size as the source, and prints both as bytes moved per
second. A gather reads the gathered rows and the indices and writes the
output, so it moves ``2 * output + indices`` bytes; a copy moves ``2 * size``.
On an H200 the gather measured 1.47 TB/s against about 4.3 TB/s of copy
bandwidth (ANCHORS.md).

On CUDA it also times the Triton gather
(:func:`reference_impls.triton_ops.gather_triton`, beyond the guide) on the
same input, and the fused Triton cross-entropy's forward against the
logsumexp form on ``[4096, 4096]`` float32 (it reads logits and labels once:
``2 * size`` bytes). Its target on an H200: at least 3.0 TB/s for the
gather. ``--sweep`` also times a few other tilings of the gather kernel
(rows per program, warps), to choose the default from. Triton is never
timed on the CPU (only its interpreter runs there, and its timings mean
nothing); the line says so instead.

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


#: Tilings of the gather kernel that ``--sweep`` times: (bytes per program, warps).
SWEEP = ((8 * 1024, 4), (16 * 1024, 4), (16 * 1024, 8), (32 * 1024, 8), (64 * 1024, 8))


def measure_triton(
    device: torch.device | str,
    *,
    batch: int = 1 << 16,
    n: int = 16,
    width: int = 256,
    sweep: bool = False,
) -> list[Bandwidth]:
    """The Triton gather's bandwidth (default tiling first, then the ``SWEEP`` ones if asked).

    Every tiling's output is checked against the vectorized gather before it
    is timed. Raises ImportError when triton is missing.
    """
    from reference_impls.triton_ops import gather_triton, load_kernels

    gather_module, _ = load_kernels()
    device = torch.device(device)
    make = Maker(device, torch.float32, seed=0)
    tensor, indices = gather_inputs(batch, n, width)(make)
    expected = gather_flat_index(tensor, indices)
    nbytes = (
        2 * expected.numel() * expected.element_size() + indices.numel() * indices.element_size()
    )
    rows, cols = indices.numel(), expected[0].numel()
    default = gather_module.gather_config(rows, cols, tensor.element_size())
    if not torch.equal(gather_triton(tensor, indices), expected):
        raise AssertionError("the Triton gather disagrees with the vectorized one")
    results = [
        Bandwidth(
            f"Triton gather ({default.block_rows}x{default.block_cols}, {default.num_warps} warps)",
            time_per_call(lambda: gather_triton(tensor, indices), device),
            nbytes,
        )
    ]
    if not sweep:
        return results
    out = torch.empty(rows, cols, dtype=tensor.dtype, device=device)
    for tile_bytes, warps in SWEEP:
        config = gather_module.gather_config(
            rows, cols, tensor.element_size(), tile_bytes=tile_bytes, num_warps=warps
        )
        gather_module.gather_into(out, tensor, indices, config)
        if not torch.equal(out.reshape(expected.shape), expected):
            raise AssertionError(
                f"the Triton gather with {config} disagrees with the vectorized one"
            )
        seconds = time_per_call(
            lambda config=config: gather_module.gather_into(out, tensor, indices, config), device
        )
        label = f"  sweep {config.block_rows}x{config.block_cols}, {config.num_warps} warps"
        results.append(Bandwidth(label, seconds, nbytes))
    return results


def measure_cross_entropy(
    device: torch.device | str, *, rows: int = 4096, cols: int = 4096
) -> tuple[Bandwidth, Bandwidth]:
    """(fused Triton, logsumexp form) forward bandwidth: bytes of logits and labels read once."""
    from reference_impls.cross_entropy import cross_entropy_stable, soft_labels
    from reference_impls.triton_ops import cross_entropy_triton

    device = torch.device(device)
    args = soft_labels(rows, cols)(Maker(device, torch.float32, seed=0))
    labels, logits = args.args
    torch.testing.assert_close(
        cross_entropy_triton(labels, logits), cross_entropy_stable(labels, logits)
    )
    nbytes = 2 * logits.numel() * logits.element_size()
    return (
        Bandwidth(
            "Triton cross-entropy forward",
            time_per_call(lambda: cross_entropy_triton(labels, logits), device),
            nbytes,
        ),
        Bandwidth(
            "logsumexp cross-entropy forward",
            time_per_call(lambda: cross_entropy_stable(labels, logits), device),
            nbytes,
        ),
    )


def _triton_lines(
    device: torch.device, batch: int, gather: Bandwidth, copy: Bandwidth, sweep: bool
) -> list[str]:
    from reference_impls.triton_ops import triton_skip_reason

    reason = triton_skip_reason(device, timing=True)
    if reason is not None:
        return [f"Triton gather: not timed ({reason})"]
    lines = []
    for result in measure_triton(device, batch=batch, sweep=sweep):
        lines.append(
            f"{result} ({result.bytes_per_second / copy.bytes_per_second:.0%} of copy, "
            f"{result.bytes_per_second / gather.bytes_per_second:.2f}x the vectorized gather)"
        )
    fused, torch_form = measure_cross_entropy(device)
    lines += [
        str(fused),
        str(torch_form),
        f"fused / logsumexp form speed: {torch_form.seconds / fused.seconds:.2f}x",
    ]
    return lines


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
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also time other tilings of the Triton gather (CUDA only); default: off",
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
    for line in _triton_lines(device, batch, gather, copy, args.sweep):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
