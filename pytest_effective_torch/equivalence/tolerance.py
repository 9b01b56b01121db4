"""How far a candidate may be from the float64 truth: the tolerance model.

For one floating output (or gradient) ``c`` of the candidate, ``r`` of the
reference (both in the working dtype) and ``t`` of the reference evaluated on
float64 copies of the inputs (the *truth*), with ``eps`` the machine epsilon
of the working dtype (or of the output's dtype, if coarser), the tight rules
(the fast path) are:

* normwise:    ||c - t||   <= eps**(2/3) * ||t||
* elementwise: |c_i - t_i| <= eps**(1/2) * |t_i| + f * rms(t),  f = min(32 eps, eps**(1/2))
* slices:      ||c - t||_s <= max(eps**(2/3) * ||t||_s, 4 * eps * rms(t) * sqrt(n_s))
  for every slice s along the first and along the last dimension (rows and
  columns of a matrix, n_s elements each), for tensors of 2 or more
  dimensions up to :data:`SLICE_RULE_MAX_ELEMENTS` elements.

(2-norms; ``rms(t) = ||t|| / sqrt(n)``; a floor of the dtype's smallest
normal number keeps exact zeros from demanding exact zeros.) A comparison
they accept passes at the cost of a few reductions. One they do not accept
goes to the condition-aware slow path (:mod:`.allowance`), which widens
every rule by what the candidate may legitimately be off: 4x the
reference's own error, 4x the spread of the truth when the inputs (and the
cotangent) are perturbed by one unit roundoff of the working dtype
(:mod:`.conditioning`), and for gradients a noise floor ``U``.

Why this shape. The normwise rule is the tight one: it sits between rounding
error and precision bugs (measured in float32: correct rewrites <= 1.4e-6,
a float16-inside bug 2.1e-3; ``eps**(2/3)`` is 2.4e-5), and it is purely
relative, so returning zeros or the input never passes however small the
outputs are. The elementwise rule demands relative accuracy of every element
(``log(1 + x)`` for ``log1p`` is 4.6% off at 1e-6) down to a floor near the
rounding noise of the tensor's scale: an element of a long sum may lose all
its digits to cancellation (a float32 matmul's worst element sits 13-17
``eps * rms(t)`` from the truth), and a correct float32 ``gelu`` is 17% off at
x = -5, far below the tensor's rms. The slice rule catches a wrong row or
column that the tensor-wide norm averages away.

Non-finite values: where the truth is finite the candidate must be finite
unless the reference is non-finite there too (then both share the
limitation, which is noted, provided the candidate has the same non-finite
value: nan with nan, inf of the same sign); where only the reference is
non-finite the candidate is *stabler* (noted). Where the truth is non-finite
the candidate must match the truth or the reference.

User-given ``atol``/``rtol`` replace all rules by torch.testing.assert_close's
``|c_i - t_i| <= atol + rtol * |t_i|``, against the truth.

The passing path is three reductions (a few more when the largest error must
be found or the relative rule applied) whose results reach the host as a few
scalars; per-element work happens only on failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from .allowance import judge_slow
from .bounds import (
    CONDITIONING,
    ELEMENT_FLOOR,
    GRADIENT_NOISE,
    KAPPA,
    SUSPECT,
    Bounds,
    Mismatch,
    Tolerance,
    Verdict,
    _judge_user,
    _norm,
    _user_tolerance,
    assert_close_defaults,
    bounds_for,
    unravel,
)
from .slices import SLICE_RULE_MAX_ELEMENTS, Scratch, slice_ratio, slices_ok

if TYPE_CHECKING:
    import torch

__all__ = [
    "CONDITIONING", "ELEMENT_FLOOR", "GRADIENT_NOISE", "KAPPA", "SLICE_RULE_MAX_ELEMENTS", "SUSPECT",
    "Bounds", "Mismatch", "Tolerance", "Verdict", "assert_close_defaults", "bounds_for", "judge", "unravel",
]  # fmt: skip


#: Large tensors are measured in chunks of this many elements, in two small
#: reused buffers: full-size float64 work buffers cost fresh pages every check.
_CHUNK = 1 << 20


def _relative_ratio(d: torch.Tensor, t: torch.Tensor, relative: float, floor: float, scratch: Scratch) -> float:
    """max_i |d_i| / (relative * |t_i| + floor), in reused buffers."""
    import torch

    if d.is_complex():
        return float((d.abs() / (relative * t.abs() + floor)).max())
    flat_d, flat_t = d.reshape(-1), t.reshape(-1)
    worst = []
    for start in range(0, flat_d.numel(), _CHUNK):
        part_d, part_t = flat_d[start : start + _CHUNK], flat_t[start : start + _CHUNK]
        allowed = torch.abs(part_t, out=scratch.like(part_t, 0)).mul_(relative).add_(floor)
        worst.append(torch.abs(part_d, out=scratch.like(part_d, 1)).div_(allowed).max())
    return float(torch.stack(worst).max())


def judge(
    c: torch.Tensor,
    r: torch.Tensor | Callable[[], torch.Tensor],
    t: torch.Tensor,
    *,
    bounds: Bounds,
    tolerance: Tolerance,
    user_defaults: tuple[float, float],
    scratch: Scratch | None = None,
    noise_floor: Callable[[float], tuple[float, bool]] | None = None,
    spread: Callable[[], torch.Tensor | None] | None = None,
) -> Verdict:
    """Judge candidate ``c`` against truth ``t``, with reference ``r`` as a yardstick.

    ``noise_floor`` (gradients only) returns an absolute error every element
    may have, and ``spread`` the truth's spread under perturbed inputs; both
    are asked for only when the tight rules fail.

    ``c`` and ``r`` have the same shape, dtype and device (checked before);
    ``t`` has their shape and a float64/complex128 dtype.

    >>> import torch
    >>> t = torch.tensor([1e-3, 1.0, 2.0], dtype=torch.float64)
    >>> args = dict(bounds=bounds_for(torch.float32), tolerance=Tolerance(), user_defaults=(1e-5, 1.3e-6))
    >>> judge(t.float(), t.float(), t, **args).ok
    True
    >>> off = t.float() * torch.tensor([1.05, 1.0, 1.0])  # the tiny element 5% off
    >>> judge(off, t.float(), t, **args).mismatch.index
    (0,)
    """
    import torch

    deferred = callable(r)  # a reference computed only if the slow path needs it
    if t.device != c.device:  # truth computed on the CPU (device without float64)
        c = c.to(t.device)
        r = r if deferred else r.to(t.device)
    n = t.numel()
    if n == 0:
        return Verdict(ok=True)
    scratch = scratch or Scratch()
    d = scratch.diff(c, t)

    # Fast path: three reductions and one transfer of three scalars. Finite
    # norms prove every element of c, r and t finite, so no masks are needed.
    vector_norm = torch.linalg.vector_norm
    n_t = vector_norm(t)
    n_c = vector_norm(d)
    # (only its finiteness is used: a finite half-precision reference must
    # not overflow its own norm, so those are summed in float32)
    n_r_own = n_t if deferred else vector_norm(r.float() if r.dtype in (torch.float16, torch.bfloat16) else r)
    norms = [n_t, n_c, n_r_own if deferred or t.device.type == "cpu" else n_r_own.double()]
    # (a gradient's elements may cancel down to its rms, so the strict pass
    # would only fail there: gradients go straight to the rules one by one)
    strict_first = bounds.element_floor < bounds.elementwise
    small = n <= SLICE_RULE_MAX_ELEMENTS and not d.is_complex() and not tolerance.user
    fused = strict_first and small
    # Small gradients: the slice rule's ratios ride in the same transfer.
    fused_slices = not strict_first and small
    if small:
        # The unit ``floor + 4 eps rms(t)`` of the strict pass and of the slice
        # rule, from ||t||: on the CPU a number (reading it costs nothing and
        # saves the small tensor ops), elsewhere a 0-dim tensor (no round trip).
        per_norm = KAPPA * bounds.eps / math.sqrt(n)
        unit_t = float(n_t) * per_norm + bounds.floor if t.device.type == "cpu" else n_t * per_norm + bounds.floor
    if fused:
        # Small tensors: the strict per-element ratio (below) rides along in
        # the same transfer, as d / (|t| + unit / eps**(2/3)), i.e. times
        # eps**(2/3), so that one op builds the denominator.
        allowed = torch.abs(t, out=scratch.like(t, 0)).add_(unit_t / bounds.normwise)
        norms += torch.aminmax(torch.div(d, allowed, out=scratch.like(d, 1)))
    slice_at = len(norms)
    if fused_slices:
        norms += slice_ratio(d, t, unit_t, bounds, scratch)
    # (one transfer where reading a scalar means a device round trip; on the
    # CPU reading each costs less than stacking them)
    values = [float(v) for v in norms] if t.device.type == "cpu" else torch.stack(norms).tolist()
    nt, nc = values[0], values[1]
    all_finite = all(math.isfinite(v) for v in values[:3])
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
        floor_e = bounds.element_floor * s + bounds.floor
        if nc <= allowed_n:
            # One pass usually settles both the elementwise and the slice rule:
            # |d_i| <= (eps**(2/3) |t_i| + unit) / 2 for every element gives
            # every slice ||d||_s <= max(eps**(2/3) ||t||_s, unit sqrt(n_s)), and
            # it is stricter than the elementwise rule. Only when it fails are
            # the two rules applied one by one.
            unit = bounds.floor + KAPPA * bounds.eps * s
            looser = max(bounds.normwise / bounds.elementwise, unit / floor_e)
            if fused:
                strict = 2 * max(-values[3], values[4]) / bounds.normwise
            elif not strict_first:
                strict = math.inf
            else:
                mc = mc_at_most(unit / 2)
                strict = 2 * mc / unit if mc <= unit / 2 else 2 * _relative_ratio(d, t, bounds.normwise, unit, scratch)
            if strict <= 1:
                slices_pass, ratio_e = True, strict * looser / 2
            else:
                mc = mc_at_most(floor_e / 4)
                ratio_e = mc / floor_e if mc <= floor_e / 4 else _relative_ratio(d, t, bounds.elementwise, floor_e, scratch)
                # (all(), not max(): a nan, from a zero slice whose floor
                # underflowed, must fail here, and max() may skip it)
                fast_slices = all(v <= bounds.normwise**2 for v in values[slice_at:]) if fused_slices else None
                slices_pass = ratio_e <= 1 and (
                    (fast_slices if fast_slices is not None else slices_ok(d, t, bounds, s, nc, scratch))
                    # A gradient's slice that is near zero (a saturated row of a
                    # softmax) may be the backward pass's rounding noise: the
                    # slow path's noise floor, without its reference term.
                    or (noise_floor is not None and slices_ok(d, t, bounds, s, nc, scratch, noise_floor(nt)[0]))
                )
            if ratio_e <= 1 and slices_pass:
                rel = nc / nt if nt else nc
                return Verdict(
                    ok=True,
                    ratio=max(nc / allowed_n, ratio_e),
                    error=rel,
                    allowed=allowed_n / nt if nt else allowed_n,
                    rule="normwise relative",
                )
    if deferred:
        r = r().to(t.device)
    return judge_slow(c, r, t, d, bounds, tolerance, user_defaults, noise_floor, spread)
