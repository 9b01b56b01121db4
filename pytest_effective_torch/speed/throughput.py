"""Times turned into rates: achieved bytes and FLOP per second, against what the device can do.

``nbytes=`` and ``flops=`` (per call) divide by the time per call. On a GPU
the achieved bandwidth is also given as a fraction of the device's copy
bandwidth, measured once per process (a device-to-device copy, timed with
CUDA events), and FLOP/s as a fraction of the datasheet peak for the few
GPUs in :data:`PEAK_FLOPS`. Nothing here initialises CUDA for a CPU run.
"""

from __future__ import annotations

import re
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Bytes copied to measure a GPU's copy bandwidth (less when memory is short).
COPY_BYTES = 1 << 30

#: Dense peak FLOP/s from NVIDIA's datasheets (boost clock, no sparsity), by
#: GPU name and dtype: float32 on CUDA cores (no TF32), float16 and
#: bfloat16 on tensor cores, float64 on tensor cores where they exist.
#: The first pattern that matches the device name wins.
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"\bH200\b", {"float64": 67e12, "float32": 67e12, "bfloat16": 989e12, "float16": 989e12}),
    (r"\bH100 PCIe\b", {"float64": 51e12, "float32": 51e12, "bfloat16": 756e12, "float16": 756e12}),
    (r"\bH100\b", {"float64": 67e12, "float32": 67e12, "bfloat16": 989e12, "float16": 989e12}),
    (r"\bA100\b", {"float64": 19.5e12, "float32": 19.5e12, "bfloat16": 312e12, "float16": 312e12}),
    (r"\bL40S\b", {"float32": 91.6e12, "bfloat16": 362e12, "float16": 362e12}),
    (r"\bL4\b", {"float32": 30.3e12, "bfloat16": 121e12, "float16": 121e12}),
)

_COPY_BANDWIDTH: dict[str, float | None] = {}


def peak_flops(device_name: str, dtype: str | None) -> float | None:
    """The datasheet peak FLOP/s of a GPU in ``dtype``; None for GPUs (and dtypes) not in the table.

    >>> peak_flops("NVIDIA H200", "bfloat16")
    989000000000000.0
    >>> peak_flops("NVIDIA L40S", "float64") is None
    True
    """
    for pattern, peaks in PEAK_FLOPS:
        if re.search(pattern, device_name):
            return peaks.get(dtype or "")
    return None


def copy_bandwidth(device: torch.device) -> float | None:
    """Bytes per second a device-to-device copy moves on this GPU (read plus write); None off CUDA.

    Measured once per process and device: the median of 5 blocks of 5
    copies of up to :data:`COPY_BYTES`, timed with CUDA events.
    """
    if device.type != "cuda":
        return None
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    key = f"cuda:{index}"
    if key not in _COPY_BANDWIDTH:
        _COPY_BANDWIDTH[key] = _measure_copy(torch.device(key))
    return _COPY_BANDWIDTH[key]


def _measure_copy(device: torch.device) -> float | None:
    import torch

    with torch.cuda.device(device):
        free, _ = torch.cuda.mem_get_info(device)
        nbytes = min(COPY_BYTES, free // 8) >> 20 << 20
        if nbytes < 1 << 20:
            return None
        src = torch.empty(nbytes, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        dst.copy_(src)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(5):
            start.record()
            for _ in range(5):
                dst.copy_(src)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / 5)
        del src, dst
    seconds = statistics.median(times)
    return 2 * nbytes / seconds if seconds > 0 else None


def fmt_bandwidth(bytes_per_second: float | None) -> str:
    """``1.47 TB/s``, ``812 MB/s``; a dash for None."""
    return _fmt_rate(bytes_per_second, "B/s")


def fmt_flops(flops_per_second: float | None) -> str:
    """``3.2 TFLOP/s``; a dash for None."""
    return _fmt_rate(flops_per_second, "FLOP/s")


def _fmt_rate(value: float | None, unit: str) -> str:
    if value is None or not value == value:
        return "-"
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"
