"""Measuring a speed comparison: inputs, first calls, warm-up, interleaved rounds, peaks.

Equality is not checked here (``assert_same_as_reference`` does that), but
both sides are called once before timing (:mod:`.calls`), so a crash is
reported as a crash with context. The decision rule is in :mod:`.stats`.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import gradient_hint, with_context
from ..formatting import callable_name, dtype_name
from ..inputs import Args, Inputs, Maker, build, check_named_arguments, input_tensors
from . import stats
from .calls import MODES, BackwardMisuse, first_device, make_call, shapes
from .clocks import block_timer, gc_paused, pinned_threads, time_once
from .memory import peak_memory
from .result import SpeedOptions, SpeedResult
from .throughput import copy_bandwidth, peak_flops

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

ROLES = ("reference", "candidate")


@dataclass
class _Setting:
    """Where and on what a comparison runs, and how its crashes are described."""

    options: SpeedOptions
    args: Args
    device: Any
    dtype: Any
    names: dict[str, str]

    def context(self, what: str, hint: str = "") -> str:
        """The note a crash in user code gets: what was running, on what, how to rerun."""
        text = (
            f"effective-torch: while {what} [assert_faster_than_reference, {_where(self.device, self.dtype)}, "
            f"inputs ({shapes(self.args)})"
            + (f", {MODES[self.options.timed]}" if self.options.timed != "forward" else "") + "]"
            + hint
        )
        return _with_rerun(text, self.options)


@dataclass
class _Rounds:
    """The interleaved rounds' outcome, with both clocks' readings per side."""

    sequence: stats.Measurement
    calls_per_round: tuple[int, int]
    host: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROLES})
    device: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROLES})


def _where(device: Any, dtype: Any) -> str:
    return f"device {device}" + (f", dtype {dtype_name(dtype)}" if dtype is not None else "")


def _with_rerun(text: str, options: SpeedOptions) -> str:
    return text + (f"\n{options.rerun}" if options.rerun else "")


def _device_name(device: Any) -> str:
    if device.type == "cuda":
        import torch

        return str(torch.cuda.get_device_name(device))
    if device.type == "cpu":
        import platform

        return platform.processor() or platform.machine() or "cpu"
    return device.type


def timer_description(device: Any, kind: str, flush_l2: bool) -> str:
    """What the verdict's clock measured, in words."""
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


def _setting(candidate: Any, reference: Any, inputs: Inputs, options: SpeedOptions) -> _Setting:
    """Validate the callables, build the inputs, and settle the device and dtype."""
    __tracebackhide__ = True
    import torch

    for role, fn in (("candidate", candidate), ("reference", reference)):
        if not callable(fn):
            raise TypeError(f"{role} must be callable, got {fn!r}")
    device, dtype = options.device, options.dtype
    maker_device = torch.device(device) if device is not None else torch.device("cpu")
    build_context = _with_rerun(
        "effective-torch: while building the inputs of assert_faster_than_reference "
        f"[{_where(maker_device, dtype)}, seed {options.seed}]",
        options,
    )
    args = build(inputs, Maker(maker_device, dtype, options.seed), context=build_context)
    device = torch.device(device) if device is not None else first_device(args)
    if options.max_memory_ratio is not None and device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"max_memory_ratio is not supported on device {device}: its peak memory "
            "cannot be measured (supported: cpu, cuda)"
        )
    if dtype is None:
        floats = [t for _, _, t in input_tensors(args) if t.is_floating_point()]
        dtype = floats[0].dtype if floats else None
    check_named_arguments(args, no_grad=options.no_grad)
    names = {"candidate": callable_name(candidate), "reference": callable_name(reference)}
    return _Setting(options, args, device, dtype, names)


def _first_call(fn: Callable[..., Any], role: str, setting: _Setting) -> tuple[Callable[[], Any], float]:
    """Build the timed callable and time its first call; user crashes get context."""
    __tracebackhide__ = True
    try:
        return make_call(fn, setting.args, setting.options.timed, role, setting.device, setting.options.no_grad)
    except BackwardMisuse as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:
        hint = gradient_hint(exc, outputs_only=False) if setting.options.timed != "forward" else ""
        with_context(exc, setting.context(f"calling the {role} ({setting.names[role]}) for its first call") + hint)


def _warm_up(calls: dict[str, Callable[[], Any]], device: Any, budget: float, running: list[str]) -> dict[str, float]:
    """Alternate calls until both sides ran WARMUP_CALLS times and WARMUP_SHARE passed.

    Returns each side's fastest warm call (seconds), used to size the blocks.
    """
    __tracebackhide__ = True
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


def block_calls(per_call: float, flush_l2: bool) -> int:
    """Calls per timed block: about BLOCK_SECONDS of work, one call when flushing L2."""
    if flush_l2:
        return 1  # every timed call starts from a cold cache
    if not per_call > 0:
        return 1000
    return max(1, min(1_000_000, round(BLOCK_SECONDS / per_call)))


def _rounds(calls: dict[str, Callable[[], Any]], setting: _Setting, timer_kind: str, flush_l2: bool, started: float) -> _Rounds:
    """Warm up, size the blocks, and run interleaved rounds until the verdict is decided."""
    __tracebackhide__ = True
    options = setting.options
    running = ["reference"]  # the side being called, for a crash's context

    def crash_context() -> str:
        role = running[0]
        what = f"timing the {role} ({setting.names[role]}) after its first call succeeded"
        hint = ": it fails on a repeated call (state kept between calls, inputs changed in place?)"
        return setting.context(what, hint)

    try:
        best = _warm_up(calls, setting.device, options.time_budget, running)
    except Exception as exc:
        with_context(exc, crash_context())
    n = {role: block_calls(best[role], flush_l2) for role in ROLES}
    clock = block_timer(setting.device, flush_l2=flush_l2)
    host: dict[str, list[float]] = {r: [] for r in ROLES}
    dev: dict[str, list[float]] = {r: [] for r in ROLES}

    def one(role: str) -> float:
        __tracebackhide__ = True
        running[0] = role
        timing = clock.time(calls[role], n[role])
        host[role].append(timing.host)
        if timing.device is not None:
            dev[role].append(timing.device)
        return timing.device if timer_kind == "device" and timing.device is not None else timing.host

    def measure_round(reference_first: bool) -> tuple[float, float]:
        __tracebackhide__ = True
        if reference_first:
            ref = one("reference")
            return ref, one("candidate")
        cand = one("candidate")
        return one("reference"), cand

    remaining = max(0.0, options.time_budget - (time.perf_counter() - started))
    try:
        with gc_paused():
            sequence = stats.run_sequential(
                measure_round,
                min_speedup=options.min_speedup,
                confidence=options.confidence,
                budget=remaining,
                clock=time.perf_counter,
            )
    except Exception as exc:
        with_context(exc, crash_context())
    return _Rounds(sequence, (n["reference"], n["candidate"]), host, dev)


def _peaks(calls: dict[str, Callable[[], Any]], setting: _Setting) -> tuple[int | None, int | None]:
    """Each side's peak memory, where asked for (and by default on CUDA, where it is cheap)."""
    __tracebackhide__ = True
    options = setting.options
    want = options.measure_memory
    if want is None:
        want = options.max_memory_ratio is not None or setting.device.type == "cuda"
    if not want:
        return None, None
    peaks = []
    for role in ROLES:
        try:
            peaks.append(peak_memory(calls[role], setting.device))
        except Exception as exc:
            with_context(exc, setting.context(f"measuring the peak memory of the {role} ({setting.names[role]})"))
    return peaks[0], peaks[1]


def compare_speed(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    options: SpeedOptions,
    *,
    measure: bool = True,
    lock: Any = None,
) -> SpeedResult:
    """Measure and decide; raises nothing for a verdict (see :func:`.verdict.conclude`).

    With ``measure=False`` each side runs once and the result's verdict is
    ``skipped``. ``lock`` (a context manager) is held around the
    measurement, to serialize timing across processes on one device.
    """
    __tracebackhide__ = True
    setting = _setting(candidate, reference, inputs, options)
    device = setting.device
    compiling = options.compiling
    if compiling is not None:
        # Variant compile: the candidate timed is torch.compile(candidate);
        # its first call compiles and stays out of the rounds (and the budget).
        from ..compiling import compile_candidate

        candidate = compile_candidate(candidate, compiling, device)
        setting.names["candidate"] = callable_name(candidate)
    timer_kind = options.timer if device.type == "cuda" else "host"
    flush_l2 = options.flush_l2 and device.type == "cuda"  # only CUDA has one
    base = dict(
        candidate_name=setting.names["candidate"],
        reference_name=setting.names["reference"],
        min_speedup=None if options.min_speedup is None else float(options.min_speedup),
        confidence=options.confidence,
        device=str(device),
        device_name=_device_name(device),
        dtype=None if setting.dtype is None else dtype_name(setting.dtype),
        measured=MODES[options.timed],
        budget=options.time_budget,
        nbytes=options.nbytes,
        flops=options.flops,
        timer=timer_kind,
        timer_description=timer_description(device, timer_kind, flush_l2),
        variant=options.variant,
        compile_description=compiling.describe() if compiling is not None else None,
    )
    with lock or contextlib.nullcontext(), pinned_threads(device, options.threads) as threads:
        ref_call, ref_first = _first_call(reference, "reference", setting)
        cand_call, cand_first = _first_call(candidate, "candidate", setting)
        first_call = (ref_first, cand_first)
        if compiling is not None:
            base["compile_seconds"] = cand_first
        if not measure:
            return SpeedResult(
                verdict="skipped", speedup=None, interval=None, reference_time=None,
                candidate_time=None, rounds=0, calls_per_round=(1, 1), elapsed=0.0,
                threads=threads, first_call=first_call, **base,
            )  # fmt: skip
        calls = {"reference": ref_call, "candidate": cand_call}
        started = time.perf_counter()
        rounds = _rounds(calls, setting, timer_kind, flush_l2, started)
        elapsed = time.perf_counter() - started
        peaks = _peaks(calls, setting)
        if options.nbytes is not None:
            base["copy_bandwidth"] = copy_bandwidth(device)
    if options.flops is not None and device.type == "cuda":
        base["peak_flops"] = peak_flops(base["device_name"], base["dtype"])
    return _result(rounds, base, threads=threads, first_call=first_call, elapsed=elapsed, peaks=peaks)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _result(
    rounds: _Rounds, base: dict[str, Any], *, threads: int | None, first_call: tuple[float, float],
    elapsed: float, peaks: tuple[int | None, int | None],
) -> SpeedResult:  # fmt: skip
    seq = rounds.sequence
    interval = seq.interval
    return SpeedResult(
        verdict=seq.verdict,
        speedup=interval.speedup if interval else None,
        interval=(interval.speedup_low, interval.speedup_high) if interval else None,
        reference_time=_median(seq.reference),
        candidate_time=_median(seq.candidate),
        rounds=seq.rounds,
        calls_per_round=rounds.calls_per_round,
        elapsed=elapsed,
        threads=threads,
        first_call=first_call,
        peak_memory=peaks,
        reference_host_time=_median(rounds.host["reference"]),
        candidate_host_time=_median(rounds.host["candidate"]),
        reference_device_time=_median(rounds.device["reference"]),
        candidate_device_time=_median(rounds.device["candidate"]),
        reference_times=tuple(seq.reference),
        candidate_times=tuple(seq.candidate),
        **base,
    )
