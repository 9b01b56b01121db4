"""Cross-entropy with soft labels: ``-sum(labels * log(softmax(logits)))``.

The naive version takes the log of a (stable) softmax. When one logit
dominates, the other probabilities underflow to exactly 0 and their log is
``-inf``: at logits ``[1000, 0]`` with labels ``[0.5, 0.5]`` the loss is
``inf`` (the guide prints that) and the gradient is ``nan``.

The stable version never forms the probabilities: ``log(softmax(x))`` is
``x - logsumexp(x)``, and ``torch.logsumexp`` shifts by the maximum itself.
There the loss is 500 and its gradient with respect to the logits is
``softmax(x) * sum(labels) - labels = [0.5, -0.5]``, the guide's numbers.
(The guide also subtracts ``max(logits)`` before ``logsumexp``; that is
harmless but redundant.)

Beyond the guide, :func:`~reference_impls.triton_ops.cross_entropy_triton`
computes the stable form in one fused Triton kernel (one pass over the
logits forward, one backward); it needs triton, and on CPU tensors Triton's
interpreter.

All take ``(labels, logits)`` in the guide's order, reduce over ``dim``
and return one loss per remaining index (a scalar for 1-D inputs).

Example::

    >>> import torch
    >>> labels, logits = torch.tensor([0.5, 0.5]), torch.tensor([1000.0, 0.0])
    >>> cross_entropy_naive(labels, logits)
    tensor(inf)
    >>> cross_entropy_stable(labels, logits)
    tensor(500.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ._registry import ALL_DTYPES, Builder, Claim, Pair
from .softmax import softmax_stable
from .triton_ops import cross_entropy_triton

if TYPE_CHECKING:
    from pytest_effective_torch import Args, Maker

__all__ = [
    "CLAIMS",
    "GUIDE_LABELS",
    "GUIDE_LOGITS",
    "GUIDE_LOSS",
    "GUIDE_GRAD",
    "PAIRS",
    "cross_entropy_naive",
    "cross_entropy_stable",
    "guide_inputs",
]


def cross_entropy_naive(labels: torch.Tensor, logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The log of a softmax: ``-inf`` once a probability underflows to 0."""
    log_probs = torch.log(softmax_stable(logits, dim))
    return -torch.sum(labels * log_probs, dim)


def cross_entropy_stable(labels: torch.Tensor, logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Log-probabilities as ``logits - logsumexp(logits)``: finite for finite logits."""
    log_probs = logits - torch.logsumexp(logits, dim, keepdim=True)
    return -torch.sum(labels * log_probs, dim)


def soft_labels(*shape: int, dim: int = -1, bound: float = 4.0) -> Builder:
    """A builder: soft labels (non-negative, summing to 1 along ``dim``) and logits.

    Both domains are explicit so the equivalence engine does not rescale
    them: the naive version is only meant to agree on moderate logits.
    """

    def build(make: Maker) -> Args:
        from pytest_effective_torch import Args

        weights = make(*shape, low=0.05, high=1.0)
        labels = weights / weights.sum(dim, keepdim=True)
        return Args(labels, make(*shape, low=-bound, high=bound), dim=dim)

    build.__name__ = build.__qualname__ = f"soft_labels_{'x'.join(map(str, shape))}"
    return build


GUIDE_LABELS = (0.5, 0.5)
GUIDE_LOGITS = (1000.0, 0.0)
GUIDE_LOSS = 500.0
GUIDE_GRAD = (0.5, -0.5)


def guide_inputs(make: Maker) -> tuple[torch.Tensor, torch.Tensor]:
    """The guide's labels ``[0.5, 0.5]`` and logits ``[1000, 0]``, bound device and dtype."""
    kw = {"device": make.device, "dtype": make.dtype}
    return torch.tensor(GUIDE_LABELS, **kw), torch.tensor(GUIDE_LOGITS, **kw)


CHECK = soft_labels(8, 10)
SMALL = soft_labels(3, 4)
LARGE = soft_labels(256, 1024)
#: The Triton kernel's check: 12 rows, 37 classes, neither a multiple of
#: its blocks (16 x 64 here); small enough for Triton's interpreter.
TRITON_CHECK = soft_labels(12, 37)
#: Where the fused kernel's speed is claimed (GPU): 64 MiB per float32 input.
HUGE = soft_labels(4096, 4096)
#: The Triton kernel against the stable torch version at ``HUGE`` on CUDA.
#: Forward, the fused kernel reads logits and labels once where the torch
#: version makes about ten passes (max, exp-sum, subtract, multiply, sum):
#: asserted at 2x. Forward plus backward is measured and reported.
TRITON_MIN_SPEEDUP: float | None = 2.0
TRITON_MIN_SPEEDUP_BACKWARD: float | None = None

PAIRS: tuple[Pair, ...] = (
    Pair(
        name="cross_entropy.stable",
        topic="cross_entropy",
        reference=cross_entropy_naive,
        candidate=cross_entropy_stable,
        inputs=CHECK,
        small_inputs=SMALL,
        large_inputs=LARGE,
        compile_inputs=CHECK,
        dtypes=ALL_DTYPES,
    ),
    Pair(
        name="cross_entropy.triton",
        topic="cross_entropy",
        reference=cross_entropy_naive,
        candidate=cross_entropy_triton,
        inputs=TRITON_CHECK,
        small_inputs=SMALL,
        large_inputs=HUGE,
        dtypes=ALL_DTYPES,
        # Its backward is a kernel without a derivative of its own.
        twice_differentiable=False,
        triton=True,
        note="beyond the guide: one fused Triton kernel (reference_impls.triton_ops)",
    ),
)

CLAIMS: tuple[Claim, ...] = (
    Claim("cross_entropy.stable", "equal", "logsumexp form equals log of softmax"),
    Claim(
        "cross_entropy.stable",
        "stabler",
        "[1000, 0]: naive inf, stable 500, grad [.5, -.5]",
        inputs=guide_inputs,
        expected=(GUIDE_LOSS,),
        expected_grad=GUIDE_GRAD,
        grad_arg=1,
    ),
    Claim("cross_entropy.triton", "equal", "beyond: fused Triton kernel, same loss"),
    Claim(
        "cross_entropy.triton",
        "stabler",
        "fused kernel at [1000, 0]: 500, grad [.5, -.5]",
        inputs=guide_inputs,
        expected=(GUIDE_LOSS,),
        expected_grad=GUIDE_GRAD,
        grad_arg=1,
    ),
    Claim(
        "cross_entropy.triton",
        "faster",
        "beyond: fused kernel vs logsumexp form",
        inputs=HUGE,
        per_device={"cuda": TRITON_MIN_SPEEDUP},
        dtype="float32",
        factory=lambda device, dtype: (cross_entropy_triton, cross_entropy_stable),
    ),
    Claim(
        "cross_entropy.triton",
        "faster",
        "beyond: fused kernel vs logsumexp, backward",
        inputs=HUGE,
        per_device={"cuda": TRITON_MIN_SPEEDUP_BACKWARD},
        backward=True,
        dtype="float32",
        factory=lambda device, dtype: (cross_entropy_triton, cross_entropy_stable),
    ),
)
