"""How far a candidate may be from the float64 truth: the tolerance model.

For one floating output (or gradient) ``c`` of the candidate, ``r`` of the
reference (both in the working dtype) and ``t`` of the reference evaluated on
float64 copies of the inputs (the *truth*), with ``eps`` the machine epsilon
of the working dtype (or of the output's dtype, if coarser):

* normwise:    ||c - t||  <=  max(eps**(2/3) * ||t||,  4 * ||r - t||)
* elementwise: |c_i - t_i| <= max(eps**(1/2) * (|t_i| + rms(t)),  4 * |r_i - t_i|)

* slices:      ||c - t||_s <= max(eps**(2/3) * ||t||_s, 4 * ||r - t||_s, 4 * eps * rms(t) * sqrt(n_s))
  for every slice s along the first and along the last dimension (rows and
  columns of a matrix, n_s elements each), for tensors of 2 or more
  dimensions up to :data:`SLICE_RULE_MAX_ELEMENTS` elements.

(2-norms over the elements where the truth and the candidate are finite;
``rms(t) = ||t|| / sqrt(n)``; a floor of the dtype's smallest normal number
keeps exact zeros from demanding exact zeros.) All must hold.

The slice rule catches a wrong row or column that the tensor-wide norm
averages away and the elementwise rule's tensor-wide ``rms(t)`` excuses (a
row 1e-4 off in float32, a column 10% off in bfloat16, columns far below the
tensor's scale); only errors under 4 eps of the tensor's rms, rounding noise
at that scale, escape it.

Why two rules. The normwise rule is the tight one: it sits between rounding
error and precision bugs (measured in float32: correct rewrites <= 1.4e-6,
a float16-inside bug 2.1e-3; ``eps**(2/3)`` is 2.4e-5), and it is purely
relative, so returning zeros or the input never passes however small the
outputs are. The elementwise rule catches a few badly wrong elements that a
norm over many elements would average away; it is looser per element because
single elements of a sum can lose all their relative digits to cancellation.
The reference term lets a candidate be as inexact as the reference itself is
in the working dtype (4x), so an inherently ill-conditioned op does not make
correct code fail.

Gradients also get an absolute floor of ``64 * eps * max_k(rms(v_k) * max|y_k|)``
(``v_k`` the cotangent pushed into output ``y_k``, ``k`` over the outputs
whose graph reaches the input): the rounding noise of pushing the cotangent
through outputs of that size. Without it a correct
rewrite fails wherever the true gradient cancels to (nearly) zero, as a
saturated softmax's does; a wrong gradient of ordinary size is far above it.

Non-finite values: where the truth is finite the candidate must be finite
unless the reference is non-finite there too (then both share the
limitation, which is noted, provided the candidate has the same non-finite
value: nan with nan, inf of the same sign); where only the reference is non-finite the
candidate is *stabler* (noted). Where the truth is non-finite the candidate
must match the truth or the reference (nan with nan, inf of the same sign).

User-given ``atol``/``rtol`` replace both rules by torch.testing.assert_close's
``|c_i - t_i| <= atol + rtol * |t_i|``, against the truth.

The passing path is three reductions (four when the largest error must be
found) whose results reach the host as a few scalars; per-element work
happens only on failure.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .slices import (
    KAPPA,
    Scratch,
    slice_norms,
    slices_ok,
    worst_slice,
)

if TYPE_CHECKING:
    import torch

#: Above this normwise relative distance from the truth, the reference's own
#: error stops being a yardstick (see Verdict.reference_off).
SUSPECT = 0.5
#: Gradient noise floor, in units of eps * rms(cotangent) * max|output|.
GRADIENT_NOISE = 64.0
NORMWISE_EXPONENT = 2.0 / 3.0
ELEMENTWISE_EXPONENT = 0.5


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
    floor: float


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
    )


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


def judge(
    c: torch.Tensor,
    r: torch.Tensor,
    t: torch.Tensor,
    *,
    bounds: Bounds,
    tolerance: Tolerance,
    user_defaults: tuple[float, float],
    scratch: Scratch | None = None,
    noise_floor: Callable[[], float] | None = None,
) -> Verdict:
    """Judge candidate ``c`` against truth ``t``, with reference ``r`` as a yardstick.

    ``noise_floor`` (gradients only) returns an absolute error every element
    may have; it is computed only when the strict rules fail.

    ``c`` and ``r`` have the same shape, dtype and device (checked before);
    ``t`` has their shape and a float64/complex128 dtype.
    """
    import torch

    if t.device != c.device:  # truth computed on the CPU (device without float64)
        c, r = c.to(t.device), r.to(t.device)
    n = t.numel()
    if n == 0:
        return Verdict(ok=True)
    scratch = scratch or Scratch()
    d = scratch.diff(c, t)

    # Fast path: three reductions and one transfer of three scalars. Finite
    # norms prove every element of c, r and t finite, so no masks are needed.
    n_t = _norm(t)
    n_c = _norm(d)
    n_r_own = _norm(r.float() if r.dtype in (torch.float16, torch.bfloat16) else r)
    values = torch.stack([n_t.real.double(), n_c.double(), n_r_own.double()]).tolist()
    nt, nc, _ = values
    all_finite = all(math.isfinite(v) for v in values)
    max_error: list[float] = []

    def mc_at_most(limit: float) -> float:
        """max|c - t|, or the 2-norm (an upper bound) when that already fits under ``limit``."""
        if nc <= limit:
            return nc
        if not max_error:
            if d.dtype.is_complex:
                max_error.append(float(_norm(d, math.inf)))
            else:  # aminmax is a vectorized single pass; the inf-norm is 3x slower
                low, high = torch.aminmax(d)
                max_error.append(max(-float(low), float(high)))
        return max_error[0]

    if all_finite:
        if tolerance.user:
            atol, rtol = _user_tolerance(tolerance, user_defaults)
            mc = mc_at_most(atol)
            if mc <= atol:
                return Verdict(ok=True, ratio=mc / atol if atol else 0.0, error=mc, allowed=atol, rule="atol/rtol")
            return _judge_user(c, r, t, d, atol, rtol)
        s = nt / math.sqrt(n)
        allowed_n = max(bounds.normwise * nt, bounds.floor * math.sqrt(n))
        allowed_e = bounds.elementwise * s + bounds.floor
        mc = mc_at_most(allowed_e)
        if not (nc <= allowed_n and mc <= allowed_e) and noise_floor is not None:
            bounds = replace(bounds, floor=max(bounds.floor, noise_floor()))
            noise_floor = None
            allowed_n = max(bounds.normwise * nt, bounds.floor * math.sqrt(n))
            allowed_e = bounds.elementwise * s + bounds.floor
            mc = mc_at_most(allowed_e)
        # Slices: no element error above every slice's floor means no slice
        # can fail (one cached max, usually already known); else look closer.
        unit = bounds.floor + KAPPA * bounds.eps * s
        if nc <= allowed_n and mc <= allowed_e and (mc_at_most(unit) <= unit or slices_ok(d, t, bounds, s, nc, scratch)):
            ratio = max(nc / allowed_n, mc / allowed_e)
            rel = nc / nt if nt else nc
            return Verdict(
                ok=True,
                ratio=ratio,
                error=rel,
                allowed=allowed_n / nt if nt else allowed_n,
                rule="normwise relative",
            )
    if noise_floor is not None:
        bounds = replace(bounds, floor=max(bounds.floor, noise_floor()))
    return _judge_slow(c, r, t, d, bounds, tolerance, user_defaults)


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


def _judge_slow(
    c: torch.Tensor,
    r: torch.Tensor,
    t: torch.Tensor,
    d: torch.Tensor,
    bounds: Bounds,
    tolerance: Tolerance,
    user_defaults: tuple[float, float],
) -> Verdict:
    """Masks, notes and the worst element: only for failures and non-finite values."""
    import torch

    n = t.numel()
    notes: list[str] = []
    ft, fc, fr = torch.isfinite(t), torch.isfinite(c), torch.isfinite(r)
    rr = r.to(t.dtype)
    cc = c.to(t.dtype)

    # Where the truth is non-finite, accept what the truth or the reference does.
    def same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a == b) | (torch.isnan(a) & torch.isnan(b))

    # A nan truth means the reference's formula breaks down even in float64
    # (e.g. inf/inf): any candidate value is accepted there, a finite one noted.
    nan_truth = torch.isnan(t)
    bad_truth = ~ft & ~nan_truth & ~(same(cc, t) | same(cc, rr))
    rescued = nan_truth & fc
    bad_nonfinite = ft & ~fc & fr
    # Both non-finite where the truth is finite (both overflow, say): a
    # limitation they share, as long as the candidate fails the same way; a
    # nan where the reference has inf, or an inf of the other sign, is not.
    both = ft & ~fc & ~fr
    unlike = both & ~same(cc, rr)
    shared = both & ~unlike
    stabler = ft & fc & ~fr
    if bool(shared.any()):
        notes.append(
            f"candidate and reference are both non-finite at {int(shared.sum())} of {n} "
            "elements where the float64 truth is finite"
        )
    if bool(rescued.any()):
        notes.append(
            f"candidate stabler than reference: finite at {int(rescued.sum())} of {n} "
            "elements where the reference gives nan even in float64"
        )
    if bool(stabler.any()):
        notes.append(
            f"candidate stabler than reference: finite at {int(stabler.sum())} of {n} "
            "elements where the reference is not"
        )
    for mask, kind, text in (
        (bad_nonfinite, "non-finite", "non-finite where the reference is finite"),
        (unlike, "truth-non-finite", "non-finite unlike the reference where the truth is finite"),
        (bad_truth, "truth-non-finite", "unlike both truth and reference where the truth is infinite"),
    ):
        if bool(mask.any()):
            flat = int(mask.reshape(-1).to(torch.uint8).argmax())
            mismatch = Mismatch(
                kind,
                f"candidate is {text}",
                int(mask.sum()),
                n,
                unravel(flat, tuple(t.shape)),
                _scalar(c.reshape(-1)[flat]),
                _scalar(r.reshape(-1)[flat]),
                _scalar(t.reshape(-1)[flat]),
                math.inf,
                0.0,
            )
            return Verdict(ok=False, ratio=math.inf, error=math.inf, mismatch=mismatch, notes=notes)

    m = ft & fc
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    dm = torch.where(m, d, zero)
    err = dm.abs()
    if tolerance.user:
        atol, rtol = _user_tolerance(tolerance, user_defaults)
        verdict = _judge_user(torch.where(m, c, 0), torch.where(m, r, 0), torch.where(m, t, zero), dm, atol, rtol)
        verdict.notes = notes + verdict.notes
        return verdict

    tm = torch.where(m, t, zero)
    rerr = torch.where(m & fr, rr - t, zero).abs()
    count = max(int(m.sum()), 1)
    nt, nc, nr = _scaled_norm(tm), _scaled_norm(dm), _scaled_norm(rerr)
    reference_off = None
    if nr > SUSPECT * nt:
        # A reference this far from its own float64 run is not rounding: a
        # random op drawing differently per dtype, a reference that is not
        # dtype-generic, or one that breaks down at this scale. Its error is
        # no yardstick then (it would excuse anything).
        reference_off = nr / nt if nt else math.inf
        rerr = torch.zeros_like(rerr)
        nr = 0.0
    s = nt / math.sqrt(count)
    allowed_n = max(bounds.normwise * nt, KAPPA * nr, bounds.floor * math.sqrt(count))
    t_abs = tm.abs()
    bound_e = torch.maximum(bounds.elementwise * (t_abs + s), KAPPA * rerr) + bounds.floor
    exceed_e = (err > bound_e) & m
    normwise_ok = nc <= allowed_n
    rel = nc / nt if nt else nc
    rel_allowed = allowed_n / nt if nt else allowed_n
    bad_slice = worst_slice(dm, tm, rerr, bounds, s)
    if normwise_ok and not bool(exceed_e.any()) and bad_slice is None:
        ratio = max(nc / allowed_n, float((err / bound_e).max()))
        return Verdict(
            ok=True, ratio=ratio, error=rel, allowed=rel_allowed, rule="normwise relative",
            notes=notes, reference_off=reference_off,
        )  # fmt: skip

    normwise_text = f"normwise relative error {rel:.3g} vs allowed {rel_allowed:.3g}"
    if bool(exceed_e.any()):
        bound, exceed = bound_e, exceed_e
        criterion = f"elementwise bound exceeded ({normwise_text})"
    elif normwise_ok and bad_slice is not None:
        # One slice (a row, a column) is off far beyond its own size while
        # the tensor as a whole hides it: show the elements of that slice
        # that exceed the normwise tolerance applied per element.
        dim, i, slice_rel, slice_allowed = bad_slice
        in_slice = torch.zeros(t.shape, dtype=torch.bool, device=t.device)
        in_slice.select(dim, i).fill_(True)
        s_slice = float(slice_norms(tm, dim)[i]) / math.sqrt(max(n // t.shape[dim], 1))
        bound = torch.maximum(bounds.normwise * (t_abs + s_slice), KAPPA * rerr) + bounds.floor
        exceed = (err > bound) & m & in_slice
        where = "[" + ", ".join([":"] * dim + [str(i)] + [":"] * (t.ndim - dim - 1)) + "]"
        criterion = (
            f"slice {where} has normwise relative error {slice_rel:.3g} vs allowed {slice_allowed:.3g} "
            f"(the whole tensor: {rel:.3g} vs {rel_allowed:.3g})"
        )
        err = torch.where(in_slice, err, torch.zeros((), dtype=err.dtype, device=err.device))
    else:
        # Only the norm failed (a uniform loss of precision): count and show
        # the elements that exceed the normwise tolerance applied per element.
        bound = torch.maximum(bounds.normwise * (t_abs + s), KAPPA * rerr) + bounds.floor
        exceed = (err > bound) & m
        criterion = f"{normwise_text}: precision lost across the tensor"
    ratio_t = torch.where(m, err / bound, torch.zeros((), dtype=err.dtype, device=err.device))
    cnt, index, cv, rv, tv, e, a = _worst(ratio_t, exceed, c, r, t, err, bound)
    mismatch = Mismatch("values", criterion, cnt, n, index, cv, rv, tv, e, a)
    return Verdict(
        ok=False,
        ratio=max(nc / allowed_n, e / a if a else math.inf),
        error=rel,
        allowed=rel_allowed,
        rule="normwise relative",
        mismatch=mismatch,
        notes=notes,
        reference_off=reference_off,
    )
