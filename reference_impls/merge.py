"""Merging features of different lengths: tile + concat + Linear, or broadcast.

To combine ``a`` of shape ``[..., T, F1]`` with ``b`` of shape
``[..., 1, F2]``, the common pattern tiles ``b`` along ``T``, concatenates
the features and applies one ``Linear(F1 + F2, out)``
(:class:`ConcatMerge`). Because a linear map of a concatenation is the sum
of linear maps of the parts, the same result comes from two smaller Linears
and a broadcast add (:class:`Merge`, the guide's module): ``b``'s projection
is computed once per ``T``-group instead of ``T`` times, and neither the
tiled copy nor the concatenation is ever stored.

The two are equivalent when ``linear1`` holds the first ``F1`` input columns
of the concat's weight, ``linear2`` the remaining ``F2`` and the bias is
added once: :meth:`Merge.from_concat` does exactly that. For comparing
gradients, :func:`param_map` gives the plugin the concat's gradients in
:class:`Merge`'s names (``assert_same_as_reference(..., param_map=...)``),
and :func:`concat_grads` goes the other way.

Example::

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> concat = ConcatMerge(5, 6, 10, activation=torch.relu)
    >>> merge = Merge.from_concat(concat)
    >>> a, b = torch.rand(5, 3, 5), torch.rand(5, 1, 6)
    >>> torch.allclose(merge(a, b), concat(a, b), atol=1e-6)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from ._registry import ALL_DTYPES, Builder, Claim, Pair

if TYPE_CHECKING:
    from pytest_effective_torch import Maker

__all__ = [
    "CLAIMS",
    "PAIRS",
    "ConcatMerge",
    "Merge",
    "concat_grads",
    "equivalent_modules",
    "param_map",
]

Activation = Callable[[torch.Tensor], torch.Tensor] | None


def _tile(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Repeat ``x`` (lower rank allowed) to ``[*shape, x.shape[-1]]``, a real copy."""
    x = x.reshape((1,) * (len(shape) + 1 - x.dim()) + tuple(x.shape))
    repeats = [target // size for target, size in zip(shape, x.shape[:-1], strict=True)]
    return x.repeat(*repeats, 1)


class ConcatMerge(torch.nn.Module):
    """Tile both inputs to a common shape, concatenate features, one Linear.

    This is the "before" of the guide: it stores the tiled copy and the
    concatenation, and runs the Linear over ``T`` copies of ``b``.
    """

    def __init__(
        self,
        in_features1: int,
        in_features2: int,
        out_features: int,
        activation: Activation = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features1 = in_features1
        self.in_features2 = in_features2
        self.linear = torch.nn.Linear(
            in_features1 + in_features2, out_features, device=device, dtype=dtype
        )
        self.activation = activation

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        c = torch.cat([_tile(a, shape), _tile(b, shape)], dim=-1)
        out = self.linear(c)
        return out if self.activation is None else self.activation(out)


class Merge(torch.nn.Module):
    """The guide's merge: ``activation(linear1(a) + linear2(b))``, broadcast.

    Works for any ``a`` and ``b`` whose leading dimensions broadcast.
    """

    def __init__(
        self,
        in_features1: int,
        in_features2: int,
        out_features: int,
        activation: Activation = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.linear1 = torch.nn.Linear(in_features1, out_features, **kw)
        self.linear2 = torch.nn.Linear(in_features2, out_features, **kw)
        self.activation = activation

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        c = self.linear1(a) + self.linear2(b)
        return c if self.activation is None else self.activation(c)

    @classmethod
    def from_concat(cls, concat: ConcatMerge) -> Merge:
        """A :class:`Merge` computing the same function as ``concat``.

        ``linear1`` gets the weight columns that multiply ``a``'s features,
        ``linear2`` the columns for ``b``'s; the bias goes to ``linear1`` and
        ``linear2``'s bias is zero, so it is added once. Device and dtype
        follow ``concat``; the new module shares no storage with it.
        """
        weight, bias = concat.linear.weight, concat.linear.bias
        f1, f2 = concat.in_features1, concat.in_features2
        merge = cls(
            f1,
            f2,
            weight.shape[0],
            concat.activation,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            merge.linear1.weight.copy_(weight[:, :f1])
            merge.linear2.weight.copy_(weight[:, f1 : f1 + f2])
            merge.linear1.bias.copy_(bias)
            merge.linear2.bias.zero_()
        return merge


def param_map(in_features1: int) -> Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Map :class:`ConcatMerge`'s parameter gradients onto :class:`Merge`'s names.

    The plugin's ``param_map=`` accepts this callable: given the concat's
    gradients by name, it returns what :class:`Merge`'s gradients must be.
    ``linear1.weight``'s is the first ``in_features1`` columns of
    ``linear.weight``'s, ``linear2.weight``'s the rest; both biases get
    ``linear.bias``'s, since each bias is added once to every output.
    """

    def expected(grads: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        weight, bias = grads["linear.weight"], grads["linear.bias"]
        return {
            "linear1.weight": weight[:, :in_features1],
            "linear2.weight": weight[:, in_features1:],
            "linear1.bias": bias,
            "linear2.bias": bias,
        }

    return expected


def concat_grads(merge: Merge) -> dict[str, torch.Tensor]:
    """``merge``'s parameter gradients laid out like :class:`ConcatMerge`'s.

    Compare the result with ``dict(concat.named_parameters())``'s grads
    after running the same backward through both.
    """
    w1, w2 = merge.linear1.weight.grad, merge.linear2.weight.grad
    b1 = merge.linear1.bias.grad
    if w1 is None or w2 is None or b1 is None:
        raise ValueError("merge has no gradients yet: run a backward pass first")
    return {"linear.weight": torch.cat([w1, w2], dim=1), "linear.bias": b1}


#: The pair's activation. The guide uses ReLU; tanh is used here because
#: ReLU's kink makes gradients flip between 0 and 1 when the two modules'
#: pre-activations differ by rounding near zero, a false mismatch.
ACTIVATION = torch.tanh


def equivalent_modules(
    in_features1: int, in_features2: int, out_features: int, activation: Activation = ACTIVATION
) -> Callable[[torch.device, torch.dtype], tuple[Merge, ConcatMerge]]:
    """A factory ``(device, dtype) -> (Merge, ConcatMerge)`` with equivalent weights.

    The concat's weights are drawn on the CPU from a fixed seed, then moved,
    so every device and dtype starts from the same function.
    """

    def factory(device: torch.device, dtype: torch.dtype) -> tuple[Merge, ConcatMerge]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            concat = ConcatMerge(in_features1, in_features2, out_features, activation)
        concat = concat.to(device=device, dtype=dtype)
        return Merge.from_concat(concat), concat

    return factory


def merge_inputs(batch: int, tiles: int, f1: int, f2: int) -> Builder:
    """A builder: ``a`` ``[batch, tiles, f1]`` and ``b`` ``[batch, 1, f2]``."""

    def build(make: Maker) -> tuple[torch.Tensor, torch.Tensor]:
        return make(batch, tiles, f1, low=-1, high=1), make(batch, 1, f2, low=-1, high=1)

    build.__name__ = build.__qualname__ = f"merge_inputs_{batch}x{tiles}x{f1}_{f2}"
    return build


#: The guide's shapes: a [5, 3, 5], b [5, 1, 6], 10 outputs.
CHECK = merge_inputs(5, 3, 5, 6)
SMALL = merge_inputs(2, 3, 5, 6)
#: Large enough that the tiled copy and the redundant matmul dominate.
LARGE = merge_inputs(16, 256, 128, 128)

PAIRS: tuple[Pair, ...] = (
    Pair(
        name="merge.broadcast",
        topic="merge",
        reference=ConcatMerge,
        candidate=Merge,
        inputs=CHECK,
        small_inputs=SMALL,
        large_inputs=LARGE,
        compile_inputs=CHECK,
        dtypes=ALL_DTYPES,
        param_map=param_map(5),
        factory=equivalent_modules(5, 6, 10),
        note="module pair; weights made equivalent by Merge.from_concat",
    ),
)

#: The modules for the speed and memory claims' sizes.
LARGE_FACTORY = equivalent_modules(128, 128, 128)

CLAIMS: tuple[Claim, ...] = (
    Claim("merge.broadcast", "equal", "2 Linears + broadcast = tile + concat + Linear"),
    Claim(
        "merge.broadcast",
        "faster",
        "broadcasting is more efficient than tiling",
        inputs=LARGE,
        min_speedup=1.2,
        # Sized for a CPU run; on a GPU both sides are a few launch-bound
        # kernels at this size, so there it is measured, not asserted.
        per_device={"cuda": None},
        dtype="float32",
        factory=LARGE_FACTORY,
    ),
    Claim(
        "merge.broadcast",
        "less_memory",
        "broadcasting needs no tiled copy",
        inputs=LARGE,
        max_memory_ratio=0.8,
        backward=True,
        dtype="float32",
        factory=LARGE_FACTORY,
    ),
)
