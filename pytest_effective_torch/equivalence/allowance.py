"""The slow path of the tolerance model: non-finite values, and the condition-aware allowance.

Only comparisons that the tight rules of :mod:`.tolerance` do not accept
come here. With ``d = c - t`` over the elements where truth and candidate
are finite, ``s`` the spread of the truth under perturbed inputs
(:mod:`.conditioning`) and ``U`` the gradient noise floor, the candidate
passes when

* every element: ``|d_i| <= max(eps**(1/2) * |t_i| + f * rms(t),  4 * |r_i - t_i|,  C * (s_i + rms(s)),  U)``
* normwise:      ``||d|| <= max(eps**(2/3) * ||t||,  4 * ||r - t||,  C * ||s||)``,
  unless the truth is near zero: ``U * sqrt(n) >= eps**(2/3) * ||t||``
  (a gradient below the rounding noise of its own backward pass), where
  passing every element's rule is enough;
* every slice: the slice rule of :mod:`.slices` with the same terms.

with ``C = min(32, eps**(-1/3))`` (:data:`.bounds.CONDITIONING`). The
spread is computed only when the rules without it fail. Non-finite values
are judged first (see :mod:`.tolerance`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from .bounds import (
    KAPPA,
    SUSPECT,
    Bounds,
    Mismatch,
    Tolerance,
    Verdict,
    _judge_user,
    _scalar,
    _scaled_norm,
    _user_tolerance,
    _worst,
    unravel,
)
from .slices import slice_norms, worst_slice

if TYPE_CHECKING:
    import torch


def _non_finite(
    c: torch.Tensor, r: torch.Tensor, t: torch.Tensor, notes: list[str]
) -> tuple[Verdict | None, torch.Tensor]:
    """A failing verdict for non-finite values (or None), and the mask of elements to judge by value."""
    import torch

    n = t.numel()
    ft, fc, fr = torch.isfinite(t), torch.isfinite(c), torch.isfinite(r)
    rr, cc = r.to(t.dtype), c.to(t.dtype)

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
            return Verdict(ok=False, ratio=math.inf, error=math.inf, mismatch=mismatch, notes=notes), ft & fc
    return None, ft & fc


def judge_slow(
    c: torch.Tensor,
    r: torch.Tensor,
    t: torch.Tensor,
    d: torch.Tensor,
    bounds: Bounds,
    tolerance: Tolerance,
    user_defaults: tuple[float, float],
    noise_floor: Callable[[float], tuple[float, bool]] | None = None,
    spread: Callable[[], torch.Tensor | None] | None = None,
) -> Verdict:
    """Masks, notes, the condition-aware allowance and the worst element."""
    import torch

    n = t.numel()
    notes: list[str] = []
    failed, m = _non_finite(c, r, t, notes)
    if failed is not None:
        return failed
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    dm = torch.where(m, d, zero)
    err = dm.abs()
    if tolerance.user:
        atol, rtol = _user_tolerance(tolerance, user_defaults)
        verdict = _judge_user(torch.where(m, c, 0), torch.where(m, r, 0), torch.where(m, t, zero), dm, atol, rtol)
        verdict.notes = notes + verdict.notes
        return verdict

    tm = torch.where(m, t, zero)
    rerr = torch.where(m & torch.isfinite(r), r.to(t.dtype) - t, zero).abs()
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
    floor_u, near_zero = noise_floor(nt) if noise_floor is not None else (0.0, False)
    t_abs = tm.abs()
    yard = KAPPA * rerr
    tight = bounds.elementwise * t_abs + (bounds.element_floor * s + bounds.floor)
    bound_e = torch.maximum(torch.maximum(tight, yard), torch.full((), floor_u, dtype=tight.dtype))
    allowed_n = max(bounds.normwise * nt, KAPPA * nr, bounds.floor * math.sqrt(count))
    sized = False  # whether the spread of the perturbed truth is in the allowance

    def outcome() -> tuple[bool, bool, torch.Tensor, tuple[int, int, float, float] | None]:
        exceed = (err > bound_e) & m
        elements_ok = not bool(exceed.any())
        normwise_ok = nc <= allowed_n or (elements_ok and near_zero)
        bad_slice = worst_slice(dm, tm, yard, bounds, s, floor_u) if elements_ok and normwise_ok else None
        return elements_ok, normwise_ok, exceed, bad_slice

    elements_ok, normwise_ok, exceed_e, bad_slice = outcome()
    if not (elements_ok and normwise_ok and bad_slice is None) and spread is not None:
        sp = spread()
        if sp is not None:
            sized = True
            sp = torch.where(m, sp.to(device=t.device, dtype=err.dtype), torch.zeros((), dtype=err.dtype, device=err.device))
            # One draw of signs can leave an element's spread small by chance
            # while its error is a row-wide constant (a rounded mean): each
            # element gets the tensor's rms spread on top of its own.
            spread_term = bounds.conditioning * (sp + _scaled_norm(sp) / math.sqrt(count))
            yard = torch.maximum(yard, spread_term)
            bound_e = torch.maximum(bound_e, spread_term)
            allowed_n = max(allowed_n, bounds.conditioning * _scaled_norm(sp))
            elements_ok, normwise_ok, exceed_e, bad_slice = outcome()
    rel = nc / nt if nt else nc
    rel_allowed = allowed_n / nt if nt else allowed_n
    if elements_ok and normwise_ok and bad_slice is None:
        ratio = max(min(nc / allowed_n, 1.0) if allowed_n else 0.0, float((err / bound_e).max()))
        return Verdict(
            ok=True, ratio=ratio, error=rel, allowed=rel_allowed, rule="normwise relative",
            notes=notes, reference_off=reference_off,
        )  # fmt: skip

    normwise_text = f"normwise relative error {rel:.3g} vs allowed {rel_allowed:.3g}"
    conditioned = "; the allowance includes what rounding the inputs moves the truth" if sized else ""
    if not elements_ok:
        bound, exceed = bound_e, exceed_e
        criterion = f"elementwise bound exceeded ({normwise_text}{conditioned})"
    elif normwise_ok and bad_slice is not None:
        # One slice (a row, a column) is off far beyond its own size while
        # the tensor as a whole hides it: show the elements of that slice
        # that exceed the normwise tolerance applied per element.
        dim, i, slice_rel, slice_allowed = bad_slice
        in_slice = torch.zeros(t.shape, dtype=torch.bool, device=t.device)
        in_slice.select(dim, i).fill_(True)
        s_slice = float(slice_norms(tm, dim)[i]) / math.sqrt(max(n // t.shape[dim], 1))
        bound = torch.maximum(bounds.normwise * (t_abs + s_slice), yard) + bounds.floor + floor_u
        exceed = (err > bound) & m & in_slice
        where = "[" + ", ".join([":"] * dim + [str(i)] + [":"] * (t.ndim - dim - 1)) + "]"
        criterion = (
            f"slice {where} has normwise relative error {slice_rel:.3g} vs allowed {slice_allowed:.3g} "
            f"(the whole tensor: {rel:.3g} vs {rel_allowed:.3g}{conditioned})"
        )
        err = torch.where(in_slice, err, torch.zeros((), dtype=err.dtype, device=err.device))
    else:
        # Only the norm failed (a uniform loss of precision): count and show
        # the elements that exceed the normwise tolerance applied per element.
        bound = torch.maximum(bounds.normwise * (t_abs + s), yard) + bounds.floor + floor_u
        exceed = (err > bound) & m
        criterion = f"{normwise_text}: precision lost across the tensor{conditioned}"
    ratio_t = torch.where(m, err / bound, torch.zeros((), dtype=err.dtype, device=err.device))
    cnt, index, cv, rv, tv, e, a = _worst(ratio_t, exceed, c, r, t, err, bound)
    mismatch = Mismatch("values", criterion, cnt, n, index, cv, rv, tv, e, a)
    return Verdict(
        ok=False,
        ratio=max(nc / allowed_n if allowed_n else math.inf, e / a if a else math.inf),
        error=rel,
        allowed=rel_allowed,
        rule="normwise relative",
        mismatch=mismatch,
        notes=notes,
        reference_off=reference_off,
    )
