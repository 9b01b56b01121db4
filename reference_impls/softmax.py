"""Softmax over a given dimension: naive, stable, and torch's own.

The naive version exponentiates the logits as they are. ``exp`` overflows
float32 above about 88.7 (float64 above about 709.8), so at logits like
``[1000, 0]`` it computes ``inf / inf`` and returns ``nan`` for the largest
entry. Subtracting each row's maximum first leaves the result unchanged
mathematically and keeps every exponent at or below zero.

The guide's stable version calls ``torch.reduce_max``, which does not exist
in PyTorch (it is TensorFlow's name); ``amax`` over the chosen dimension is
used here. The guide also reduces over every element; these functions take
``dim`` and work on batches.

Example::

    >>> import torch
    >>> softmax_naive(torch.tensor([1000.0, 0.0]))
    tensor([nan, 0.])
    >>> softmax_stable(torch.tensor([1000.0, 0.0]))
    tensor([1., 0.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ._registry import ALL_DTYPES, Builder, Claim, Pair

if TYPE_CHECKING:
    from pytest_effective_torch import Args, Maker

__all__ = [
    "CLAIMS",
    "EDGE_LENGTHS",
    "GUIDE_LOGITS",
    "PAIRS",
    "SWEEP_LENGTHS",
    "guide_logits",
    "logits_by_length",
    "softmax_naive",
    "softmax_stable",
    "softmax_torch",
]


def softmax_naive(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x))``: overflows once a logit passes ``log(dtype max)``."""
    exp = torch.exp(logits)
    return exp / exp.sum(dim, keepdim=True)


def softmax_stable(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shift by the maximum along ``dim`` first, so ``exp`` never overflows.

    The shift cancels in the ratio, so its gradient is zero; detaching it
    saves autograd the work of proving that.
    """
    shifted = logits - logits.amax(dim, keepdim=True).detach()
    exp = torch.exp(shifted)
    return exp / exp.sum(dim, keepdim=True)


def softmax_torch(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``torch.softmax``: one fused, stable kernel."""
    return torch.softmax(logits, dim)


def moderate_logits(*shape: int, dim: int, bound: float = 4.0) -> Builder:
    """A builder: logits in ``[-bound, bound]`` and the ``dim`` keyword.

    The domain is explicit so the equivalence engine keeps it: the naive
    version is only meant to agree where it does not overflow (even float16
    holds ``sum(exp(4))`` over a few thousand entries).
    """

    def build(make: Maker) -> Args:
        from pytest_effective_torch import Args

        return Args(make(*shape, low=-bound, high=bound), dim=dim)

    build.__name__ = build.__qualname__ = f"logits_{'x'.join(map(str, shape))}_dim{dim}"
    return build


#: The guide's hostile example.
GUIDE_LOGITS = (1000.0, 0.0)


def guide_logits(make: Maker) -> tuple[torch.Tensor]:
    """The guide's ``[1000, 0]`` on the bound device and dtype."""
    return (torch.tensor(GUIDE_LOGITS, device=make.device, dtype=make.dtype),)


#: Row lengths of the size sweeps: around multiples of 16 for the check
#: (where a tiled kernel drops or repeats a remainder): ``edge_sizes(16, 64)``,
#: written out so that importing the package does not import the plugin
#: before pytest can rewrite its asserts; powers of 4 for speed.
EDGE_LENGTHS = (1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64)
SWEEP_LENGTHS = (16, 64, 256, 1024, 4096)


def logits_by_length(make: Maker, *, n: int) -> Args:
    """A builder swept over the row length ``n``: 64 rows of moderate logits, ``dim=-1``."""
    from pytest_effective_torch import Args

    return Args(make(64, n, low=-4.0, high=4.0), dim=-1)


CHECK = moderate_logits(4, 16, 8, dim=1)
SMALL = moderate_logits(3, 5, dim=-1)
LARGE = moderate_logits(256, 1024, dim=-1)


def _pair(name: str, candidate: Callable[..., Any], **kwargs: Any) -> Pair:
    return Pair(
        name=f"softmax.{name}",
        topic="softmax",
        reference=softmax_naive,
        candidate=candidate,
        inputs=CHECK,
        small_inputs=SMALL,
        large_inputs=LARGE,
        compile_inputs=CHECK,
        dtypes=ALL_DTYPES,
        **kwargs,
    )


PAIRS: tuple[Pair, ...] = (
    _pair("stable", softmax_stable),
    _pair("torch", softmax_torch),
)

CLAIMS: tuple[Claim, ...] = (
    Claim("softmax.stable", "equal", "shifting by the max changes nothing"),
    Claim("softmax.torch", "equal", "torch.softmax matches on moderate logits"),
    Claim(
        "softmax.stable",
        "equal",
        "the same at every row length, odd ones too",
        inputs=logits_by_length,
        sizes={"n": EDGE_LENGTHS},
    ),
    Claim(
        "softmax.torch",
        "faster",
        "torch.softmax vs naive, forward and backward",
        inputs=logits_by_length,
        sizes={"n": SWEEP_LENGTHS},
        modes=("forward", "backward"),
        dtype="float32",
        note="a size sweep, measured, not asserted: one curve per mode",
    ),
    Claim(
        "softmax.stable",
        "stabler",
        "[1000, 0]: naive nan, stable [1, 0]",
        inputs=guide_logits,
        expected=(1.0, 0.0),
    ),
    Claim(
        "softmax.torch",
        "stabler",
        "torch.softmax is stable too",
        inputs=guide_logits,
        expected=(1.0, 0.0),
    ),
)
