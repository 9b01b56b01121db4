"""The slice rule: every row and column of a tensor judged on its own scale.

For tensors of two or more dimensions (up to :data:`SLICE_RULE_MAX_ELEMENTS`
elements), every slice along the first and along the last dimension must
satisfy ``||c - t||_s <= max(eps**(2/3) * ||t||_s, 4 * ||r - t||_s,
4 * eps * rms(t) * sqrt(n_s))`` (see :mod:`.tolerance` for why). The norms
are computed from squares in reused float64 buffers (:class:`Scratch`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .bounds import KAPPA

if TYPE_CHECKING:
    import torch

    from .bounds import Bounds


class Scratch:
    """Reused float64 work buffers: fresh large allocations cost page faults."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[object, ...], torch.Tensor] = {}
        #: the last view handed out per key (most calls ask for the same shape again)
        self._views: dict[tuple[object, ...], torch.Tensor] = {}

    def _view(self, key: tuple[object, ...], like: torch.Tensor) -> torch.Tensor:
        """A reused buffer under ``key``, viewed as ``like``'s shape, dtype and device."""
        view = self._views.get(key)
        if view is not None and view.shape == like.shape:
            return view
        buf = self._buffers.get(key)
        n = like.numel()
        if buf is None or buf.numel() < n:
            import torch

            buf = torch.empty(n, dtype=like.dtype, device=like.device)
            self._buffers[key] = buf
        view = self._views[key] = buf[:n].view(like.shape)
        return view

    def diff(self, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``c - t`` in t's dtype, written into a reused buffer."""
        out = self._view((t.dtype, t.device), t)
        # (copy, then subtract in place: torch.sub of mixed dtypes into
        # ``out`` would allocate a float64 copy of ``c`` first)
        return out.copy_(c).sub_(t)

    def square(self, x: torch.Tensor, slot: int = 0) -> torch.Tensor:
        """``x * x`` in another reused buffer (``diff`` holds the difference)."""
        import torch

        return torch.mul(x, x, out=self._view(("square", slot, x.dtype, x.device), x))

    def like(self, x: torch.Tensor, slot: int = 0) -> torch.Tensor:
        """A reused buffer shaped like ``x`` (shared with :meth:`square`'s slot)."""
        return self._view(("square", slot, x.dtype, x.device), x)

    def release(self) -> None:
        """Drop every buffer (a check keeps them across its trials, not after)."""
        self._buffers.clear()
        self._views.clear()


#: Tensors above this many elements skip the slice rule: its passes would cost
#: a large memory-bound check about a quarter more (bench/bench_equivalence.py).
SLICE_RULE_MAX_ELEMENTS = 1 << 20


def slice_dims(t: torch.Tensor) -> list[int]:
    """Dimensions whose slices the slice rule checks: the first and the last, if they split the tensor."""
    if t.ndim < 2 or t.numel() > SLICE_RULE_MAX_ELEMENTS:
        return []
    return [dim for dim in dict.fromkeys((0, t.ndim - 1)) if t.shape[dim] > 1]


def slice_norms(x: torch.Tensor, dim: int, scratch: Scratch | None = None) -> torch.Tensor:
    """2-norm of every slice ``x.select(dim, i)``, as a vector over ``i`` (dim is 0 or the last)."""
    return slice_sums((scratch or Scratch()).square(x.abs() if x.is_complex() else x), dim).sqrt_()


def slice_sums(squares: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-slice sums of a contiguous tensor of squares: one vectorized pass.

    (``vector_norm`` over the leading dimensions takes a strided path on the
    CPU that costs 10x a plain pass.)
    """
    size = squares.shape[dim]
    if dim == 0:
        return squares.reshape(size, -1).sum(1)
    return squares.reshape(-1, size).sum(0)


def slice_allowed(
    ns_t: torch.Tensor, ns_y: torch.Tensor | None, bounds: Bounds, rms: float, slice_size: int, extra: float = 0.0
) -> torch.Tensor:
    """What each slice's ||c - t|| may be (see the module docstring).

    ``ns_y`` are the slice norms of the yardstick (4x the reference's error,
    or the larger of that and the condition-aware spread term); ``extra`` an
    absolute floor per element (the gradient noise floor).
    """
    import torch

    floor = (bounds.floor + KAPPA * bounds.eps * rms + extra) * math.sqrt(slice_size)
    allowed = (bounds.normwise * ns_t).clamp_min(floor)
    if ns_y is not None:
        allowed = torch.maximum(allowed, ns_y)
    return allowed


def slices_ok(
    d: torch.Tensor, t: torch.Tensor, bounds: Bounds, rms: float, nc: float, scratch: Scratch, extra: float = 0.0
) -> bool:
    """Fast path of the slice rule (no reference term, so stricter than the slow path).

    ``extra`` is the absolute floor per element that the slow path grants
    too (the gradient noise floor).
    """
    unit = bounds.floor + KAPPA * bounds.eps * rms + extra
    n = t.numel()
    if all(nc <= unit * math.sqrt(n // t.shape[dim]) for dim in slice_dims(t)):
        return True  # under every slice's floor
    # (all(), not max(): a nan, from a zero slice whose floor underflowed, must fail)
    return all(float(v) <= bounds.normwise**2 for v in slice_ratio(d, t, unit, bounds, scratch))


def slice_ratio(
    d: torch.Tensor, t: torch.Tensor, unit: float | torch.Tensor, bounds: Bounds, scratch: Scratch
) -> list[torch.Tensor]:
    """The fast slice rule as 0-dim tensors, to ride in the caller's one transfer.

    Per checked dimension, ``max_s ||d||_s**2 / max(||t||_s**2, unit**2 n_s /
    eps**(4/3))``: at most ``bounds.normwise**2`` (``eps**(4/3)``) exactly
    when :func:`slices_ok` passes.
    ``unit`` (``floor + 4 eps rms(t)``) may be a 0-dim tensor, so that
    nothing waits for the host.
    """
    dims = slice_dims(t)
    if not dims:
        return []
    n = t.numel()
    squares_t = scratch.square(t.abs() if t.is_complex() else t)
    squares_d = scratch.square(d.abs() if d.is_complex() else d, slot=1)
    # max(nw**2 T_s, u**2 n_s) = nw**2 max(T_s, u**2 n_s / nw**2): one op less per dimension
    floor_sq = unit * unit / bounds.normwise**2
    out = []
    for dim in dims:
        # (a sum over the other dimensions of a contiguous tensor is one
        # vectorized pass, as slice_sums' reshape gives, without the reshape)
        others = tuple(i for i in range(t.ndim) if i != dim)
        allowed = squares_t.sum(others).clamp_min_(floor_sq * (n // t.shape[dim]))
        out.append(squares_d.sum(others).div_(allowed).amax())
    return out


def worst_slice(
    dm: torch.Tensor, tm: torch.Tensor, yard: torch.Tensor, bounds: Bounds, rms: float, extra: float = 0.0
) -> tuple[int, int, float, float] | None:
    """The slice that breaks the slice rule the most: (dim, index, relative error, allowed), or None.

    ``yard``: per element, what the candidate's error may be measured
    against besides the truth's size (4x the reference's error, and the
    condition-aware spread term when it was computed).
    """
    worst: tuple[float, int, int, float, float] | None = None
    n = tm.numel()
    for dim in slice_dims(tm):
        size = n // tm.shape[dim]
        ns_t = slice_norms(tm.abs() if tm.is_complex() else tm, dim)
        ns_d = slice_norms(dm, dim)
        allowed = slice_allowed(ns_t, slice_norms(yard, dim), bounds, rms, size, extra)
        ratio = ns_d / allowed
        i = int(ratio.argmax())
        value = float(ratio[i])
        if value > 1 and (worst is None or value > worst[0]):
            nt_i = float(ns_t[i])
            rel = float(ns_d[i]) / nt_i if nt_i else math.inf
            worst = (value, dim, i, rel, float(allowed[i]) / nt_i if nt_i else float(allowed[i]))
    return None if worst is None else worst[1:]
