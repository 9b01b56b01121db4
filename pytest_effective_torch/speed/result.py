"""What a speed comparison is asked to do (:class:`SpeedOptions`) and what it found (:class:`SpeedResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..compiling import CompileSettings, check_compile_options, check_variant
from ..formatting import fmt_time
from ..inputs import check_argument_keys
from . import stats
from .calls import MODES

DEFAULT_CONFIDENCE = 0.999
INCONCLUSIVE_POLICIES = ("fail", "skip", "warn")
TIMERS = ("host", "device")


@dataclass(frozen=True)
class SpeedResult:
    """What one speed comparison measured and decided.

    Times are seconds per call: the median over the rounds, on the timer the
    verdict used (``timer``); on CUDA both timers are kept. ``speedup`` is
    reference time over candidate time, estimated from the paired rounds,
    with its ``interval`` at ``confidence``.

    ``verdict`` is ``pass``, ``fail``, ``inconclusive``, ``measured``
    (``min_speedup=None``: measured, nothing asserted) or ``skipped``
    (``--benchmark-disable``); ``rounds`` and ``calls_per_round``
    (reference, candidate) say how much was measured in ``elapsed`` seconds;
    ``first_call`` (reference, candidate) holds the first calls' seconds,
    kept out of the rounds; ``peak_memory`` (reference, candidate) is in
    bytes, None where not measured; ``threads`` is the pinned CPU thread
    count; ``reference_times`` and ``candidate_times`` are the per-round
    times per call.

    >>> result = assert_faster_than_reference(fast, slow, (x,))  # doctest: +SKIP
    >>> result.speedup, result.interval  # doctest: +SKIP
    (3.9, (3.7, 4.1))
    """

    verdict: str
    candidate_name: str
    reference_name: str
    min_speedup: float | None
    speedup: float | None
    interval: tuple[float, float] | None
    confidence: float
    reference_time: float | None
    candidate_time: float | None
    rounds: int
    calls_per_round: tuple[int, int]
    elapsed: float
    timer: str
    timer_description: str
    threads: int | None
    device: str
    device_name: str
    dtype: str | None
    measured: str
    first_call: tuple[float, float]
    peak_memory: tuple[int | None, int | None] = (None, None)
    reference_host_time: float | None = None
    candidate_host_time: float | None = None
    reference_device_time: float | None = None
    candidate_device_time: float | None = None
    reference_times: tuple[float, ...] = field(default=(), repr=False)
    candidate_times: tuple[float, ...] = field(default=(), repr=False)
    budget: float = 0.0
    #: bytes moved and floating-point operations per call (``nbytes=``, ``flops=``)
    nbytes: float | None = None
    flops: float | None = None
    #: the GPU's measured copy bandwidth (bytes/s) and datasheet peak FLOP/s, where known
    copy_bandwidth: float | None = None
    peak_flops: float | None = None
    #: ``eager``, or ``compile``: the candidate timed is torch.compile(candidate)
    variant: str = "eager"
    #: variant compile: seconds of the candidate's first call (compiling), kept out of the rounds
    compile_seconds: float | None = None
    #: variant compile: ``torch.compile(mode='default', dynamic=False)``
    compile_description: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == stats.PASS

    def bandwidth(self, role: str) -> float | None:
        """Achieved bytes per second of ``role`` (``reference`` or ``candidate``), from ``nbytes``."""
        return _rate(self.nbytes, self.reference_time if role == "reference" else self.candidate_time)

    def flop_rate(self, role: str) -> float | None:
        """Achieved FLOP per second of ``role``, from ``flops``."""
        return _rate(self.flops, self.reference_time if role == "reference" else self.candidate_time)

    def speedup_text(self) -> str:
        """``3.91x [3.70x, 4.12x]``, or a dash when nothing was measured."""
        if self.speedup is None:
            return "-"
        text = f"{self.speedup:.3g}x"
        if self.interval is not None:
            text += f" [{self.interval[0]:.3g}x, {self.interval[1]:.3g}x]"
        return text

    def required_text(self) -> str:
        """``needs > 2x``, or ``measured, not asserted`` without a ``min_speedup``."""
        if self.min_speedup is None:
            return "measured, not asserted"
        return f"needs > {self.min_speedup:g}x"

    def compile_text(self) -> str:
        """``compile: 11.2 s (first call, torch.compile(mode='default', dynamic=False))``, or empty (eager)."""
        if self.compile_seconds is None:
            return ""
        return f"compile: {self.compile_seconds:.1f} s (first call, not timed; {self.compile_description})"

    def __str__(self) -> str:
        text = (
            f"{self.candidate_name} vs {self.reference_name}: {self.verdict}, speedup "
            f"{self.speedup_text()} ({self.required_text()}), "
            f"{fmt_time(self.candidate_time)} vs {fmt_time(self.reference_time)} per call"
        )
        return text + (f"; {self.compile_text()}" if self.compile_seconds is not None else "")


def _rate(amount: float | None, seconds: float | None) -> float | None:
    if amount is None or seconds is None or not seconds > 0:
        return None
    return amount / seconds


@dataclass(frozen=True)
class SpeedOptions:
    """Everything besides the callables and inputs; validated on creation."""

    min_speedup: float | None = 1.0
    device: Any = None
    dtype: Any = None
    seed: int = 0
    backward: bool = False
    #: forward, backward or full; None: full with ``backward=True``, else forward
    mode: str | None = None
    max_memory_ratio: float | None = None
    measure_memory: bool | None = None
    time_budget: float = 2.0
    threads: int | None = 1
    timer: str = "device"
    flush_l2: bool = False
    inconclusive: str = "fail"
    confidence: float = DEFAULT_CONFIDENCE
    rerun: str = ""
    #: per call, for achieved rates; callables of the size keywords are resolved per point first
    nbytes: float | None = None
    flops: float | None = None
    #: ``eager`` or ``compile`` (the candidate under torch.compile), and torch.compile's arguments
    variant: str = "eager"
    compile_options: Any = field(default=None, hash=False)
    #: arguments kept out of the backward modes' gradients (positions or keyword names)
    no_grad: Any = ()

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, *, allow_none: bool = False, none: str = "") -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number{none}, got {value!r}")
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number{none}, got {value!r}")

        positive(
            "min_speedup", self.min_speedup, allow_none=True,
            none=" (or None: measure, do not assert)",
        )  # fmt: skip
        positive("max_memory_ratio", self.max_memory_ratio, allow_none=True)
        positive("time_budget", self.time_budget)
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        if self.timer not in TIMERS:
            raise ValueError(f"timer must be one of {', '.join(TIMERS)}, got {self.timer!r}")
        if self.inconclusive not in INCONCLUSIVE_POLICIES:
            raise ValueError(
                f"inconclusive must be one of {', '.join(INCONCLUSIVE_POLICIES)}, "
                f"got {self.inconclusive!r}"
            )
        if not isinstance(self.confidence, float) or not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be a float in (0.5, 1), got {self.confidence!r}")
        if not isinstance(self.backward, bool):
            raise TypeError(f"backward must be True or False, got {self.backward!r}")
        for name in ("nbytes", "flops"):
            value = getattr(self, name)
            if value is None:
                continue
            if callable(value):
                raise TypeError(f"{name} is a callable of the size keywords: it needs sizes=")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number (per call), a callable of the size keywords, or None; got {value!r}")
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        object.__setattr__(self, "variant", check_variant(self.variant))
        object.__setattr__(self, "no_grad", check_argument_keys("no_grad", self.no_grad))
        check_compile_options(self.compile_options)  # used by variant compile; validated in either
        if self.backward and self.mode not in (None, "full"):
            raise ValueError(
                f"backward=True times forward plus backward (mode='full'); it cannot be combined "
                f"with mode={self.mode!r}: give one of them"
            )

    @property
    def compiling(self) -> CompileSettings | None:
        """How the candidate is compiled; None for the eager variant."""
        if self.variant != "compile":
            return None
        return check_compile_options(self.compile_options)

    @property
    def timed(self) -> str:
        """The mode that is timed: ``forward``, ``backward`` or ``full``."""
        return self.mode or ("full" if self.backward else "forward")


def options(**kwargs: Any) -> SpeedOptions:
    """Validated options; a bad argument is raised without the validator's frames."""
    __tracebackhide__ = True
    try:
        return SpeedOptions(**kwargs)
    except (TypeError, ValueError) as exc:
        raise exc.with_traceback(None) from None
