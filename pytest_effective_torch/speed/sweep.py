"""A speed comparison swept over sizes and modes: one verdict per point, honest as a family.

Each point (a size of the grid, in one mode) is one comparison with the
single verdict's statistics. With ``k`` points whose speedup is asserted,
each point's interval is a ``1 - (1 - confidence) / k`` interval
(Bonferroni). One verdict passes a candidate that is not faster with a
chance of at most ``looks * (1 - confidence) / 2`` (see :mod:`.stats`); the
union over ``k`` points at ``(1 - confidence) / k`` each has the same bound,
whatever ``k`` is. Uncorrected, ``k`` points would multiply it by ``k``.
Points only measured (``min_speedup`` None there) assert nothing and do not
count. Measured on injected timings (bench/bench_sweep.py), the corrected
sweep's rate stays under that bound but above one verdict's actual rate,
which sits well below its bound.

Every point runs; the failure names the points that fell short, and the
result lists them all.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CheckFailed, skip_test, user_stacklevel, with_context
from ..formatting import fmt_bytes, fmt_time
from ..inputs import Inputs
from ..sizes import (
    Grid,
    Point,
    bind,
    check_size_callable,
    check_sizes,
    check_sweep_inputs,
    check_unswept_inputs,
    point_seed,
)
from . import stats
from .calls import MODES
from .result import SpeedOptions, SpeedResult
from .run import compare_speed
from .throughput import fmt_bandwidth, fmt_flops
from .verdict import SpeedInconclusiveWarning, memory_problem

if TYPE_CHECKING:
    from pathlib import Path

#: ``min_speedup=`` of a sweep: a number, a callable of the size keywords, or None.
MinSpeedup = float | Callable[..., "float | None"] | None


def sweep_confidence(confidence: float, asserted: int) -> float:
    """Each point's confidence when ``asserted`` points are decided at once (Bonferroni).

    >>> round(sweep_confidence(0.999, 10), 6)
    0.9999
    """
    return 1.0 - (1.0 - confidence) / max(1, asserted)


def check_modes(mode: Any, backward: bool) -> tuple[str, ...]:
    """``mode=`` as a tuple: one mode, or several (one curve each)."""
    if mode is None:
        return ("full",) if backward else ("forward",)
    modes = (mode,) if isinstance(mode, str) else mode
    if not isinstance(modes, Sequence) or not modes:
        raise TypeError(f"mode must be one of {', '.join(MODES)} or a list of them, got {mode!r}")
    for one in modes:
        if one not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (or a list of them), got {one!r}")
    if backward and tuple(modes) != ("full",):
        raise ValueError(
            f"backward=True times forward plus backward (mode='full'); it cannot be combined "
            f"with mode={mode!r}: give one of them"
        )
    return tuple(dict.fromkeys(modes))


@dataclass(frozen=True)
class SweepSpec:
    """The validated sweep arguments: the grid, the modes, and the per-size values."""

    grid: Grid
    modes: tuple[str, ...]
    min_speedup: MinSpeedup
    nbytes: Any = None
    flops: Any = None

    def label(self, mode: str, point: Point) -> str:
        """``n=64``; ``mode=backward,n=64`` when several modes are swept."""
        return point.label if len(self.modes) == 1 else f"mode={mode},{point.label}"


def check_spec(
    inputs: Inputs, sizes: Any, mode: Any, backward: bool, min_speedup: Any, nbytes: Any, flops: Any
) -> SweepSpec:
    """Validate the sweep's own arguments (TypeError/ValueError before anything runs)."""
    grid = check_sizes(sizes)
    check_sweep_inputs(inputs, grid)
    modes = check_modes(mode, backward)
    for name, value in (("min_speedup", min_speedup), ("nbytes", nbytes), ("flops", flops)):
        check_size_callable(name, value, grid)
    return SweepSpec(grid, modes, min_speedup, nbytes, flops)


def sweep_spec(
    inputs: Inputs, sizes: Any, mode: Any, backward: Any, min_speedup: Any, nbytes: Any, flops: Any
) -> SweepSpec | None:
    """The sweep's validated arguments, or None without ``sizes=`` (TypeError/ValueError when bad)."""
    if sizes is not None:
        return check_spec(inputs, sizes, mode, backward, min_speedup, nbytes, flops)
    check_unswept_inputs(inputs)
    if mode is not None and not isinstance(mode, str):
        raise ValueError(f"several modes ({mode!r}) are several curves: they need sizes=")
    for name, value in (("min_speedup", min_speedup), ("nbytes", nbytes), ("flops", flops)):
        if callable(value):
            raise TypeError(f"{name} is a callable of the size keywords: it needs sizes=")
    return None


def _value_at(name: str, value: Any, point: Point, *, allow_none: bool, positive: bool) -> float | None:
    """``value``, or ``value(**sizes)``, checked: a finite number (> 0 or >= 0), or None where allowed."""
    got = value(**point.kwargs) if callable(value) else value
    if got is None and allow_none:
        return None
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise TypeError(f"{name} at {point.label} must be a number{' or None' if allow_none else ''}, got {got!r}")
    if not math.isfinite(got) or got < 0 or (positive and got == 0):
        raise ValueError(f"{name} at {point.label} must be a finite number {'> 0' if positive else '>= 0'}, got {got!r}")
    return float(got)


@dataclass(frozen=True)
class SweepPoint:
    """One point of a speed sweep: its sizes, its mode, and what was measured there."""

    point: Point
    mode: str
    label: str
    result: SpeedResult
    #: each side's median time per call (seconds): (low, high) of its interval, see :func:`time_interval`
    reference_interval: tuple[float, float] | None = None
    candidate_interval: tuple[float, float] | None = None

    @property
    def verdict(self) -> str:
        return self.result.verdict


def time_interval(times: Sequence[float], confidence: float) -> tuple[float, float] | None:
    """A ``confidence`` interval for the median time per call of one side, from its rounds.

    Distribution-free (order statistics: the median lies between the
    ``k``-th smallest and ``k``-th largest round with a binomial
    probability), so it stays inside the rounds measured: with too few
    rounds for ``confidence`` it is the fastest to the slowest round. None
    below 2 rounds. Neighbouring rounds are not independent, so read it as
    the spread that goes with the median, not as a verdict (the speedup's
    interval is the one that decides).

    >>> time_interval([3.0, 1.0, 2.0, 5.0, 4.0], 0.999)
    (1.0, 5.0)
    """
    ordered = sorted(t for t in times if t > 0)
    n = len(ordered)
    if n < 2:
        return None
    alpha = 1.0 - confidence
    k = 0  # the largest k (1-based) whose interval still covers the median with `confidence`
    if n <= 1000:
        tail = 0.0
        for j in range(n // 2):  # P(Binomial(n, 1/2) <= j), growing with j
            tail += math.comb(n, j) / 2.0**n
            if 2 * tail > alpha:
                break
            k = j + 1
    else:  # normal approximation to the binomial
        z = stats.t_quantile(1.0 - alpha / 2, 1e9)
        k = max(0, math.floor(n / 2 - z * math.sqrt(n) / 2))
    k = max(1, k)
    return ordered[k - 1], ordered[n - k]


@dataclass
class SpeedSweepResult:
    """What ``assert_faster_than_reference(..., sizes=...)`` measured: every point, and the verdict.

    ``verdict`` is ``pass`` (every asserted point passed), ``fail`` (one fell
    short, or used too much memory), ``inconclusive``, ``measured`` (nothing
    asserted) or ``skipped``. ``points`` lists every :class:`SweepPoint` in
    mode and grid order; ``str()`` is a table of them.

    >>> sweep = assert_faster_than_reference(fast, slow, rows, sizes={"n": [64, 1024]})  # doctest: +SKIP
    >>> [(p.label, p.result.speedup) for p in sweep.points]  # doctest: +SKIP
    [('n=64', 3.1), ('n=1024', 41.7)]
    """

    candidate_name: str
    reference_name: str
    grid: Grid
    modes: tuple[str, ...]
    confidence: float
    point_confidence: float
    asserted: int
    points: list[SweepPoint] = field(default_factory=list)
    verdict: str = stats.MEASURED

    @property
    def passed(self) -> bool:
        return self.verdict == stats.PASS

    def short(self) -> list[SweepPoint]:
        """The points whose speed verdict failed."""
        return [p for p in self.points if p.verdict == stats.FAIL]

    def table_lines(self) -> list[str]:
        """One aligned line per point: size, times, speedup and interval, required, verdict, rates."""
        header = ("size", "reference", "candidate", "speedup [interval]", "required", "verdict")
        rates = any(p.result.nbytes is not None or p.result.flops is not None for p in self.points)
        body = []
        for p in self.points:
            r = p.result
            cells = [
                p.label, fmt_time(r.reference_time), fmt_time(r.candidate_time), r.speedup_text(),
                "-" if r.min_speedup is None else f"> {r.min_speedup:g}x", r.verdict,
            ]  # fmt: skip
            if rates:
                achieved = [fmt_bandwidth(r.bandwidth("candidate"))] if r.nbytes is not None else []
                achieved += [fmt_flops(r.flop_rate("candidate"))] if r.flops is not None else []
                cells.append(", ".join(achieved) or "-")
            if r.peak_memory != (None, None):
                cells.append(f"peak {fmt_bytes(r.peak_memory[1])} vs {fmt_bytes(r.peak_memory[0])}")
            body.append(tuple(cells))
        head = header + (("candidate achieved",) if rates else ())
        widths = [max(len(line[i]) for line in [head, *body] if i < len(line)) for i in range(max(map(len, [head, *body])))]
        return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip() for line in [head, *body]]

    def intervals_note(self) -> str:
        pct = f"{self.point_confidence * 100:.6g}%"
        if self.asserted <= 1:
            return f"intervals: {pct} per size"
        return (
            f"intervals: {pct} per size ({self.confidence * 100:g}% corrected for {self.asserted} "
            f"asserted sizes, Bonferroni), which keeps one {self.confidence * 100:g}% verdict's bound on "
            "the chance of passing any size that is not faster"
        )

    def __str__(self) -> str:
        head = f"{self.candidate_name} vs {self.reference_name} over {self.grid.describe()}: {self.verdict}"
        return "\n".join([head, *self.table_lines(), self.intervals_note()])

    def save_plot(self, path: str | Path) -> tuple[Path, Path]:
        """Write the sweep's plot to ``path`` (PNG) and its data beside it (CSV); needs matplotlib."""
        from .plots import save

        return save(self, path)


def run_sweep(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    options: SpeedOptions,
    spec: SweepSpec,
    *,
    measure: bool = True,
    lock: Any = None,
    on_point: Callable[[SweepPoint], None] | None = None,
) -> SpeedSweepResult:
    """Measure every point (mode by mode, sizes ascending); decide nothing yet (see :func:`conclude_sweep`)."""
    __tracebackhide__ = True
    plan = []
    for mode in spec.modes:
        for point in spec.grid.points():
            wanted = _value_at("min_speedup", spec.min_speedup, point, allow_none=True, positive=True)
            nbytes = _value_at("nbytes", spec.nbytes, point, allow_none=True, positive=False)
            flops = _value_at("flops", spec.flops, point, allow_none=True, positive=False)
            plan.append((mode, point, wanted, nbytes, flops))
    asserted = sum(1 for _, _, wanted, _, _ in plan if wanted is not None)
    confidence = sweep_confidence(options.confidence, asserted)
    sweep = SpeedSweepResult(
        candidate_name="", reference_name="", grid=spec.grid, modes=spec.modes,
        confidence=options.confidence, point_confidence=confidence, asserted=asserted,
    )  # fmt: skip
    builder: Any = inputs
    for mode, point, wanted, nbytes, flops in plan:
        label = spec.label(mode, point)
        point_options = dataclasses.replace(
            options, min_speedup=wanted, mode=mode, backward=False, seed=point_seed(options.seed, point),
            confidence=confidence, nbytes=nbytes, flops=flops,
        )  # fmt: skip
        try:
            result = compare_speed(candidate, reference, bind(builder, point), point_options, measure=measure, lock=lock)
        except Exception as exc:
            done = ", ".join(f"{p.label} {p.verdict}" for p in sweep.points)
            with_context(
                exc,
                f"effective-torch: at size {label} of the speed sweep {spec.grid.describe()}"
                + (f" (before it: {done})" if done else ""),
            )
        sweep.candidate_name, sweep.reference_name = result.candidate_name, result.reference_name
        swept = SweepPoint(
            point, mode, label, result,
            time_interval(result.reference_times, confidence), time_interval(result.candidate_times, confidence),
        )  # fmt: skip
        sweep.points.append(swept)
        if on_point is not None:
            on_point(swept)
    sweep.verdict = _overall(sweep, options)
    return sweep


def _overall(sweep: SpeedSweepResult, options: SpeedOptions) -> str:
    verdicts = [p.verdict for p in sweep.points]
    if "skipped" in verdicts:
        return "skipped"
    if stats.FAIL in verdicts or any(memory_problem(p.result, options.max_memory_ratio) for p in sweep.points):
        return stats.FAIL
    if stats.INCONCLUSIVE in verdicts:
        return stats.INCONCLUSIVE
    return stats.PASS if stats.PASS in verdicts else stats.MEASURED


def _point_text(p: SweepPoint) -> str:
    required = "" if p.result.min_speedup is None else f", needs > {p.result.min_speedup:g}x"
    return f"{p.label} ({p.result.speedup_text()}{required})"


def conclude_sweep(sweep: SpeedSweepResult, options: SpeedOptions) -> SpeedSweepResult:
    """Return the sweep, or raise (fail), skip or warn (inconclusive) naming the points."""
    __tracebackhide__ = True

    if sweep.verdict == "skipped":
        return sweep
    memory = [
        f"at {p.label}: {m}" for p in sweep.points if (m := memory_problem(p.result, options.max_memory_ratio))
    ]
    short = sweep.short()
    undecided = [p for p in sweep.points if p.verdict == stats.INCONCLUSIVE]
    where = f"of {sweep.grid.describe()}" + (f" in modes {', '.join(sweep.modes)}" if len(sweep.modes) > 1 else "")
    heads = []
    if short:
        heads.append(
            f"candidate {sweep.candidate_name} is not faster than reference {sweep.reference_name} "
            f"as required at {len(short)} of {len(sweep.points)} sizes {where}: "
            + ", ".join(_point_text(p) for p in short)
        )
    heads += memory
    if undecided:
        heads.append(
            f"inconclusive at {len(undecided)} of {len(sweep.points)} sizes {where}: "
            + ", ".join(_point_text(p) for p in undecided)
            + "; to decide, raise the time budget (--effective-torch-time-budget, now "
            f"{options.time_budget:g} s per size) or make the machine quieter"
        )
    if not heads:
        return sweep
    first = sweep.points[0].result
    modes = ", ".join(MODES[m] for m in sweep.modes)
    details = [*sweep.table_lines(), sweep.intervals_note()]
    details.append(
        f"compared: candidate {first.candidate_name} against reference {first.reference_name}, "
        f"{modes}, device {first.device} ({first.device_name}), dtype {first.dtype or '-'}"
    )
    details.append(
        f"measured: {sum(p.result.rounds for p in sweep.points)} rounds in "
        f"{sum(p.result.elapsed for p in sweep.points):.2f} s over {len(sweep.points)} points; "
        f"timer: {first.timer_description}"
    )
    if options.rerun:
        details.append(options.rerun)
    message = "\n".join([*heads, *details])
    if short or memory or options.inconclusive == "fail":
        raise CheckFailed(message)
    if options.inconclusive == "skip":
        skip_test(message)
    warnings.warn(SpeedInconclusiveWarning(message), stacklevel=user_stacklevel())
    return sweep

