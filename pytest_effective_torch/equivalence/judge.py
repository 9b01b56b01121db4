"""Judging one output or gradient against the truth, and recording what was judged.

The tolerance model itself is in :mod:`.tolerance`; this step applies it to a
candidate/reference/truth triple, handles a reference that disagrees with its
own float64 run, and records the outcome in the check's report or its list of
problems.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..formatting import describe_tensor, dtype_name
from .compare import Leaf, as_tensor, exact_problem
from .options import CheckOptions
from .plan import Trial
from .report import EquivalenceReport, Problem, value_problem
from .slices import SLICE_RULE_MAX_ELEMENTS, Scratch
from .tolerance import GRADIENT_NOISE, Bounds, assert_close_defaults, bounds_for, judge

if TYPE_CHECKING:
    import torch

    from .conditioning import Conditioning


class Judge:
    """Applies the tolerance model for one check; keeps its scratch buffers and notes."""

    def __init__(self, options: CheckOptions, report: EquivalenceReport) -> None:
        self.options = options
        self.report = report
        self.scratch = Scratch()
        self._suspects: set[tuple[str, str]] = set()
        #: the trial's perturbed truths (set by the check for each trial), for the slow path
        self.conditioning: Conditioning | None = None
        #: called with the reason once the reference proves not float64-accurate
        self.degrade: Callable[[str], None] | None = None
        #: the precision the reference really computes in, once the probe found it coarse
        self.reference_precision: torch.dtype | None = None

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
        self.values(
            label or leaf.path, c.detach(), r.detach(), t.detach(), trial, problems, is_output=True, spread_key=leaf.path
        )

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
        grad_scale: Callable[[], tuple[float, float, float]] | None = None,
        spread_key: str | None = None,
    ) -> None:
        """Judge ``c`` against truth ``t`` (reference ``r`` as a yardstick); a failure joins ``problems``."""
        import torch

        options, report = self.options, self.report
        wide = torch.complex128 if (t.dtype.is_complex or c.dtype.is_complex) else torch.float64
        if t.dtype != wide:
            t = t.to(wide)
        if t.ndim >= 2 and t.numel() > SLICE_RULE_MAX_ELEMENTS and not options.tolerance.user:
            report.add_note(
                f"tensors over {SLICE_RULE_MAX_ELEMENTS} elements were judged without the slice rule "
                "(each row and column on its own scale), to keep large checks cheap"
            )
        bounds = bounds_for(c.dtype, options.dtype)
        noise_floor = None
        if grad_scale is not None:
            # A gradient element is a sum over every path from the outputs:
            # it may lose its digits to cancellation at the gradient's scale.
            bounds = _gradient_bounds(bounds)
            scale = grad_scale

            def noise_floor(nt: float) -> tuple[float, bool]:
                # The rounding noise of the backward pass: the cotangent times
                # the output it is pushed through, shared out over the input
                # (a scalar loss's gradient is split over every logit). A
                # gradient near zero (||t|| * ||x|| below eps**(1/2) of
                # ||v|| * ||y||, the size the cotangent and the output give
                # it: a saturated softmax) may be that noise everywhere, and
                # in the magnitude trials that noise grows with how far the
                # inputs moved (a composite op's inner products, attention's
                # logits, grow with both factors).
                share, size, x_norm = scale()
                near_zero = nt * x_norm < bounds.elementwise * size
                floor = GRADIENT_NOISE * bounds.eps * share
                return (floor * trial.magnitude if near_zero else floor), near_zero

        defaults = assert_close_defaults(c.dtype if c.dtype.is_floating_point or c.dtype.is_complex else options.dtype)
        conditioning = self.conditioning if spread_key is not None and not options.tolerance.user else None
        spread = None
        if conditioning is not None:
            key, truth = spread_key, t

            def spread() -> torch.Tensor | None:
                return conditioning.spread(key, truth)  # type: ignore[arg-type]

        def against(truth: torch.Tensor, within: Any = bounds, spread: Any = spread) -> Any:
            return judge(
                c, r, truth, bounds=within, tolerance=options.tolerance, user_defaults=defaults,
                scratch=self.scratch, noise_floor=noise_floor, spread=spread,
            )  # fmt: skip

        if callable(r):  # a reference gradient computed only when a comparison needs it
            later = r

            def r_now() -> torch.Tensor:
                value = later()
                return t.to(c.dtype) if value is None else value.detach()

            r = _Deferred(r_now)
        verdict = against(t)
        if isinstance(r, _Deferred) and (not verdict.ok or verdict.reference_off is not None):
            r = r()
        if not verdict.ok and conditioning is not None and self._coarse(conditioning):
            # The "truth" is the reference's own lower-precision result: judge
            # against the reference at the precision it really computes in.
            # Where it overflows or breaks down there, no truth is known: a
            # nan truth accepts the candidate (noted when it is finite).
            coarse = bounds_for(c.dtype, options.dtype, self.reference_precision)  # type: ignore[arg-type]
            rt = r.to(t.dtype)
            verdict = against(torch.where(torch.isfinite(rt), rt, torch.full((), math.nan, dtype=rt.dtype)), coarse, None)
        if verdict.reference_off is not None and options.separate_truth:
            # The reference and its own float64 run disagree far beyond
            # rounding, so neither is trusted alone: the candidate passes if
            # it matches either one without slack.
            working = dtype_name(options.dtype)
            matched, off = "the float64 truth", verdict.reference_off
            if not verdict.ok:
                second = against(r.detach().to(t.dtype), bounds, None)
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

    def _coarse(self, conditioning: Conditioning) -> bool:
        """Whether the reference is not float64-accurate (probed once a comparison fails)."""
        import torch

        if self.reference_precision is None and conditioning.coarse():
            self.reference_precision = torch.float32
            if self.degrade is not None:
                self.degrade(
                    "its outputs do not move when the inputs are nudged below float32's resolution "
                    "(it computes in float32 or coarser inside)"
                )
        return self.reference_precision is not None


class _Deferred:
    """A tensor computed on first call, once (the judge's slow path asks for it)."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute
        self.value: Any = None

    def __call__(self) -> Any:
        if self.value is None:
            self.value = self.compute()
        return self.value


@functools.lru_cache(maxsize=16)
def _gradient_bounds(bounds: Bounds) -> Bounds:
    """``bounds`` with the elementwise floor of gradients, ``eps**(1/2) * rms(t)``."""
    return dataclasses.replace(bounds, element_floor=bounds.elementwise)
