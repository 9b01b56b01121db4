"""What a check found: the report a passing check returns, the message a failing one raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..formatting import fmt
from .plan import STRIDED_COTANGENTS, Trial

if TYPE_CHECKING:
    from .tolerance import Mismatch


@dataclass
class Problem:
    """One failing output, gradient or input: where, what, how far."""

    path: str
    lines: list[str]

    def render(self) -> str:
        head, *rest = self.lines
        return "\n".join([f"  {self.path}: {head}", *(f"    {line}" for line in rest)])


def value_problem(path: str, meta: str, mismatch: Mismatch, trial: Trial | None) -> Problem:
    """Lines for a tensor whose values differ (or are non-finite) beyond the tolerance."""
    index = ", ".join(map(str, mismatch.index))
    where = f"at index ({index})" if mismatch.index else "at the single element"
    if mismatch.kind == "non-finite":
        scale = f", at input scale x{trial.scale:.3g}" if trial is not None and trial.scale is not None else ""
        head = (
            f"{meta}: candidate is non-finite where the reference is finite at "
            f"{mismatch.count} of {mismatch.total} elements{scale}"
        )
        return Problem(
            path,
            [
                head,
                f"first {where}: candidate {fmt(mismatch.candidate)}, reference "
                f"{fmt(mismatch.reference)}, truth {fmt(mismatch.truth)}",
            ],
        )
    if mismatch.kind == "truth-non-finite":
        return Problem(
            path,
            [
                f"{meta}: {mismatch.criterion} at {mismatch.count} of {mismatch.total} elements",
                f"first {where}: candidate {fmt(mismatch.candidate)}, reference "
                f"{fmt(mismatch.reference)}, truth {fmt(mismatch.truth)}",
            ],
        )
    return Problem(
        path,
        [
            f"{meta}: {mismatch.count} of {mismatch.total} elements differ; {mismatch.criterion}",
            f"worst {where}: candidate {fmt(mismatch.candidate)}, reference "
            f"{fmt(mismatch.reference)}, truth {fmt(mismatch.truth)}",
            f"error {mismatch.error:.3g} vs allowed {mismatch.allowed:.3g}",
        ],
    )


@dataclass
class Worst:
    """The comparison that came closest to its allowance."""

    path: str
    trial: int
    ratio: float
    error: float
    allowed: float
    rule: str

    def __str__(self) -> str:
        return (
            f"{self.path} in trial {self.trial}: {self.rule} error {self.error:.3g} "
            f"vs allowed {self.allowed:.3g}; the closest rule used {100 * self.ratio:.3g}% of its allowance"
        )


@dataclass
class EquivalenceReport:
    """What a passing :func:`assert_same_as_reference` checked.

    >>> report = assert_same_as_reference(fast, slow, inputs)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    7 trials (random x3, layout, large, small, offset); 8 output and 7 gradient comparisons against the float64 truth
    worst: grad of input 0 in trial 6: normwise relative error 1.72e-07 vs allowed 2.42e-05; ...
    """

    trials: list[Trial] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    gradients: list[str] = field(default_factory=list)
    worst: Worst | None = None
    notes: list[str] = field(default_factory=list)
    truth: str = "float64"
    parameter_gradients_compared: bool = False
    #: variant compile: (seconds, graphs, how) of the candidate's compilation, and its note
    compiled: tuple[float, int, str] | None = None
    compile_note: str | None = None

    @property
    def kinds(self) -> list[str]:
        return [trial.kind for trial in self.trials]

    def _truth_text(self) -> str:
        # "float64 truth", or "float64 reference (...)" when the test's own
        # dtype is float64 and the reference run is the truth.
        return f"{self.truth} truth" if self.truth == "float64" else self.truth

    def add_note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def consider(self, path: str, trial: Trial, ratio: float, error: float, allowed: float, rule: str) -> None:
        if self.worst is None or ratio > self.worst.ratio:
            self.worst = Worst(path, trial.number, ratio, error, allowed, rule)

    def __str__(self) -> str:
        counts: dict[str, int] = {}
        for kind in self.kinds:
            counts[kind] = counts.get(kind, 0) + 1
        kinds = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in counts.items())
        lines = [
            f"{len(self.trials)} trials ({kinds}); {len(self.outputs)} output and "
            f"{len(self.gradients)} gradient comparisons against the {self._truth_text()}",
        ]
        if self.worst is not None:
            lines.append(f"worst: {self.worst}")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def failure_message(
    *,
    trial: Trial,
    total_trials: int,
    passed_before: int,
    problems: list[Problem],
    rerun: str,
    notes: list[str],
    inputs_line: str,
) -> str:
    """The one message of a failing check: every problem of the failing trial."""
    what = "problem" if len(problems) == 1 else "problems"
    lines = [
        f"candidate differs from reference: {len(problems)} {what} in "
        f"{trial.describe(total_trials)}"
        + (f"; {passed_before} earlier trial{'s' if passed_before != 1 else ''} passed" if passed_before else ""),
        f"  inputs: {inputs_line}",
    ]
    if trial.noncontiguous and any(p.path.startswith("grad of") for p in problems):
        lines.append(f"  {STRIDED_COTANGENTS}")
    lines += [problem.render() for problem in problems]
    lines += [f"  note: {note}" for note in notes]
    lines.append(rerun)
    return "\n".join(lines)
