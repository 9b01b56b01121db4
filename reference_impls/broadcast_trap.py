"""The broadcasting trap: adding ``[n, 1]`` and ``[n]`` makes an ``[n, n]``.

With ``a = [[1], [2]]`` and ``b = [1, 2]``, ``a + b`` broadcasts to
``[[2, 3], [3, 4]]``. The intended per-column sum ``torch.sum(a + b, 0)`` is
``[5, 7]``; forgetting the dimension, ``torch.sum(a + b)``, quietly returns
``12``. Naming the reduced dimension keeps the result's shape, and a shape
check catches the mistake at once: the plugin compares shapes exactly, so
``assert_same_as_reference(column_sums_trap, column_sums, ...)`` fails with
a shape mismatch. The pair is registered as a candidate the plugin must
catch, not one that passes.

Example::

    >>> import torch
    >>> a, b = torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 2.0])
    >>> column_sums(a, b), column_sums_trap(a, b)
    (tensor([5., 7.]), tensor(12.))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ._registry import ALL_DTYPES, Claim, Pair

if TYPE_CHECKING:
    from pytest_effective_torch import Maker

__all__ = [
    "CLAIMS",
    "GUIDE_A",
    "GUIDE_B",
    "PAIRS",
    "column_sums",
    "column_sums_trap",
    "guide_inputs",
]


def column_sums(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The intended result: reduce dimension 0 only, ``shape [n]``."""
    return torch.sum(a + b, 0)


def column_sums_trap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The trap: no dimension given, so everything is summed to a scalar."""
    return torch.sum(a + b)


GUIDE_A = ((1.0,), (2.0,))
GUIDE_B = (1.0, 2.0)


def guide_inputs(make: Maker) -> tuple[torch.Tensor, torch.Tensor]:
    """The guide's ``a = [[1], [2]]`` and ``b = [1, 2]`` on the bound device and dtype."""
    kw = {"device": make.device, "dtype": make.dtype}
    return torch.tensor(GUIDE_A, **kw), torch.tensor(GUIDE_B, **kw)


def column_inputs(make: Maker) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``a`` ``[3, 1]`` and ``b`` ``[3]``: the trap's shapes."""
    return make(3, 1), make(3)


PAIRS: tuple[Pair, ...] = (
    Pair(
        name="broadcast_trap.sum_all",
        topic="broadcast_trap",
        reference=column_sums,
        candidate=column_sums_trap,
        inputs=column_inputs,
        small_inputs=column_inputs,
        dtypes=ALL_DTYPES,
        expected_failure=r"candidate shape \(\) vs \(3,\)",
        note="the candidate is wrong on purpose; the check must fail",
    ),
)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "broadcast_trap.sum_all",
        "caught",
        "sum(a + b) is 12, not [5, 7]; shape tells",
    ),
)
