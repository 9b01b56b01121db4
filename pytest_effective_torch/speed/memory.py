"""Peak memory of one call: CUDA's allocator statistics, or the CPU profiler.

The peak is counted from what was allocated when the call began, so inputs
that already exist are not part of it; outputs are (they are alive when the
call returns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def peak_memory(call: Callable[[], Any], device: torch.device) -> int | None:
    """Bytes allocated at the peak of ``call()`` beyond what existed before.

    None where this device has no way to tell (MPS, other backends).
    """
    __tracebackhide__ = True  # a crash shows the user's frames, not ours
    if device.type == "cuda":
        return _peak_cuda(call, device)
    if device.type == "cpu":
        return _peak_cpu(call)
    return None


def _peak_cuda(call: Callable[[], Any], device: torch.device) -> int:
    __tracebackhide__ = True
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = call()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del out
    return max(0, int(peak))


def _peak_cpu(call: Callable[[], Any]) -> int:
    """Replay the profiler's allocation events in time order and keep the maximum."""
    __tracebackhide__ = True
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = call()
        del out
    deltas = _allocation_deltas(prof)
    running = peak = 0
    for _, nbytes in sorted(deltas):
        running += nbytes
        peak = max(peak, running)
    return int(peak)


def _allocation_deltas(prof: Any) -> list[tuple[int, int]]:
    """(time, bytes) of every CPU allocation (+) and free (-) the profiler saw."""
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if results is not None:
        deltas = []
        for event in results.events():
            if event.name() == "[memory]" and str(event.device_type()).endswith("CPU"):
                deltas.append((int(event.start_ns()), int(event.nbytes())))
        if deltas:
            return deltas
    # Public fallback: memory attributed to each top-level operator, at
    # operator granularity (a temporary freed inside one operator is missed).
    return [
        (int(event.time_range.start), int(event.cpu_memory_usage))
        for event in prof.events()
        if event.cpu_parent is None and event.cpu_memory_usage
    ]
