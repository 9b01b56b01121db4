"""The trial plan: which inputs one equivalence check tries, and how they are laid out.

A builder gets, by default, ``trials`` random-value trials (fresh seeds), one
trial whose tensors are re-laid-out as non-contiguous views (strided and
offset, same values), one with large-magnitude and one with small-magnitude
inputs (scaled inside ``make``, see :func:`magnitudes`), and one with inputs
offset far from zero (:func:`offset_for`). Fixed tuple inputs get the values
given, then the same values re-laid-out.

At large sizes (more than :data:`LARGE_INPUT_ELEMENTS` input elements) the
random trials shrink to one: every trial of a large op costs seconds, and the
layout trial draws fresh values too, so a candidate that caches its result is
still caught by two different inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..inputs import Args, Maker, build, check_named_arguments, derive_seed, map_args
from .copies import clone_layout

if TYPE_CHECKING:
    import torch

    from .options import CheckOptions

#: Above this many floating input elements, run one random trial instead of ``trials``.
LARGE_INPUT_ELEMENTS = 1 << 20

#: make()'s default floating range is [-9, 9]; the magnitude trials multiply it.
_DEFAULT_HIGH = 9.0


@dataclass(frozen=True)
class Trial:
    """One set of inputs: which kind, from which seed, in which layout and scale."""

    number: int  # 1-based
    kind: str  # "random" | "given" | "layout" | "large" | "small" | "offset"
    seed: int
    noncontiguous: bool = False
    scale: float | None = None
    #: added to make()'s default-range tensors (the offset trial)
    offset: float | None = None

    @property
    def magnitude(self) -> float:
        """How many times farther from zero than a random trial's the inputs reach (at least 1)."""
        reach = _DEFAULT_HIGH * (self.scale if self.scale is not None else 1.0) + (self.offset or 0.0)
        return max(1.0, reach / _DEFAULT_HIGH)

    @property
    def layout(self) -> str:
        return "non-contiguous (strided, offset)" if self.noncontiguous else "contiguous"

    def describe(self, total: int | None = None) -> str:
        """``trial 4 of 6 (large magnitude): seed=12, layout contiguous, inputs x100``."""
        label = {
            "random": "random values",
            "given": "the given inputs",
            "layout": "non-contiguous layout",
            "large": "large magnitude",
            "small": "small magnitude",
            "offset": "offset from zero",
        }[self.kind]
        of = f" of {total}" if total else ""
        scale = (
            f", inputs scaled x{self.scale:.3g} (|x| up to {_DEFAULT_HIGH * self.scale:.3g} "
            "unless the builder fixed low/high)"
            if self.scale is not None
            else ""
        )
        if self.offset is not None:
            scale += f", inputs shifted by +{self.offset:.3g} (unless the builder fixed low/high)"
        seed = f"seed={self.seed}, " if self.kind != "given" else ""
        return f"trial {self.number}{of} ({label}): {seed}layout {self.layout}{scale}"


def magnitudes(dtype: torch.dtype) -> tuple[float, float]:
    """(large, small) scale factors for ``make``'s default [-9, 9] range.

    Large: values up to about 1e3 (fourth root of the dtype's max for
    float16, so that a few products stay finite), enough to overflow a naive
    ``exp`` in every float dtype. Small: values up to about 1e-3 (or the
    fourth root of the smallest normal float16), where flushing to zero or an
    absolute-epsilon shortcut shows.

    >>> import torch
    >>> [round(9 * m, 6) for m in magnitudes(torch.float32)]
    [1000.0, 0.001]
    """
    import torch

    info = torch.finfo(dtype if dtype.is_floating_point else torch.float32)
    large = min(1e3, info.max**0.25) / _DEFAULT_HIGH
    small = max(1e-3, info.tiny**0.25) / _DEFAULT_HIGH
    return large, small


def offset_for(dtype: torch.dtype) -> float:
    """How far the offset trial shifts make()'s default [-9, 9] data: ``9 * eps**(-1/3)``.

    One cancellation of the offset (centring the data) costs a relative
    error of ``eps * offset / spread = eps**(2/3)``, the normwise tolerance,
    so correct two-pass code passes (and the condition-aware allowance
    covers what rounding the shifted inputs moves); a squared cancellation
    (``E[x**2] - E[x]**2``) costs ``eps**(1/3)``, ``eps**(-1/3)`` times over
    (203x in float32).

    >>> import torch
    >>> round(offset_for(torch.float32))
    1829
    """
    import torch

    eps = torch.finfo(dtype if dtype.is_floating_point else torch.float32).eps
    return _DEFAULT_HIGH * eps ** (-1.0 / 3.0)


def plan(
    seed: int,
    *,
    builder: bool,
    trials: int,
    dtype: torch.dtype,
    input_elements: int | None = None,
) -> list[Trial]:
    """The trials of one check. ``input_elements`` (known after the first build) shrinks large plans."""
    if not builder:
        return [Trial(1, "given", seed), Trial(2, "layout", seed, noncontiguous=True)]
    random_trials = trials
    if input_elements is not None and input_elements > LARGE_INPUT_ELEMENTS:
        random_trials = 1
    out = [Trial(i + 1, "random", derive_seed(seed, "trial", i)) for i in range(random_trials)]
    large, small = magnitudes(dtype) if dtype.is_floating_point else (None, None)
    extra: list[tuple[str, bool, float | None, float | None]] = [("layout", True, None, None)]
    if large is not None:
        extra += [("large", False, large, None), ("small", False, small, None)]
        extra.append(("offset", False, None, offset_for(dtype)))
    for kind, noncontiguous, scale, offset in extra:
        number = len(out) + 1
        out.append(Trial(number, kind, derive_seed(seed, kind), noncontiguous, scale, offset))
    return out


#: What failures and crashes of the layout trial's backward say about the gradients pushed in.
STRIDED_COTANGENTS = "gradients flowing in (cotangents): non-contiguous too, every other element of a wider buffer"


def noncontiguous_copy(t: torch.Tensor) -> torch.Tensor:
    """Same values, non-contiguous: every other element of a wider buffer, offset by one.

    The result is a leaf (``detach`` keeps strides and offset), so gradients
    can be taken with respect to it.
    """
    import torch

    if t.dim() == 0:
        return t.clone()
    shape = list(t.shape)
    wide = [*shape[:-1], 2 * shape[-1] + 1]
    buf = torch.empty(wide, dtype=t.dtype, device=t.device)
    view = buf[..., 1::2]
    view.copy_(t.detach())
    return view.detach()


def trial_inputs(
    trial: Trial, options: CheckOptions, *, context: str | Callable[[], str]
) -> tuple[Args, bool]:
    """The inputs of ``trial``, and whether a magnitude trial found nothing to scale.

    Fixed inputs are copied (re-laid-out for the layout trial); a builder is
    called with a ``make`` seeded for the trial and scaled for magnitude
    trials. A crash in the builder is re-raised with ``context``.
    """
    __tracebackhide__ = True
    import torch

    if options.given is not None:
        return map_args(options.given, noncontiguous_copy if trial.noncontiguous else clone_layout), False
    make = Maker(options.device, options.dtype, trial.seed, scale=trial.scale, offset=trial.offset)
    with torch.no_grad():
        args = build(options.builder, make, context=context)  # type: ignore[arg-type]
    moved = trial.scale is not None or trial.offset is not None
    scaled_none = moved and not any(scaled for _, scaled in make.made)
    args = map_args(args, noncontiguous_copy if trial.noncontiguous else (lambda t: t.detach()))
    check_named_arguments(args, mutates=options.mutates, no_grad=options.no_grad)
    return args, scaled_none
