"""Turning a measured speed comparison into a verdict and a message a person can act on."""

from __future__ import annotations

import math
import warnings

from ..errors import CheckFailed, skip_test, user_stacklevel
from ..formatting import fmt_bytes, fmt_time
from . import stats as _stats
from .result import SpeedOptions, SpeedResult
from .throughput import fmt_bandwidth, fmt_flops

_SYSTEMATIC_PCT = round((math.exp(_stats.SYSTEMATIC) - 1) * 100, 1)


class SpeedInconclusiveWarning(UserWarning):
    """A speed verdict that could not decide, with the inconclusive policy ``warn``."""


def describe(result: SpeedResult, rerun: str = "") -> list[str]:
    """The lines that explain a result: what, how much, how measured, how to rerun."""
    pct = f"{result.confidence * 100:g}%"
    lines = [
        f"compared: candidate {result.candidate_name} against reference "
        f"{result.reference_name}, {result.measured}, device {result.device} "
        f"({result.device_name}), dtype {result.dtype or '-'}",
    ]
    if result.interval is not None and result.speedup is not None:
        low, high = result.interval
        required = (
            "nothing, min_speedup=None (measured, not asserted)"
            if result.min_speedup is None
            else f"more than {result.min_speedup:g}x"
        )
        lines.append(
            f"speedup: {result.speedup:.3g}x, {pct} interval [{low:.3g}x, {high:.3g}x] "
            f"(widened by {_SYSTEMATIC_PCT:g}% each side for offsets fixed within a run); "
            f"required: {required}"
        )
    lines.append(
        f"time per call (median of rounds, {result.timer} time): reference "
        f"{fmt_time(result.reference_time)}, candidate {fmt_time(result.candidate_time)}"
    )
    if result.reference_device_time is not None:
        lines.append(
            f"  host time: reference {fmt_time(result.reference_host_time)}, candidate "
            f"{fmt_time(result.candidate_host_time)}; device time (CUDA events): reference "
            f"{fmt_time(result.reference_device_time)}, candidate "
            f"{fmt_time(result.candidate_device_time)}"
        )
    threads = f"intra-op threads {result.threads}" if result.threads is not None else "threads not pinned"
    lines.append(
        f"measured: {result.rounds} interleaved rounds of {result.calls_per_round[0]} reference "
        f"and {result.calls_per_round[1]} candidate calls in {result.elapsed:.2f} s "
        f"(budget {result.budget:g} s); timer: {result.timer_description}; {threads}"
    )
    lines.append(
        f"first calls (not in the rounds): reference {fmt_time(result.first_call[0])}, "
        f"candidate {fmt_time(result.first_call[1])}"
    )
    if result.peak_memory != (None, None):
        lines.append(
            f"peak memory: reference {fmt_bytes(result.peak_memory[0])}, "
            f"candidate {fmt_bytes(result.peak_memory[1])}"
        )
    lines += achieved_lines(result)
    if rerun:
        lines.append(rerun)
    return lines


def achieved_lines(result: SpeedResult) -> list[str]:
    """``achieved: candidate 1.2 TB/s (28% of the copy bandwidth, 4.3 TB/s), reference ...``."""
    lines = []
    for amount, rate, ceiling, fmt, what in (
        (result.nbytes, result.bandwidth, result.copy_bandwidth, fmt_bandwidth, "copy bandwidth"),
        (result.flops, result.flop_rate, result.peak_flops, fmt_flops, "datasheet peak"),
    ):
        if amount is None:
            continue
        parts = []
        for role in ("candidate", "reference"):
            value = rate(role)
            share = f" ({value / ceiling:.0%} of the {what}, {fmt(ceiling)})" if value and ceiling else ""
            parts.append(f"{role} {fmt(value)}{share}")
        lines.append("achieved: " + ", ".join(parts))
    return lines


def memory_problem(result: SpeedResult, ratio: float | None) -> str | None:
    """The message for a candidate whose peak memory exceeds ``ratio`` of the reference's, else None."""
    if ratio is None:
        return None
    ref, cand = result.peak_memory
    if ref is None or cand is None:
        raise ValueError(
            f"max_memory_ratio is not supported on device {result.device}: its peak memory "
            "cannot be measured (supported: cpu, cuda)"
        )
    allowed = ratio * ref
    if cand <= allowed:
        return None
    times = f"{cand / ref:.3g}x" if ref else "more than"
    return (
        f"candidate {result.candidate_name} needs too much memory: peak {fmt_bytes(cand)}, "
        f"{times} the reference's {fmt_bytes(ref)}; max_memory_ratio={ratio:g} allows "
        f"at most {fmt_bytes(int(allowed))}"
    )


def _accept_advice(policy: str) -> str:
    """How to accept an undecided verdict instead: only the policies not already in force."""
    others = [p for p in ("skip", "warn") if p != policy]
    if policy != "fail":
        return f" (it is not an error: --effective-torch-inconclusive={policy} is in force)"
    return f", or accept it with --effective-torch-inconclusive={' or '.join(others)}"


def conclude(result: SpeedResult, options: SpeedOptions) -> SpeedResult:
    """Turn a measured result into the verdict: return, raise, skip or warn."""
    __tracebackhide__ = True

    if result.verdict == "skipped":
        return result
    details = describe(result, options.rerun)
    memory = memory_problem(result, options.max_memory_ratio)
    pct = f"{options.confidence * 100:g}%"
    head = None
    if result.verdict == _stats.FAIL:
        head = (
            f"candidate {result.candidate_name} is not {options.min_speedup:g}x faster than "
            f"reference {result.reference_name}: speedup {result.speedup_text()} lies below "
            f"{options.min_speedup:g}x"
        )
    elif result.verdict == _stats.INCONCLUSIVE:
        where = (
            f"the {pct} interval of the speedup of {result.candidate_name} over "
            f"{result.reference_name}, {result.speedup_text()}, still contains "
            f"min_speedup {options.min_speedup:g}x"
            if result.interval is not None and result.rounds >= _stats.MIN_ROUNDS
            else f"too few rounds to decide whether {result.candidate_name} is "
            f"{options.min_speedup:g}x faster than {result.reference_name} (a verdict "
            f"needs at least {_stats.MIN_ROUNDS}; speedup so far {result.speedup_text()})"
        )
        head = (
            f"inconclusive: after {result.elapsed:.2f} s and {result.rounds} rounds, {where}. "
            "To decide, raise the time budget "
            f"(--effective-torch-time-budget, now {options.time_budget:g} s), make the machine quieter"
            + _accept_advice(options.inconclusive)
        )
    if memory:
        message = "\n".join([memory, *([head] if head else []), *details])
        raise CheckFailed(message)
    if head is None:
        return result
    message = "\n".join([head, *details])
    if result.verdict == _stats.FAIL or options.inconclusive == "fail":
        raise CheckFailed(message)
    if options.inconclusive == "skip":
        skip_test(message)
    warnings.warn(SpeedInconclusiveWarning(message), stacklevel=user_stacklevel())
    return result
