"""The tolerance model's constants, and what a judgement returns.

The rules themselves, with their reasons, are in :mod:`.tolerance` (the
fast path) and :mod:`.allowance` (the condition-aware slow path).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Above this normwise relative distance from the truth, the reference's own
#: error stops being a yardstick (see Verdict.reference_off).
SUSPECT = 0.5
#: Gradient noise floor, in units of eps * rms(cotangent) * max|output| shared out
#: over the input (times min(1, numel(output) / numel(input))).
GRADIENT_NOISE = 64.0
NORMWISE_EXPONENT = 2.0 / 3.0
#: Relative accuracy demanded of every element: eps**(1/2) ...
ELEMENTWISE_EXPONENT = 0.5
#: ... down to a floor of this many eps * rms(t) (never above eps**(1/2) * rms(t)):
#: the rounding noise of long reductions (a float32 matmul's worst element
#: over K = 256..2048 sits 13-17 eps * rms(t) from the truth).
ELEMENT_FLOOR = 32.0
#: How many times the reference's own error the candidate may have.
KAPPA = 4.0
#: How many times the spread of the truth under perturbed inputs it may have
#: (at most eps**(-1/3), so that for a well-conditioned result, whose spread
#: with its rms added is about eps, the term stays within the normwise rule's
#: eps**(2/3): 32 in float32, 10 in float16, 5 in bfloat16).
CONDITIONING = 32.0


@dataclass(frozen=True)
class Tolerance:
    """User tolerances (assert_close meaning) or None for the automatic model."""

    atol: float | None = None
    rtol: float | None = None

    @property
    def user(self) -> bool:
        return self.atol is not None or self.rtol is not None


@dataclass(frozen=True)
class Bounds:
    """The automatic model's constants for one dtype."""

    eps: float
    normwise: float
    elementwise: float
    #: smallest normal number: exact zeros must not demand exact zeros
    floor: float
    #: the elementwise rule's floor, in units of rms(t)
    element_floor: float = 0.0
    #: how many times the perturbed truth's spread a candidate may be off
    conditioning: float = CONDITIONING


@functools.lru_cache(maxsize=64)
def bounds_for(*dtypes: torch.dtype) -> Bounds:
    """Automatic-model constants for the coarsest of ``dtypes``.

    >>> import torch
    >>> round(bounds_for(torch.float32).normwise, 7)
    2.42e-05
    """
    import torch

    eps, tiny = 0.0, 0.0
    for dtype in dtypes:
        if dtype.is_complex:
            dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        if not dtype.is_floating_point:
            continue
        info = torch.finfo(dtype)
        if info.eps > eps:
            eps, tiny = info.eps, info.tiny
    if eps == 0.0:
        info = torch.finfo(torch.float64)
        eps, tiny = info.eps, info.tiny
    return Bounds(
        eps=eps,
        normwise=eps**NORMWISE_EXPONENT,
        elementwise=eps**ELEMENTWISE_EXPONENT,
        floor=tiny,
        element_floor=min(ELEMENT_FLOOR * eps, eps**ELEMENTWISE_EXPONENT),
        conditioning=min(CONDITIONING, eps ** (-1 / 3)),
    )


@functools.lru_cache(maxsize=16)
def assert_close_defaults(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) that torch.testing.assert_close uses for ``dtype``."""
    import torch

    table = {
        torch.float16: (1e-5, 1e-3),
        torch.bfloat16: (1e-5, 1.6e-2),
        torch.float32: (1e-5, 1.3e-6),
        torch.float64: (1e-7, 1e-7),
        torch.complex64: (1e-5, 1.3e-6),
        torch.complex128: (1e-7, 1e-7),
    }
    return table.get(dtype, (0.0, 0.0))


@dataclass
class Mismatch:
    """Why one tensor failed, with the worst element for the message."""

    kind: str  # "values" | "non-finite" | "truth-non-finite"
    criterion: str  # human text: which rule failed and by how much
    count: int
    total: int
    index: tuple[int, ...]
    candidate: complex | float
    reference: complex | float
    truth: complex | float
    error: float
    allowed: float


@dataclass
class Verdict:
    """The judgement of one tensor: pass/fail, how close, notes."""

    ok: bool
    #: error / allowed on the rule closest to failing (<= 1 passes).
    ratio: float = 0.0
    error: float = 0.0
    allowed: float = 0.0
    rule: str = "normwise"
    mismatch: Mismatch | None = None
    notes: list[str] = field(default_factory=list)
    #: Relative distance of the reference from the truth when it exceeds
    #: :data:`SUSPECT`: the reference term was dropped, and the caller should
    #: also try the reference itself as the yardstick.
    reference_off: float | None = None

def _norm(x: torch.Tensor, ord: float = 2.0) -> torch.Tensor:
    import torch

    return torch.linalg.vector_norm(x, ord)


def _scaled_norm(x: torch.Tensor) -> float:
    """2-norm that does not overflow when squares exceed the dtype's range."""
    import torch

    peak = float(torch.linalg.vector_norm(x, math.inf))
    if peak == 0.0 or not math.isfinite(peak):
        return peak
    return float(torch.linalg.vector_norm(x / peak)) * peak


def _scalar(x: torch.Tensor) -> complex | float:
    value = x.item()
    return value


def unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index of element ``flat`` of a row-major tensor of ``shape``."""
    index = []
    for size in reversed(shape):
        index.append(flat % size if size else 0)
        flat //= size if size else 1
    return tuple(reversed(index))

def _user_tolerance(tolerance: Tolerance, defaults: tuple[float, float]) -> tuple[float, float]:
    atol = tolerance.atol if tolerance.atol is not None else defaults[0]
    rtol = tolerance.rtol if tolerance.rtol is not None else defaults[1]
    return float(atol), float(rtol)


def _worst(
    ratio: torch.Tensor,
    exceed: torch.Tensor,
    c: torch.Tensor,
    r: torch.Tensor,
    t: torch.Tensor,
    err: torch.Tensor,
    bound: torch.Tensor,
) -> tuple[int, tuple[int, ...], complex | float, complex | float, complex | float, float, float]:
    flat = int(ratio.reshape(-1).argmax())
    index = unravel(flat, tuple(t.shape))
    return (
        int(exceed.sum()),
        index,
        _scalar(c.reshape(-1)[flat]),
        _scalar(r.reshape(-1)[flat]),
        _scalar(t.reshape(-1)[flat]),
        float(err.reshape(-1)[flat]),
        float(bound.reshape(-1)[flat]),
    )


def _judge_user(
    c: torch.Tensor, r: torch.Tensor, t: torch.Tensor, d: torch.Tensor, atol: float, rtol: float
) -> Verdict:
    import torch

    err = d.abs()
    bound = atol + rtol * t.abs()
    exceed = err > bound
    if not bool(exceed.any()):
        ratio = float((err / bound.clamp_min(1e-300)).max())
        return Verdict(ok=True, ratio=ratio, error=float(err.max()), allowed=atol, rule="atol/rtol")
    ratio = torch.where(bound > 0, err / bound.clamp_min(1e-300), torch.where(err > 0, math.inf, 0.0))
    count, index, cv, rv, tv, e, a = _worst(ratio, exceed, c, r, t, err, bound)
    criterion = f"|candidate - truth| <= atol + rtol * |truth| with atol={atol:g}, rtol={rtol:g}"
    mismatch = Mismatch("values", criterion, count, t.numel(), index, cv, rv, tv, e, a)
    return Verdict(ok=False, ratio=e / a if a else math.inf, error=e, allowed=a, rule="atol/rtol", mismatch=mismatch)

