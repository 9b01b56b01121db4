"""Judging one output or gradient against the truth, and recording what was judged.

The tolerance model itself is in :mod:`.tolerance`; this step applies it to a
candidate/reference/truth triple, handles a reference that disagrees with its
own float64 run, and records the outcome in the check's report or its list of
problems.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..formatting import describe_tensor, dtype_name
from .compare import Leaf, as_tensor, exact_problem
from .options import CheckOptions
from .plan import Trial
from .report import EquivalenceReport, Problem, value_problem
from .slices import SLICE_RULE_MAX_ELEMENTS, Scratch
from .tolerance import GRADIENT_NOISE, assert_close_defaults, bounds_for, judge

if TYPE_CHECKING:
    import torch


class Judge:
    """Applies the tolerance model for one check; keeps its scratch buffers and notes."""

    def __init__(self, options: CheckOptions, report: EquivalenceReport) -> None:
        self.options = options
        self.report = report
        self.scratch = Scratch()
        self._suspects: set[tuple[str, str]] = set()

    def leaf(
        self, leaf: Leaf, truth_index: dict[str, Any], trial: Trial, problems: list[Problem], label: str | None = None
    ) -> None:
        """Judge an output leaf: exactly for integers and booleans, against the truth for floats."""
        if leaf.kind == "exact":
            problem = exact_problem(leaf)
            if problem is not None:
                if label is not None:
                    problem.path = label
                problems.append(problem)
            return
        c, r = as_tensor(leaf.candidate), as_tensor(leaf.reference)
        t = truth_index.get(leaf.path)
        t = as_tensor(t) if t is not None else r
        self.values(label or leaf.path, c.detach(), r.detach(), t.detach(), trial, problems, is_output=True)

    def values(
        self,
        path: str,
        c: torch.Tensor,
        r: torch.Tensor,
        t: torch.Tensor,
        trial: Trial,
        problems: list[Problem],
        *,
        is_output: bool,
        grad_scale: Callable[[], float] | None = None,
    ) -> None:
        """Judge ``c`` against truth ``t`` (reference ``r`` as a yardstick); a failure joins ``problems``."""
        import torch

        options, report = self.options, self.report
        t = t.to(torch.complex128 if (t.dtype.is_complex or c.dtype.is_complex) else torch.float64)
        if t.ndim >= 2 and t.numel() > SLICE_RULE_MAX_ELEMENTS and not options.tolerance.user:
            report.add_note(
                f"tensors over {SLICE_RULE_MAX_ELEMENTS} elements were judged without the slice rule "
                "(each row and column on its own scale), to keep large checks cheap"
            )
        bounds = bounds_for(c.dtype, options.dtype)
        noise_floor = None
        if grad_scale is not None:
            scale = grad_scale

            def noise_floor() -> float:
                return GRADIENT_NOISE * bounds.eps * scale()

        defaults = assert_close_defaults(c.dtype if c.dtype.is_floating_point or c.dtype.is_complex else options.dtype)

        def against(truth: torch.Tensor) -> Any:
            return judge(
                c, r, truth, bounds=bounds, tolerance=options.tolerance, user_defaults=defaults,
                scratch=self.scratch, noise_floor=noise_floor,
            )  # fmt: skip

        verdict = against(t)
        if verdict.reference_off is not None and options.separate_truth:
            # The reference and its own float64 run disagree far beyond
            # rounding, so neither is trusted alone: the candidate passes if
            # it matches either one without slack.
            working = dtype_name(options.dtype)
            matched, off = "the float64 truth", verdict.reference_off
            if not verdict.ok:
                second = against(r.detach().to(t.dtype))
                if second.ok:
                    verdict, matched = second, f"the reference in {working}"
            key = (path, matched if verdict.ok else "neither")
            if key not in self._suspects:
                self._suspects.add(key)
                report.add_note(
                    f"{path}: the reference's float64 run differs from its {working} run far "
                    f"beyond rounding ({off:.3g} relative in trial {trial.number}): random ops drawing "
                    "differently in float64, a reference that is not dtype-generic, or one that breaks "
                    f"down at this scale; the candidate {'matched ' + matched if verdict.ok else 'matched neither'}"
                )
        (report.outputs if is_output else report.gradients).append(f"{path} (trial {trial.number})")
        for note in verdict.notes:
            scale_text = f", at input scale x{trial.scale:.3g}" if trial.scale is not None else ""
            report.add_note(f"{path}: {note}{scale_text} (trial {trial.number}, {trial.kind})")
        if verdict.ok:
            report.consider(path, trial, verdict.ratio, verdict.error, verdict.allowed, verdict.rule)
        else:
            assert verdict.mismatch is not None
            problems.append(value_problem(path, describe_tensor(c), verdict.mismatch, trial))
