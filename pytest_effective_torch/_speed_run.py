"""Measuring a speed comparison: inputs, first calls, warm-up, interleaved rounds.

Equality is not checked here (``assert_same_as_reference`` does that), but
both sides are called once before timing, so a crash is reported as a crash
with context, and that first call's cost (compilation, autotuning, lazy
initialisation) is reported apart from the rounds.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _stats
from ._dtypes import dtype_name
from ._errors import with_context
from ._inputs import Args, Inputs, Maker, build
from ._speed import SpeedOptions, SpeedResult, _name

#: Seconds one block of calls should last: far above the timer's resolution
#: and the loop's overhead, yet short, so that on a busy machine a preemption
#: hits few blocks (outliers the trimmed mean drops) rather than most of them.
#: 1 ms blocks left verdicts inconclusive with the second core busy; 0.2 ms
#: did not (bench/RESULTS.md).
BLOCK_SECONDS = 2e-4
#: Share of the time budget that warm-up may take.
WARMUP_SHARE = 0.02
WARMUP_CALLS = 3
#: Share of the budget after which warm-up stops even before WARMUP_CALLS.
WARMUP_CAP = 0.1


def _first_device(args: Args) -> Any:
    import torch

    for value in [*args.args, *args.kwargs.values()]:
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def _shapes(args: Args) -> str:
    import torch

    def one(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return f"{tuple(value.shape)} {dtype_name(value.dtype)}"
        return type(value).__name__

    parts = [one(v) for v in args.args] + [f"{k}={one(v)}" for k, v in args.kwargs.items()]
    return ", ".join(parts)


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _with_grad_leaves(args: Args) -> tuple[Args, list[Any]]:
    """Copies of the floating-point tensor arguments that require grad."""
    import torch

    leaves: list[Any] = []

    def leaf(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            copy = value.detach().clone().requires_grad_(True)
            leaves.append(copy)
            return copy
        return value

    new = Args(*[leaf(v) for v in args.args], **{k: leaf(v) for k, v in args.kwargs.items()})
    return new, leaves


class _BackwardMisuse(Exception):
    """``backward=True`` where it cannot apply: re-raised as a plain ValueError."""


def _make_call(
    fn: Callable[..., Any], args: Args, backward: bool, role: str, device: Any
) -> tuple[Callable[[], Any], float]:
    """The callable that is timed (one forward call of ``fn``, plus backward),
    and the seconds its first call took.

    With ``backward=True`` the first call is also the probe that checks an
    output requires grad, so its cost (where torch.compile compiles the
    forward, lazy modules initialise) is the one reported as first call.
    """
    __tracebackhide__ = True
    from ._timing import synchronize, time_once

    if not backward:

        def forward() -> Any:
            __tracebackhide__ = True
            return fn(*args.args, **args.kwargs)

        return forward, time_once(forward, device)

    import torch

    grad_args, leaves = _with_grad_leaves(args)
    if not leaves:
        raise _BackwardMisuse(
            "backward=True needs at least one floating-point tensor among the inputs; "
            f"got ({_shapes(args)})"
        )
    params = list(fn.parameters()) if isinstance(fn, torch.nn.Module) else []
    cleared = leaves + params
    synchronize(device)
    start = time.perf_counter()
    probe = [t for t in _tensors(fn(*grad_args.args, **grad_args.kwargs)) if t.requires_grad]
    if not probe:
        raise _BackwardMisuse(
            f"backward=True but no output of the {role} ({_name(fn)}) requires grad; "
            "is it computed under torch.no_grad() or detached?"
        )
    grad_outputs = [torch.ones_like(t) for t in probe]
    torch.autograd.backward(probe, grad_outputs)
    synchronize(device)
    first = time.perf_counter() - start
    del probe

    def forward_backward() -> Any:
        __tracebackhide__ = True
        for tensor in cleared:
            tensor.grad = None
        outs = [t for t in _tensors(fn(*grad_args.args, **grad_args.kwargs)) if t.requires_grad]
        torch.autograd.backward(outs, grad_outputs)

    return forward_backward, first


def _context(
    what: str, device: Any, dtype: Any, args: Args, options: SpeedOptions, hint: str = ""
) -> str:
    """The note a crash in user code gets: what was running, on what, how to rerun."""
    text = (
        f"effective-torch: while {what} [assert_faster_than_reference, {_where(device, dtype)}, "
        f"inputs ({_shapes(args)})" + (", forward+backward" if options.backward else "") + "]"
        + hint
    )
    return _with_rerun(text, options)


def _build_context(device: Any, dtype: Any, options: SpeedOptions) -> str:
    text = (
        "effective-torch: while building the inputs of assert_faster_than_reference "
        f"[{_where(device, dtype)}, seed {options.seed}]"
    )
    return _with_rerun(text, options)


def _where(device: Any, dtype: Any) -> str:
    return f"device {device}" + (f", dtype {dtype_name(dtype)}" if dtype is not None else "")


def _with_rerun(text: str, options: SpeedOptions) -> str:
    return text + (f"\n{options.rerun}" if options.rerun else "")


def _first_call(
    fn: Callable[..., Any], args: Args, options: SpeedOptions, role: str, device: Any, dtype: Any
) -> tuple[Callable[[], Any], float]:
    """Build the timed callable and time its first call; user crashes get context."""
    __tracebackhide__ = True
    try:
        return _make_call(fn, args, options.backward, role, device)
    except _BackwardMisuse as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:
        context = _context(f"calling the {role} ({_name(fn)}) for its first call", device, dtype, args, options)
        with_context(exc, context)


def _warm_up(
    calls: dict[str, Callable[[], Any]], device: Any, budget: float, running: list[str]
) -> dict[str, float]:
    """Alternate calls until both sides ran WARMUP_CALLS times and WARMUP_SHARE passed.

    Returns each side's fastest warm call (seconds), used to size the blocks.
    """
    __tracebackhide__ = True
    from ._timing import time_once

    best = {role: math.inf for role in calls}
    count = 0
    start = time.perf_counter()
    while True:
        for role, call in calls.items():
            running[0] = role
            best[role] = min(best[role], time_once(call, device))
        count += 1
        spent = time.perf_counter() - start
        if count >= WARMUP_CALLS and spent >= WARMUP_SHARE * budget:
            break
        if spent >= WARMUP_CAP * budget:  # slow functions: keep the budget for rounds
            break
    return best


def _block_calls(per_call: float, flush_l2: bool) -> int:
    if flush_l2:
        return 1  # every timed call starts from a cold cache
    if not per_call > 0:
        return 1000
    return max(1, min(1_000_000, round(BLOCK_SECONDS / per_call)))


def _device_name(device: Any) -> str:
    if device.type == "cuda":
        import torch

        return str(torch.cuda.get_device_name(device))
    if device.type == "cpu":
        import platform

        return platform.processor() or platform.machine() or "cpu"
    return device.type


def compare_speed(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    options: SpeedOptions,
    *,
    measure: bool = True,
    lock: Any = None,
) -> SpeedResult:
    """Measure and decide; raises nothing for a verdict (see :func:`conclude`).

    With ``measure=False`` each side runs once and the result's verdict is
    ``skipped``. ``lock`` (a context manager) is held around the
    measurement, to serialize timing across processes on one device.
    """
    __tracebackhide__ = True
    import torch

    from ._memory import peak_memory
    from ._timing import block_timer, gc_paused, pinned_threads

    for role, fn in (("candidate", candidate), ("reference", reference)):
        if not callable(fn):
            raise TypeError(f"{role} must be callable, got {fn!r}")

    device = options.device
    dtype = options.dtype
    maker_device = torch.device(device) if device is not None else torch.device("cpu")
    args = build(
        inputs, Maker(maker_device, dtype, options.seed), context=_build_context(maker_device, dtype, options)
    )
    device = torch.device(device) if device is not None else _first_device(args)
    if options.max_memory_ratio is not None and device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"max_memory_ratio is not supported on device {device}: its peak memory "
            "cannot be measured (supported: cpu, cuda)"
        )
    if dtype is None:
        floats = [t for t in _tensors([*args.args, *args.kwargs.values()]) if t.is_floating_point()]
        dtype = floats[0].dtype if floats else None

    measured = "forward+backward" if options.backward else "forward"
    base = dict(
        candidate_name=_name(candidate),
        reference_name=_name(reference),
        min_speedup=None if options.min_speedup is None else float(options.min_speedup),
        confidence=options.confidence,
        device=str(device),
        device_name=_device_name(device),
        dtype=None if dtype is None else dtype_name(dtype),
        measured=measured,
        budget=options.time_budget,
    )
    timer_kind = options.timer if device.type == "cuda" else "host"

    with lock or contextlib.nullcontext(), pinned_threads(device, options.threads) as threads:
        ref_call, ref_first = _first_call(reference, args, options, "reference", device, dtype)
        cand_call, cand_first = _first_call(candidate, args, options, "candidate", device, dtype)
        if not measure:
            return SpeedResult(
                verdict="skipped", speedup=None, interval=None, reference_time=None,
                candidate_time=None, rounds=0, calls_per_round=(1, 1), elapsed=0.0,
                timer=timer_kind, timer_description="", threads=threads,
                first_call=(ref_first, cand_first), **base,
            )  # fmt: skip

        started = time.perf_counter()
        running = ["reference"]  # the side being called, for a crash's context

        def timing_context(role: str) -> str:
            fn = candidate if role == "candidate" else reference
            what = f"timing the {role} ({_name(fn)}) after its first call succeeded"
            hint = ": it fails on a repeated call (state kept between calls, inputs changed in place?)"
            return _context(what, device, dtype, args, options, hint)

        try:
            best = _warm_up(
                {"reference": ref_call, "candidate": cand_call}, device, options.time_budget, running
            )
        except Exception as exc:
            with_context(exc, timing_context(running[0]))
        flush_l2 = options.flush_l2 and device.type == "cuda"  # only CUDA has one
        n_ref = _block_calls(best["reference"], flush_l2)
        n_cand = _block_calls(best["candidate"], flush_l2)
        clock = block_timer(device, flush_l2=flush_l2)
        host: dict[str, list[float]] = {"reference": [], "candidate": []}
        dev: dict[str, list[float]] = {"reference": [], "candidate": []}

        def one(role: str, call: Callable[[], Any], n: int) -> float:
            __tracebackhide__ = True
            running[0] = role
            timing = clock.time(call, n)
            host[role].append(timing.host)
            if timing.device is not None:
                dev[role].append(timing.device)
            return timing.device if timer_kind == "device" and timing.device is not None else timing.host

        def measure_round(reference_first: bool) -> tuple[float, float]:
            __tracebackhide__ = True
            if reference_first:
                ref = one("reference", ref_call, n_ref)
                cand = one("candidate", cand_call, n_cand)
            else:
                cand = one("candidate", cand_call, n_cand)
                ref = one("reference", ref_call, n_ref)
            return ref, cand

        remaining = max(0.0, options.time_budget - (time.perf_counter() - started))
        try:
            with gc_paused():
                seq = _stats.run_sequential(
                    measure_round,
                    min_speedup=options.min_speedup,
                    confidence=options.confidence,
                    budget=remaining,
                    clock=time.perf_counter,
                )
        except Exception as exc:
            with_context(exc, timing_context(running[0]))
        elapsed = time.perf_counter() - started

        want_memory = options.measure_memory
        if want_memory is None:
            want_memory = options.max_memory_ratio is not None or device.type == "cuda"
        peaks: tuple[int | None, int | None] = (None, None)
        if want_memory:
            measured_peaks = []
            for role, fn, call in (
                ("reference", reference, ref_call),
                ("candidate", candidate, cand_call),
            ):
                try:
                    measured_peaks.append(peak_memory(call, device))
                except Exception as exc:
                    what = f"measuring the peak memory of the {role} ({_name(fn)})"
                    with_context(exc, _context(what, device, dtype, args, options))
            peaks = (measured_peaks[0], measured_peaks[1])

    def median(values: Sequence[float]) -> float | None:
        return statistics.median(values) if values else None

    interval = seq.interval
    return SpeedResult(
        verdict=seq.verdict,
        speedup=interval.speedup if interval else None,
        interval=(interval.speedup_low, interval.speedup_high) if interval else None,
        reference_time=median(seq.reference),
        candidate_time=median(seq.candidate),
        rounds=seq.rounds,
        calls_per_round=(n_ref, n_cand),
        elapsed=elapsed,
        timer=timer_kind,
        timer_description=_timer_description(device, timer_kind, flush_l2),
        threads=threads,
        first_call=(ref_first, cand_first),
        peak_memory=peaks,
        reference_host_time=median(host["reference"]),
        candidate_host_time=median(host["candidate"]),
        reference_device_time=median(dev["reference"]),
        candidate_device_time=median(dev["candidate"]),
        reference_times=tuple(seq.reference),
        candidate_times=tuple(seq.candidate),
        **base,
    )


def _timer_description(device: Any, kind: str, flush_l2: bool) -> str:
    if device.type == "cuda":
        text = (
            "device time (CUDA events, queue kept busy)"
            if kind == "device"
            else "host time (synchronized perf_counter)"
        )
        return text + (", L2 flushed before each call" if flush_l2 else "")
    if device.type == "cpu":
        return "host time (perf_counter)"
    return f"host time (perf_counter, {device.type} synchronized)"
