"""``assert_faster_than_reference``: the public function, its result, its fixture.

The work is split: ``_speed_run`` measures (inputs, first calls, warm-up,
interleaved rounds, see ``_stats`` for the decision rule), ``_speed_verdict``
turns the result into a pass, a :class:`CheckFailed`, a skip or a warning,
and ``_benchmark_bridge`` stores it through pytest-benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _stats
from ._inputs import Inputs

if TYPE_CHECKING:
    import pytest
    import torch

    from ._settings import Settings

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

    @property
    def passed(self) -> bool:
        return self.verdict == _stats.PASS

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

    def __str__(self) -> str:
        return (
            f"{self.candidate_name} vs {self.reference_name}: {self.verdict}, speedup "
            f"{self.speedup_text()} ({self.required_text()}), "
            f"{_fmt_time(self.reference_time)} vs {_fmt_time(self.candidate_time)} per call"
        )


@dataclass(frozen=True)
class SpeedOptions:
    """Everything besides the callables and inputs; validated on creation."""

    min_speedup: float | None = 1.0
    device: Any = None
    dtype: Any = None
    seed: int = 0
    backward: bool = False
    max_memory_ratio: float | None = None
    measure_memory: bool | None = None
    time_budget: float = 2.0
    threads: int | None = 1
    timer: str = "host"
    flush_l2: bool = False
    inconclusive: str = "fail"
    confidence: float = DEFAULT_CONFIDENCE
    rerun: str = ""

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


# ----------------------------------------------------------------- public


def assert_faster_than_reference(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    *,
    min_speedup: float | None = 1.0,
    device: torch.device | str | None = None,
    backward: bool = False,
    max_memory_ratio: float | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    time_budget: float = 2.0,
    threads: int | None = 1,
    timer: str = "host",
    flush_l2: bool = False,
    inconclusive: str = "fail",
    confidence: float = DEFAULT_CONFIDENCE,
    measure_memory: bool | None = None,
) -> SpeedResult:
    """Assert that ``candidate`` is at least ``min_speedup`` times faster than ``reference``.

    Both are called with the same ``inputs``: a tuple of arguments, or a
    builder ``inputs(make)`` that draws seeded tensors on ``device``.
    The forward call is timed (forward plus backward with
    ``backward=True``), in interleaved rounds, until a ``confidence``
    interval for the speedup lies above ``min_speedup`` (returns the
    :class:`SpeedResult`) or below it (raises :class:`CheckFailed`), or
    ``time_budget`` seconds pass without a decision: then ``inconclusive``
    says what happens (``fail``: raise, ``skip``: pytest.skip, ``warn``:
    warn and return).

    ``min_speedup=None`` measures without asserting: the rounds run until
    the interval is precise (or the budget is spent) and the verdict is
    ``measured``, never ``pass``; it is stored and summarized like any
    other comparison, and ``max_memory_ratio`` is still asserted.

    >>> def slow(x):
    ...     return torch.stack([row.sum() for row in x])
    >>> def fast(x):
    ...     return x.sum(dim=1)
    >>> assert_faster_than_reference(fast, slow, (torch.randn(256, 64),), min_speedup=5)
    ... # doctest: +SKIP

    ``max_memory_ratio=0.5`` also asserts that the candidate's peak memory
    is at most half the reference's (measured with the CPU profiler or
    CUDA's allocator statistics; ``measure_memory=True`` reports peaks
    without asserting). ``threads`` pins torch's intra-op threads on the
    CPU while timing; ``timer`` picks CUDA host or device time for the
    verdict (both are reported); ``flush_l2`` flushes the CUDA L2 cache
    before every timed call.
    """
    __tracebackhide__ = True
    options = _options(
        min_speedup=min_speedup,
        device=device,
        dtype=dtype,
        seed=seed,
        backward=backward,
        max_memory_ratio=max_memory_ratio,
        measure_memory=measure_memory,
        time_budget=time_budget,
        threads=threads,
        timer=timer,
        flush_l2=flush_l2,
        inconclusive=inconclusive,
        confidence=confidence,
    )
    from ._speed_run import compare_speed
    from ._speed_verdict import conclude

    return conclude(compare_speed(candidate, reference, inputs, options), options)


def _options(**kwargs: Any) -> SpeedOptions:
    """Validated options; a bad argument is raised without the validator's frames."""
    __tracebackhide__ = True
    try:
        return SpeedOptions(**kwargs)
    except (TypeError, ValueError) as exc:
        raise exc.with_traceback(None) from None


def _name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__name__
    # ``test_x.<locals>.fast`` reads better as ``fast``
    return str(name).rsplit("<locals>.", 1)[-1]


def _fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_bytes(nbytes: int | None) -> str:
    if nbytes is None:
        return "unknown"
    if nbytes >= 2**20:
        return f"{nbytes / 2**20:.1f} MiB"
    if nbytes >= 2**10:
        return f"{nbytes / 2**10:.1f} KiB"
    return f"{nbytes} B"


# ------------------------------------------------------------ the fixture

#: Arguments a fixture call may override on top of the session's settings.
_OVERRIDABLE = (
    "device", "dtype", "seed", "time_budget", "threads", "timer", "flush_l2",
    "inconclusive", "confidence", "measure_memory",
)  # fmt: skip


class SpeedFixture:
    """``assert_faster_than_reference`` bound to a test's device, dtype, seed and settings.

    It stores each comparison as an entry of the test's pytest-benchmark
    ``benchmark`` fixture and leaves a row for the terminal summary. One
    comparison per test is stored under the test's name; to make several in
    one test, give each a ``name=`` (stored as ``test::name``), or
    parametrize the test.

    >>> def test_sum_is_faster(assert_faster_than_reference):  # doctest: +SKIP
    ...     assert_faster_than_reference(
    ...         lambda x: x.sum(1),
    ...         lambda x: torch.stack([r.sum() for r in x]),
    ...         lambda make: (make(256, 64),),
    ...         min_speedup=5,
    ...     )
    """

    def __init__(
        self,
        request: pytest.FixtureRequest,
        benchmark: Any,
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
        settings: Settings,
    ) -> None:
        self._request = request
        self._benchmark = benchmark
        self._settings = settings
        self._defaults = dict(
            device=device,
            dtype=dtype,
            seed=seed,
            time_budget=settings.time_budget,
            threads=settings.threads,
            timer=settings.timer,
            flush_l2=settings.flush_l2,
            inconclusive=settings.inconclusive,
        )
        self._names: list[str | None] = []

    def __call__(
        self,
        candidate: Callable[..., Any],
        reference: Callable[..., Any],
        inputs: Inputs,
        *,
        min_speedup: float | None = 1.0,
        backward: bool = False,
        max_memory_ratio: float | None = None,
        name: str | None = None,
        **overrides: Any,
    ) -> SpeedResult:
        """Same arguments as :func:`assert_faster_than_reference`, plus ``name``."""
        __tracebackhide__ = True
        import pytest

        from . import _benchmark_bridge as bridge
        from ._parametrize import rerun_hint
        from ._speed_run import compare_speed
        from ._speed_verdict import conclude
        from ._summary import ROW_KEY, make_row

        unknown = sorted(set(overrides) - set(_OVERRIDABLE))
        if unknown:
            raise TypeError(
                f"assert_faster_than_reference() got unexpected keyword argument(s) {unknown}"
            )
        self._check_name(name)
        options = _options(
            min_speedup=min_speedup,
            backward=backward,
            max_memory_ratio=max_memory_ratio,
            rerun=rerun_hint(self._request.node, self._settings),
            **{**self._defaults, **overrides},
        )
        state = bridge.storage_state(self._benchmark, self._request.config)
        bridge.claim_fixture(self._benchmark)
        self._names.append(name)
        lock = bridge.device_lock(str(options.device)) if bridge.in_xdist_worker() else None
        result = compare_speed(
            candidate, reference, inputs, options, measure=state.measure, lock=lock
        )
        fullname = self._request.node.nodeid
        if state.store:
            fullname = bridge.store(self._benchmark, result, name)
        elif self._benchmark is not None:
            fullname = bridge.entry_names(self._benchmark, name)[1]
        verdict = result.verdict
        try:
            if not state.measure:
                verdict = "skipped"
                pytest.skip(
                    f"speed verdict skipped: {state.note}; candidate and reference each ran once"
                )
            verdict = "error"
            outcome = conclude(result, options)
            verdict = result.verdict + (" (warned)" if result.verdict == "inconclusive" else "")
            return outcome
        except pytest.skip.Exception:
            if verdict != "skipped":
                verdict = "inconclusive (skipped)"
            raise
        except AssertionError:
            speed_ok = result.verdict in (_stats.PASS, _stats.MEASURED)
            verdict = "fail (memory)" if speed_ok else result.verdict
            raise
        finally:
            row = make_row(
                result,
                verdict=verdict,
                nodeid=self._request.node.nodeid,
                fullname=fullname,
                storage="saved" if state.store else state.note,
            )
            self._request.node.user_properties.append((ROW_KEY, row))

    def _check_name(self, name: str | None) -> None:
        __tracebackhide__ = True
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name in self._names or (self._names and name is None):
            what = f"name={name!r}" if name is not None else "no name="
            raise ValueError(
                f"assert_faster_than_reference was already called in this test with {what}; "
                "each comparison in one test needs its own name= (stored as "
                "'<test>::<name>' in pytest-benchmark), or parametrize the test"
            )
