"""Device-correct clocks for the speed verdict.

* CPU: ``time.perf_counter`` around a block of calls, with torch's intra-op
  thread count pinned for the whole measurement and restored afterwards.
* CUDA: never a reading without a synchronisation. Each block is timed twice:
  *host time* (synchronize, start the wall clock, launch the calls,
  synchronize, stop: what a user of eager code waits for, launch overhead
  included) and *device time* (CUDA events around the same calls while a
  sleep kernel queued in front keeps the GPU from idling, so the events
  measure kernels, not the CPU's launch rate). An optional L2 flush runs
  before each block, outside both timed regions; with it a block is one
  call, so every timed call starts from a cold cache.
* MPS: host time with ``torch.mps.synchronize``.

Nothing here initialises CUDA unless it is asked to time a CUDA device.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Bytes written to evict the L2 cache when no size is known (as triton does).
L2_FLUSH_BYTES = 256 * 2**20


def untimed_reason() -> str | None:
    """Why nothing may be timed in this process, or None.

    Under Triton's interpreter (``TRITON_INTERPRET=1``, which
    ``--effective-torch-triton-interpret`` sets) Triton kernels run as Python
    loops on the host: their times say nothing about the compiled kernels.
    """
    import os

    if os.environ.get("TRITON_INTERPRET") == "1":
        return (
            "Triton kernels are interpreted (TRITON_INTERPRET=1, as --effective-torch-triton-interpret "
            "sets): an interpreted kernel's time says nothing about the compiled one"
        )
    return None


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device``; nothing to do on the CPU."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    elif device.type == "mps":
        import torch

        torch.mps.synchronize()


def synchronized_timer() -> float:
    """``time.perf_counter()`` after waiting for the current CUDA device.

    A timer for pytest-benchmark's plain ``benchmark`` fixture, which
    otherwise measures how long it takes to *launch* asynchronous GPU work:

    >>> @pytest.mark.benchmark(timer=synchronized_timer)  # doctest: +SKIP
    ... def test_matmul(benchmark):
    ...     benchmark(torch.mm, a, b)

    or for every test: ``pytest --benchmark-timer=pytest_effective_torch.synchronized_timer``.
    It never initialises CUDA itself: before any CUDA work it is a plain
    ``perf_counter``.
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


@contextmanager
def pinned_threads(device: torch.device, threads: int | None) -> Iterator[int | None]:
    """Pin torch's intra-op threads on the CPU while timing; restore them after.

    Yields the pinned count, or None when nothing was pinned (not a CPU
    device, or ``threads`` is None).
    """
    import torch

    if device.type != "cpu" or threads is None:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the garbage collector out of the timed blocks.

    No full collection first: with torch loaded one takes ~80 ms.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class BlockTime:
    """Seconds per call of one block: synchronized host time, and CUDA device time."""

    host: float
    device: float | None = None


class HostBlockTimer:
    """Synchronized wall-clock time of a block of calls (CPU, MPS)."""

    kind = "host"
    description = "host time (time.perf_counter)"

    def __init__(self, device: torch.device, clock: Callable[[], float] = time.perf_counter):
        self.device = device
        self.clock = clock

    def time(self, call: Callable[[], Any], calls: int) -> BlockTime:
        __tracebackhide__ = True  # a crash shows the user's frames, not the timer's
        synchronize(self.device)
        start = self.clock()
        for _ in range(calls):
            call()
        synchronize(self.device)
        return BlockTime(host=(self.clock() - start) / calls)


class CudaBlockTimer:
    """Host time and CUDA-event device time of a block of calls on one GPU."""

    kind = "host+device"
    description = "host time (synchronized time.perf_counter) and device time (CUDA events)"

    def __init__(self, device: torch.device, *, flush_l2: bool = False):
        import torch

        self.device = device
        self._torch = torch
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        self._flush_buffer: torch.Tensor | None = None
        if flush_l2:
            props = torch.cuda.get_device_properties(device)
            l2 = int(getattr(props, "L2_cache_size", 0) or 0)
            self._flush_buffer = torch.empty(
                max(L2_FLUSH_BYTES, 2 * l2), dtype=torch.int8, device=device
            )
        self._sleep = getattr(torch.cuda, "_sleep", None)
        self._cycles_per_second = self._calibrate_sleep() if self._sleep else 0.0

    def _calibrate_sleep(self) -> float:
        cycles = 1_000_000
        with self._torch.cuda.device(self.device):
            self._torch.cuda.synchronize(self.device)
            self._start.record()
            self._sleep(cycles)  # type: ignore[misc]
            self._end.record()
            self._end.synchronize()
        seconds = self._start.elapsed_time(self._end) / 1e3
        return cycles / seconds if seconds > 0 else 0.0

    def flush(self) -> None:
        if self._flush_buffer is not None:
            self._flush_buffer.zero_()

    def time(self, call: Callable[[], Any], calls: int) -> BlockTime:
        __tracebackhide__ = True  # a crash shows the user's frames, not the timer's
        torch = self._torch
        with torch.cuda.device(self.device):
            # Host time: what a caller of eager code waits for.
            self.flush()
            torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            for _ in range(calls):
                call()
            torch.cuda.synchronize(self.device)
            host = time.perf_counter() - start

            # Device time: a sleep kernel in front keeps the GPU busy while
            # the CPU queues the calls, so the events bracket back-to-back
            # kernels instead of launch gaps.
            self.flush()
            torch.cuda.synchronize(self.device)
            if self._sleep and self._cycles_per_second:
                head_start = min(1.5 * host + 50e-6, 0.5)
                self._sleep(int(head_start * self._cycles_per_second))
            self._start.record()
            for _ in range(calls):
                call()
            self._end.record()
            self._end.synchronize()
            device_seconds = self._start.elapsed_time(self._end) / 1e3
        return BlockTime(host=host / calls, device=device_seconds / calls)


def block_timer(device: torch.device, *, flush_l2: bool = False) -> HostBlockTimer | CudaBlockTimer:
    """The right timer for ``device``; the L2 flush only exists on CUDA."""
    if device.type == "cuda":
        return CudaBlockTimer(device, flush_l2=flush_l2)
    return HostBlockTimer(device)


def time_once(call: Callable[[], Any], device: torch.device) -> float:
    """Synchronized wall-clock seconds of a single call (first calls, warm-up)."""
    __tracebackhide__ = True  # a crash shows the user's frames, not the timer's
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start
