"""Summing the rows of a matrix: a Python loop of slices, of unbind, or one op.

The guide's point: ``x[i]`` is an op with its own overhead, so a loop that
slices one row at a time pays it ``rows`` times. ``torch.unbind`` makes all
the row views in one call (cheaper, still a loop of additions), and
``torch.sum(x, dim=0)`` does the whole reduction in one kernel.

Each function reduces dimension 0 of any tensor with at least one dimension
and keeps the input's device and dtype. The loops accumulate in the input's
dtype, like the guide's; ``torch.sum`` may accumulate more precisely, so the
results agree within rounding, not bitwise.

Example::

    >>> import torch
    >>> x = torch.ones(500, 10)
    >>> bool((row_sum_slicing(x) == row_sum_torch(x)).all())
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ._registry import ALL_DTYPES, BASE_DTYPES, Builder, Claim, Pair

if TYPE_CHECKING:
    from pytest_effective_torch import Maker

__all__ = ["CLAIMS", "PAIRS", "row_sum_slicing", "row_sum_torch", "row_sum_unbind"]


def row_sum_slicing(x: torch.Tensor) -> torch.Tensor:
    """Add the rows one slice at a time (the guide's slow loop)."""
    total = x.new_zeros(x.shape[1:])
    for i in range(x.shape[0]):
        total += x[i]
    return total


def row_sum_unbind(x: torch.Tensor) -> torch.Tensor:
    """Split into rows with one ``torch.unbind`` call, then add them in a loop."""
    total = x.new_zeros(x.shape[1:])
    for row in torch.unbind(x):
        total += row
    return total


def row_sum_torch(x: torch.Tensor) -> torch.Tensor:
    """One reduction op: ``torch.sum(x, dim=0)``."""
    return torch.sum(x, dim=0)


def rows(n: int, width: int) -> Builder:
    """A builder for an ``[n, width]`` matrix."""

    def build(make: Maker) -> tuple[torch.Tensor]:
        return (make(n, width),)

    build.__name__ = build.__qualname__ = f"rows_{n}x{width}"
    return build


CHECK = rows(64, 10)
SMALL = rows(6, 3)
#: The guide's size.
LARGE = rows(500, 10)


def _pair(name: str, candidate: Callable[..., Any], **kwargs: Any) -> Pair:
    return Pair(
        name=f"row_sum.{name}",
        topic="row_sum",
        reference=row_sum_slicing,
        candidate=candidate,
        inputs=CHECK,
        small_inputs=SMALL,
        large_inputs=LARGE,
        compile_inputs=CHECK,
        **kwargs,
    )


PAIRS: tuple[Pair, ...] = (
    # In half precision the loops' own rounding (one rounding per row added)
    # uses most of the tolerance against the float64 truth, which says
    # nothing about unbind versus slicing (bitwise equal anyway); torch.sum
    # accumulates in float32 and is checked in every dtype.
    _pair("unbind", row_sum_unbind, exact=True, dtypes=BASE_DTYPES),
    _pair("sum", row_sum_torch, dtypes=ALL_DTYPES),
)

CLAIMS: tuple[Claim, ...] = (
    Claim("row_sum.unbind", "equal", "unbind gives the same sums as slicing"),
    Claim("row_sum.sum", "equal", "torch.sum gives the same sums, within rounding"),
    Claim(
        "row_sum.unbind",
        "faster",
        "unbind about 30% faster than slicing",
        inputs=LARGE,
        min_speedup=1.05,
        dtype="float32",
        note="a 2-core CPU measured 1.15-1.41x, an H200 1.41x",
    ),
    Claim(
        "row_sum.sum",
        "faster",
        "torch.sum about 100x faster than the loop",
        inputs=LARGE,
        min_speedup=50.0,
        dtype="float32",
        note="a 2-core CPU measured about 400x, an H200 about 750x",
    ),
)
