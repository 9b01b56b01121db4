"""Triton kernels for two of the guide's ops, beyond the guide (optional: needs ``triton``).

- :func:`gather_triton`: the batch gather of :mod:`~reference_impls.batch_gather`
  as one bandwidth-bound kernel (whole rows per program, wide loads), with a
  scatter-add kernel for its gradient.
- :func:`cross_entropy_triton`: the soft-label cross-entropy of
  :mod:`~reference_impls.cross_entropy` fused into one pass over the logits
  (an online max and sum of exponentials), and one pass for the gradient,
  recomputed from the saved per-row logsumexp.

Both are ``torch.library`` custom ops (namespace ``reference_impls``) with
fake implementations and autograd formulas, so they pass
``torch.library.opcheck`` and trace under ``torch.compile`` (as opaque calls).

This module does not import triton. The kernels are defined on first use, so
``reference_impls`` imports and its suite runs where triton is not installed
(the Triton pairs then skip, saying why). On CUDA tensors the kernels run
compiled. On CPU tensors they run only through Triton's interpreter, which
is chosen when a kernel is *defined*: set ``TRITON_INTERPRET=1`` before the
first call (safest: before anything imports triton). Interpreted kernels are
for checking correctness; their timings mean nothing.

Example (CPU, under the interpreter)::

    TRITON_INTERPRET=1 python -c "
    import torch
    from reference_impls.triton_ops import gather_triton
    print(gather_triton(torch.arange(12.).reshape(3, 4), torch.tensor([0, 3, 1])))"
    # tensor([0., 7., 9.])
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "INTERPRET_ENV",
    "cross_entropy_triton",
    "gather_triton",
    "interpreting",
    "load_kernels",
    "triton_missing",
    "triton_skip_reason",
]

#: Triton reads this when a kernel is defined: ``1`` runs kernels in its
#: interpreter (numpy on the host), which is how CPU tensors can be used.
INTERPRET_ENV = "TRITON_INTERPRET"

_INSTALL_HINT = "pip install 'pytest-effective-torch[triton]'"


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1`` is set in this process's environment."""
    return os.environ.get(INTERPRET_ENV) == "1"


def triton_missing() -> str | None:
    """Why the Triton kernels cannot be loaded here, or None when they can.

    Looks for the packages without importing them (importing triton costs a
    second or more, and its interpreter needs numpy).
    """
    if importlib.util.find_spec("triton") is None:
        return f"triton is not installed ({_INSTALL_HINT})"
    if interpreting() and importlib.util.find_spec("numpy") is None:
        return f"Triton's interpreter needs numpy, which is not installed ({_INSTALL_HINT})"
    return None


def triton_skip_reason(device: str | torch.device, *, timing: bool = False) -> str | None:
    """Why a Triton kernel cannot be checked (or timed) on ``device``; None when it can.

    CUDA devices run the kernels compiled; CPU only under the interpreter
    (``TRITON_INTERPRET=1``); other device types not at all. ``timing=True``
    also refuses the interpreter: an interpreted kernel's time says nothing
    about the kernel.
    """
    missing = triton_missing()
    if missing is not None:
        return missing
    kind = str(device).split(":")[0]
    if timing and interpreting():
        return "Triton's interpreter is on: interpreted Triton kernels are checked, never timed"
    if kind == "cuda":
        return None
    if kind == "cpu":
        if timing:
            return (
                "Triton kernels are timed on CUDA only: on CPU they run in Triton's "
                "interpreter, whose timings mean nothing"
            )
        if interpreting():
            return None
        return (
            "Triton kernels run on CPU tensors only through Triton's interpreter: "
            "python -m reference_impls -k triton --effective-torch-triton-interpret "
            f"(or {INTERPRET_ENV}=1 set before triton is imported)"
        )
    return f"Triton has no backend for {kind} tensors here"


def load_kernels() -> tuple[ModuleType, ModuleType]:
    """Import the kernel modules (defining the kernels and registering the ops).

    Returns ``(gather_module, cross_entropy_module)``. Raises ImportError
    with the install hint when triton (or, for the interpreter, numpy) is
    missing.
    """
    missing = triton_missing()
    if missing is not None:
        raise ImportError(missing)
    from . import _triton_cross_entropy, _triton_gather

    return _triton_gather, _triton_cross_entropy


def gather_triton(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``out[i] = tensor[i, indices[i]]`` by a Triton kernel (op ``reference_impls::batch_gather``).

    ``tensor`` is ``[B, N, *rest]``, ``indices`` integers ``[B, *K]`` in
    ``[-N, N)`` (negative ones count from the end, as in torch indexing);
    the result is ``[B, *K, *rest]``. Indices outside that range are not
    checked (the check would cost a device sync): they read out of bounds.
    The gradient with respect to ``tensor`` is a scatter-add: deterministic
    when ``K`` is empty (one index per row); with several indices per row,
    repeated indices are added by atomics in an unspecified order, unless
    ``torch.use_deterministic_algorithms(True)`` is on (then torch's
    deterministic ``index_put_`` accumulates). Twice differentiable.
    """
    gather, _ = load_kernels()
    return gather.batch_gather(tensor, indices)


def cross_entropy_triton(labels: torch.Tensor, logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``-sum(labels * log_softmax(logits), dim)`` fused in one Triton kernel.

    The semantics of :func:`reference_impls.cross_entropy.cross_entropy_stable`:
    soft labels, no reduction over the other dimensions, the result in the
    inputs' dtype; float16 and bfloat16 are accumulated in float32, float64
    in float64. Gradients flow to ``logits`` and ``labels`` (first order
    only; op ``reference_impls::cross_entropy``).
    """
    _, cross_entropy = load_kernels()
    return cross_entropy.cross_entropy(labels, logits, dim)
