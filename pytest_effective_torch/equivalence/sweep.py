"""An equivalence check swept over sizes, and the bisection that finds where it starts to fail.

Each point of the grid is one check with a short plan: :data:`POINT_TRIALS`
random-value trial(s) (``trials=`` changes that), then one of the layout,
large- and small-magnitude trials, taking turns across the points in grid
order. A sweep of 10 points thus runs 20 trials, where 10 default checks
would run 60, and with 3 points or more every kind of trial runs somewhere.

Every point runs, so a failure reports them all. Below each failing point
the engine looks for the largest size that passed (along one key, the
others held) and bisects the integers between it and the smallest failing
size above it, with one trial per step, of the kind that failed: at most
``ceil(log2(gap))`` extra trials per boundary. The result reads
``n=64 passes, n=65 fails``. A step that crashes stops that bisection and
is reported as a crash.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckFailed, UserCodeError, with_context
from ..sizes import Grid, Point, bind, point_seed
from . import plan as plans
from .check import Check
from .options import CheckOptions
from .plan import Trial
from .report import EquivalenceReport
from .sides import Sides

#: Random-value trials per point of a sweep unless ``trials=`` says otherwise.
POINT_TRIALS = 1


@dataclass
class PointOutcome:
    """What the check at one point found: a report, or the failure and the trial that failed."""

    point: Point
    report: EquivalenceReport | None = None
    failure: str | None = None
    failed_trial: Trial | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None


@dataclass
class Step:
    """One bisection step: a size checked with a single trial."""

    point: Point
    result: str  # "passes" | "fails" | "crashed"
    crash: str = ""

    def __str__(self) -> str:
        return f"{self.point.label} {self.result}" + (f" ({self.crash})" if self.crash else "")


@dataclass
class Boundary:
    """Where the check turns from pass to fail along one key: the last found passing and first failing size."""

    key: str
    passing: Point
    failing: Point
    #: the swept failing points this boundary lies below
    below: list[Point] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    kind: str = "random"

    def describe(self) -> str:
        below = ", ".join(p.label for p in self.below)
        head = f"pass-to-fail boundary below {below}: {self.passing.label} passes, {self.failing.label} fails"
        crashed = [s for s in self.steps if s.result == "crashed"]
        if crashed:
            head = (
                f"pass-to-fail boundary below {below}: between {self.passing.label} (passes) and "
                f"{self.failing.label} (fails); bisection stopped at {crashed[0].point.label}, which "
                f"crashed: {crashed[0].crash}"
            )
        if not self.steps:
            return head + " (adjacent sizes of the sweep)"
        steps = ", ".join(str(s) for s in self.steps if s.result != "crashed") or "none completed"
        kind = {"random": "random-value", "layout": "non-contiguous layout"}.get(self.kind, f"{self.kind}-magnitude")
        return f"{head} (bisected over {self.key}, one {kind} trial per step: {steps})"


@dataclass
class EquivalenceSweepReport:
    """What a passing ``assert_same_as_reference(..., sizes=...)`` checked: one report per point.

    >>> report = assert_same_as_reference(fast, slow, rows, sizes={"n": [1, 16, 64]})  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    3 sizes of n=[1, 16, 64], 2 trials each (1 random + layout, large, small in turn); all pass
    """

    grid: str
    points: dict[str, EquivalenceReport] = field(default_factory=dict)
    trials_per_point: int = POINT_TRIALS + 1

    def __str__(self) -> str:
        lines = [
            f"{len(self.points)} sizes of {self.grid}, {self.trials_per_point} trials each "
            f"({self.trials_per_point - 1} random + layout, large, small in turn); all pass"
        ]
        worst = max(
            ((label, r.worst) for label, r in self.points.items() if r.worst is not None),
            key=lambda item: item[1].ratio,
            default=None,
        )
        if worst is not None:
            lines.append(f"worst: at {worst[0]}: {worst[1]}")
        # Each size compiles its own graphs: one line sums them up.
        notes = dict.fromkeys(note for r in self.points.values() for note in r.notes if note != r.compile_note)
        lines += [f"note: {note}" for note in notes]
        compiled = [r.compiled for r in self.points.values() if r.compiled is not None]
        if compiled:
            seconds, graphs = sum(c[0] for c in compiled), sum(c[1] for c in compiled)
            lines.append(
                f"note: compile: {seconds:.1f} s in the first calls of {graphs} input signature(s) over "
                f"{len(compiled)} size(s) ({compiled[0][2]}; reference and truth eager)"
            )
        return "\n".join(lines)


def point_plan(seed: int, dtype: Any, random_trials: int, turn: int) -> list[Trial]:
    """A point's trials: the random ones, then one of the others (layout, large, small) by ``turn``."""
    full = plans.plan(seed, builder=True, trials=random_trials, dtype=dtype)
    randoms = [t for t in full if t.kind == "random"]
    # The offset trial stays with single checks: a sweep is about sizes,
    # and a fourth kind in turn would need four points to run them all.
    others = [t for t in full if t.kind not in ("random", "offset")]
    chosen = randoms + ([others[turn % len(others)]] if others else [])
    return [dataclasses.replace(t, number=n) for n, t in enumerate(chosen, 1)]


def step_plan(seed: int, dtype: Any, kind: str) -> list[Trial]:
    """A bisection step's single trial, of ``kind``."""
    full = plans.plan(seed, builder=True, trials=1, dtype=dtype)
    trial = next(t for t in full if t.kind == kind)
    return [dataclasses.replace(trial, number=1)]


def _without_rerun(message: str, rerun: str) -> str:
    lines = message.splitlines()
    if lines and lines[-1] == rerun:
        lines = lines[:-1]
    return "\n".join(lines)


def _crash_text(exc: BaseException) -> str:
    """``IndexError: ... (while running the candidate)``: one line for a crash in a bisection step."""
    lines = str(exc).splitlines()
    first = lines[0] if lines else ""
    if isinstance(exc, UserCodeError):  # Python 3.10: "IndexError: ..." with the context below it
        text = first
    else:
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    context = [*getattr(exc, "__notes__", ()), *lines[1:]]
    whiles = [n for n in context if n.startswith("effective-torch: while ")]
    if whiles:
        doing = whiles[0].splitlines()[0].removeprefix("effective-torch: ").split(" in trial ")[0]
        text += f" ({doing})"
    return text


class Sweep:
    """One ``assert_same_as_reference(..., sizes=...)``: every point, then bisection below failures."""

    def __init__(
        self,
        candidate: Callable[..., Any],
        reference: Callable[..., Any],
        options: CheckOptions,
        grid: Grid,
        random_trials: int,
    ) -> None:
        self.candidate = candidate
        self.reference = reference
        self.options = options
        self.builder = options.builder
        self.grid = grid
        self.random_trials = random_trials

    def _check(self, point: Point, plan_for: Callable[[int], list[Trial]]) -> PointOutcome:
        """The check at ``point``; CheckFailed becomes an outcome, a crash propagates."""
        __tracebackhide__ = True
        seed = point_seed(self.options.seed, point)
        options = dataclasses.replace(self.options, builder=bind(self.builder, point), seed=seed)  # type: ignore[arg-type]
        plan = plan_for(seed)
        sides = Sides.build(self.candidate, self.reference, options)
        check = Check(options, sides, plan)
        try:
            return PointOutcome(point, report=check.run())
        except CheckFailed as exc:
            failed = plan[min(len(check.report.trials), len(plan) - 1)]
            return PointOutcome(point, failure=_without_rerun(str(exc), options.rerun), failed_trial=failed)

    def run(self) -> EquivalenceSweepReport:
        __tracebackhide__ = True
        dtype = self.options.dtype
        outcomes: list[PointOutcome] = []
        points = self.grid.points()
        for turn, point in enumerate(points):
            try:
                outcomes.append(
                    self._check(point, lambda seed, turn=turn: point_plan(seed, dtype, self.random_trials, turn))
                )
            except Exception as exc:
                done = ", ".join(f"{o.point.label} {'passed' if o.passed else 'failed'}" for o in outcomes)
                with_context(
                    exc,
                    f"effective-torch: at size {point.label} of the sweep {self.grid.describe()}"
                    + (f" (before it: {done})" if done else ""),
                )
        failing = [o for o in outcomes if not o.passed]
        if failing:
            raise CheckFailed(self.failure_message(outcomes, self.bisect(outcomes)))
        report = EquivalenceSweepReport(self.grid.describe(), trials_per_point=self.random_trials + 1)
        for outcome in outcomes:
            assert outcome.report is not None
            report.points[outcome.point.label] = outcome.report
        return report

    # -- bisection ------------------------------------------------------------

    def transitions(self, outcomes: list[PointOutcome]) -> list[Boundary]:
        """For each failing point, the pass-to-fail step below it along the key with the smallest gap."""
        by_point = {o.point: o for o in outcomes}
        found: dict[tuple[str, Point, Point], Boundary] = {}
        for outcome in outcomes:
            if outcome.passed:
                continue
            best: tuple[int, str, Point, Point] | None = None
            for key in self.grid.keys:
                line = sorted(
                    (o for o in outcomes if all(o.point[k] == outcome.point[k] for k in self.grid.keys if k != key)),
                    key=lambda o: o.point[key],
                )
                below = [o for o in line if o.point[key] < outcome.point[key] and o.passed]
                if not below:
                    continue
                passing = below[-1].point
                failing = next(
                    o.point for o in line if passing[key] < o.point[key] <= outcome.point[key] and not o.passed
                )
                gap = failing[key] - passing[key]
                if best is None or gap < best[0]:
                    best = (gap, key, passing, failing)
            if best is None:
                continue
            _, key, passing, failing = best
            boundary = found.setdefault(
                (key, passing, failing),
                Boundary(key, passing, failing, kind=by_point[failing].failed_trial.kind),  # type: ignore[union-attr]
            )
            boundary.below.append(outcome.point)
        return list(found.values())

    def bisect(self, outcomes: list[PointOutcome]) -> list[Boundary]:
        __tracebackhide__ = True
        boundaries = self.transitions(outcomes)
        dtype = self.options.dtype
        for boundary in boundaries:
            key = boundary.key
            cap = math.ceil(math.log2(max(1, boundary.failing[key] - boundary.passing[key])))
            for _ in range(cap):
                low, high = boundary.passing[key], boundary.failing[key]
                if high - low <= 1:
                    break
                mid = boundary.passing.replace(key, (low + high) // 2)
                try:
                    outcome = self._check(mid, lambda seed, kind=boundary.kind: step_plan(seed, dtype, kind))
                except Exception as exc:
                    boundary.steps.append(Step(mid, "crashed", _crash_text(exc)))
                    break
                if outcome.passed:
                    boundary.steps.append(Step(mid, "passes"))
                    boundary.passing = mid
                else:
                    boundary.steps.append(Step(mid, "fails"))
                    boundary.failing = mid
        return boundaries

    # -- the message ------------------------------------------------------------

    def failure_message(self, outcomes: list[PointOutcome], boundaries: list[Boundary]) -> str:
        failing = [o for o in outcomes if not o.passed]
        passed = [o.point.label for o in outcomes if o.passed]
        lines = [
            f"candidate differs from reference at {len(failing)} of {len(outcomes)} sizes of "
            f"{self.grid.describe()}: {', '.join(o.point.label for o in failing)}"
            + (f" (passed: {', '.join(passed)})" if passed else " (no size passed)")
        ]
        bounded = {p for b in boundaries for p in b.below}
        lines += [b.describe() for b in boundaries]
        unbounded = [o.point.label for o in failing if o.point not in bounded]
        if unbounded:
            lines.append(
                f"no pass-to-fail boundary below {', '.join(unbounded)}: no smaller size of the sweep "
                "passed (add smaller sizes to find one)"
            )
        for outcome in failing:
            lines.append(f"at {outcome.point.label}: {outcome.failure}")
        kinds = "one of layout, large, small in turn"
        lines.append(
            f"note: each size ran {self.random_trials} random-value trial"
            f"{'s' if self.random_trials != 1 else ''} and {kinds}; a bisection step runs one trial, "
            "of the kind that failed, so a size it reports passing passed that one trial"
        )
        lines.append(self.options.rerun)
        return "\n".join(lines)
