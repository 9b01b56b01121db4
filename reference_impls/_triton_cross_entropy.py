"""Soft-label cross-entropy fused in Triton, registered as ``reference_impls::cross_entropy``.

Imported by :func:`reference_impls.triton_ops.load_kernels` only (it imports
triton and defines the kernels).

Forward, one pass over the class dimension in blocks of ``BLOCK_C``, with
running values kept relative to a per-row shift ``c`` (the largest logit
seen so far, or 0 while there is none):

- ``s = sum(exp(x - c))`` per row, rescaled by ``exp(c_old - c_new)`` when
  the maximum grows (the online softmax normaliser);
- ``t = sum(labels * (x - c))``, moved by ``sum(labels) * (c_old - c_new)``,
  and ``S = sum(labels)``: both kept per lane of the block and summed once
  after the loop (cheaper than a reduction per step, and per-row running
  sums of them trip an assertion in triton 3.6's compiler).

Then ``lse = c + log(s)`` and ``loss = S * log(s) - t``, which is
``sum(labels * (lse - x))``. Keeping ``t`` relative to the maximum avoids
the cancellation of ``S * lse - sum(labels * x)`` when the logits are large
(at the guide's ``[1000, 0]`` both forms give 500, but with every logit near
1000 the unshifted one would lose three digits). Accumulation is float32,
or float64 for float64 inputs; the loss is stored in the inputs' dtype, and
``lse`` and ``S`` (per row, accumulation dtype) are saved for the backward.

Backward, one pass, nothing but ``lse`` and ``S`` saved (no probabilities):
``p = exp(x - lse)``, ``dlogits = g * (S * p - labels)`` (``softmax -
labels`` for labels summing to 1, ``softmax - onehot`` for hard ones) and,
when labels need a gradient, ``dlabels = g * (lse - x)``.

A program takes ``BLOCK_R`` rows at once (several when rows are short, so a
launch over a few classes is not one warp per row), masked at the last rows
and columns; masked logits load as ``-inf`` and masked labels as 0, and the
``labels * (x - c)`` terms of masked lanes are zeroed, never computed as
``0 * -inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

__all__ = ["CrossEntropyConfig", "cross_entropy", "cross_entropy_backward", "cross_entropy_config"]

try:
    from triton.runtime.interpreter import InterpretedFunction as _Interpreted
except ImportError:  # pragma: no cover
    _Interpreted = ()  # type: ignore[assignment,misc]


@triton.jit
def _forward_kernel(
    labels_ptr,
    logits_ptr,
    loss_ptr,
    lse_ptr,
    label_sum_ptr,
    rows,
    cols,
    stride_l,
    stride_x,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    acc: tl.constexpr = lse_ptr.dtype.element_ty
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = r < rows
    neg_inf = float("-inf")
    m = tl.full([BLOCK_R], neg_inf, acc)  # running max
    c = tl.zeros([BLOCK_R], acc)  # running shift: m where finite, else 0
    s = tl.zeros([BLOCK_R], acc)  # sum exp(x - c)
    # Per lane, summed after the loop: labels * (x - c), and labels.
    t = tl.zeros([BLOCK_R, BLOCK_C], acc)
    total = tl.zeros([BLOCK_R, BLOCK_C], acc)
    for start in range(0, cols, BLOCK_C):
        col = start + tl.arange(0, BLOCK_C)
        mask = row_ok[:, None] & (col < cols)[None, :]
        x = tl.load(logits_ptr + (r * stride_x)[:, None] + col[None, :], mask=mask, other=neg_inf)
        lab = tl.load(labels_ptr + (r * stride_l)[:, None] + col[None, :], mask=mask, other=0.0)
        x = x.to(acc)
        lab = lab.to(acc)
        m_new = tl.maximum(m, tl.max(x, 1))
        c_new = tl.where(m_new == neg_inf, 0.0, m_new).to(acc)
        # exp(m - c_new), not exp(c - c_new): while m is -inf, s is 0 and
        # exp(0 - c_new) could overflow into 0 * inf.
        s = s * tl.exp(m - c_new) + tl.sum(tl.exp(x - c_new[:, None]), 1)
        # Masked lanes have x = -inf and label 0: select before multiplying.
        shifted = lab * tl.where(mask, x - c_new[:, None], 0.0)
        t = t + total * (c - c_new)[:, None] + shifted
        total = total + lab
        m = m_new
        c = c_new
    # Rows past the end hold s = 0; keep log(0) out of them (the interpreter
    # evaluates masked lanes too, and numpy warns).
    log_s = tl.log(tl.where(row_ok, s, 1.0))
    label_sum = tl.sum(total, 1)
    tl.store(lse_ptr + r, c + log_s, mask=row_ok)
    tl.store(label_sum_ptr + r, label_sum, mask=row_ok)
    tl.store(
        loss_ptr + r, (label_sum * log_s - tl.sum(t, 1)).to(loss_ptr.dtype.element_ty), mask=row_ok
    )


@triton.jit
def _backward_kernel(
    grad_ptr,
    labels_ptr,
    logits_ptr,
    lse_ptr,
    label_sum_ptr,
    dlabels_ptr,
    dlogits_ptr,
    rows,
    cols,
    stride_l,
    stride_x,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    LABELS_GRAD: tl.constexpr,
):
    acc: tl.constexpr = lse_ptr.dtype.element_ty
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = r < rows
    lse = tl.load(lse_ptr + r, mask=row_ok, other=0.0)[:, None]
    total = tl.load(label_sum_ptr + r, mask=row_ok, other=0.0)[:, None]
    g = tl.load(grad_ptr + r, mask=row_ok, other=0.0).to(acc)[:, None]
    for start in range(0, cols, BLOCK_C):
        col = start + tl.arange(0, BLOCK_C)
        mask = row_ok[:, None] & (col < cols)[None, :]
        x = tl.load(logits_ptr + (r * stride_x)[:, None] + col[None, :], mask=mask, other=0.0)
        lab = tl.load(labels_ptr + (r * stride_l)[:, None] + col[None, :], mask=mask, other=0.0)
        x = x.to(acc)
        dx = g * (total * tl.exp(x - lse) - lab.to(acc))
        out = (r * cols)[:, None] + col[None, :]
        tl.store(dlogits_ptr + out, dx.to(dlogits_ptr.dtype.element_ty), mask=mask)
        if LABELS_GRAD:
            tl.store(dlabels_ptr + out, (g * (lse - x)).to(dlabels_ptr.dtype.element_ty), mask=mask)


# ------------------------------------------------------------ launch shapes


@dataclass(frozen=True)
class CrossEntropyConfig:
    """Rows per program, classes per loop step, warps."""

    block_rows: int
    block_cols: int
    num_warps: int

    def grid(self, rows: int) -> tuple[int]:
        return (triton.cdiv(rows, self.block_rows),)


#: Elements of one loop step's tile (per input), in float32; halved for
#: float64. Two tiles (logits, labels) live in registers at once: at 4096
#: and 8 warps that is 16 values of each per thread.
TILE_ELEMENTS = 4096


def cross_entropy_config(rows: int, cols: int, acc_size: int) -> CrossEntropyConfig:
    """Blocks for ``rows x cols`` with ``acc_size``-byte accumulation.

    Up to a whole tile of classes per step (a 1024-class row is one step);
    rows shorter than the tile share a program, up to the tile.
    """
    tile = max(1, TILE_ELEMENTS * 4 // acc_size)
    block_cols = min(triton.next_power_of_2(max(cols, 1)), tile)
    block_rows = max(1, min(triton.next_power_of_2(max(rows, 1)), tile // block_cols))
    elements = block_rows * block_cols
    num_warps = 8 if elements >= 2048 else 4 if elements >= 256 else 1
    return CrossEntropyConfig(block_rows, block_cols, num_warps)


# ------------------------------------------------------------ host side


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check(labels: torch.Tensor, logits: torch.Tensor) -> None:
    if labels.shape != logits.shape or labels.dtype != logits.dtype:
        raise ValueError(
            "cross_entropy: labels and logits must have one shape and dtype, got "
            f"{tuple(labels.shape)} {labels.dtype} and {tuple(logits.shape)} {logits.dtype}"
        )
    if not logits.dtype.is_floating_point or logits.dim() == 0:
        raise TypeError(
            f"cross_entropy: floating tensors of at least one dimension expected, "
            f"got {logits.dtype} of shape {tuple(logits.shape)}"
        )
    if labels.device != logits.device:
        raise ValueError(f"cross_entropy: labels on {labels.device}, logits on {logits.device}")


def _check_runnable(t: torch.Tensor) -> None:
    if t.device.type != "cuda" and not isinstance(_forward_kernel, _Interpreted):
        raise RuntimeError(
            f"the Triton cross-entropy got a {t.device.type} tensor, but triton was set up "
            "to compile for a GPU: CPU tensors need Triton's interpreter, "
            "TRITON_INTERPRET=1 set before the kernels are defined (before importing triton)"
        )


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` as ``[rows, classes]`` with unit stride along the classes (rows may be strided)."""
    flat = t.reshape(-1, t.shape[-1])
    return flat if flat.stride(1) == 1 or flat.shape[1] <= 1 else flat.contiguous()


@torch.library.custom_op("reference_impls::cross_entropy", mutates_args=())
def cross_entropy_forward(
    labels: torch.Tensor, logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, lse, label_sum)`` per row over the last dimension.

    ``loss = -sum(labels * log_softmax(logits), -1)`` in the inputs' dtype;
    ``lse`` (logsumexp) and ``label_sum`` in the accumulation dtype, for the
    backward. Only ``loss`` is differentiable.
    """
    _check(labels, logits)
    batch = logits.shape[:-1]
    cols = logits.shape[-1]
    rows = math.prod(batch)
    acc = _acc_dtype(logits.dtype)
    loss = torch.empty(rows, dtype=logits.dtype, device=logits.device)
    lse = torch.empty(rows, dtype=acc, device=logits.device)
    total = torch.empty(rows, dtype=acc, device=logits.device)
    if rows and cols == 0:
        # Sums over no classes: what torch's logsumexp and sum give.
        loss.zero_(), lse.fill_(float("-inf")), total.zero_()
    elif rows:
        _check_runnable(logits)
        lab, x = _rows(labels), _rows(logits)
        config = cross_entropy_config(rows, cols, lse.element_size())
        _forward_kernel[config.grid(rows)](
            lab,
            x,
            loss,
            lse,
            total,
            rows,
            cols,
            lab.stride(0),
            x.stride(0),
            BLOCK_R=config.block_rows,
            BLOCK_C=config.block_cols,
            num_warps=config.num_warps,
        )
    return loss.reshape(batch), lse.reshape(batch), total.reshape(batch)


@cross_entropy_forward.register_fake
def _(
    labels: torch.Tensor, logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check(labels, logits)
    batch = logits.shape[:-1]
    acc = _acc_dtype(logits.dtype)
    return (
        logits.new_empty(batch),
        logits.new_empty(batch, dtype=acc),
        logits.new_empty(batch, dtype=acc),
    )


@torch.library.custom_op("reference_impls::cross_entropy_backward", mutates_args=())
def cross_entropy_backward(
    grad: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    lse: torch.Tensor,
    label_sum: torch.Tensor,
    labels_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dlabels, dlogits)`` from the upstream ``grad`` per row and the saved ``lse``, ``label_sum``.

    ``dlabels`` is empty (shape ``[0]``) unless ``labels_grad``.
    """
    cols = logits.shape[-1]
    rows = math.prod(logits.shape[:-1])
    dlogits = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    dlabels = torch.empty(
        labels.shape if labels_grad else (0,), dtype=labels.dtype, device=labels.device
    )
    if rows and cols:
        _check_runnable(logits)
        lab, x = _rows(labels), _rows(logits)
        config = cross_entropy_config(rows, cols, lse.element_size())
        _backward_kernel[config.grid(rows)](
            grad.reshape(rows).contiguous(),
            lab,
            x,
            lse.reshape(rows).contiguous(),
            label_sum.reshape(rows).contiguous(),
            dlabels if labels_grad else dlogits,  # never written without LABELS_GRAD
            dlogits,
            rows,
            cols,
            lab.stride(0),
            x.stride(0),
            BLOCK_R=config.block_rows,
            BLOCK_C=config.block_cols,
            LABELS_GRAD=labels_grad,
            num_warps=config.num_warps,
        )
    return dlabels, dlogits


@cross_entropy_backward.register_fake
def _(
    grad: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    lse: torch.Tensor,
    label_sum: torch.Tensor,
    labels_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    return labels.new_empty(labels.shape if labels_grad else (0,)), torch.empty_like(
        logits, memory_format=torch.contiguous_format
    )


def _setup(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    labels, logits = inputs
    _, lse, total = output
    ctx.mark_non_differentiable(lse, total)
    ctx.save_for_backward(labels, logits, lse, total)


def _grad(ctx, grad_loss, _grad_lse, _grad_total):  # type: ignore[no-untyped-def]
    if grad_loss is None:
        return None, None
    labels, logits, lse, total = ctx.saved_tensors
    labels_grad = ctx.needs_input_grad[0]
    dlabels, dlogits = cross_entropy_backward(grad_loss, labels, logits, lse, total, labels_grad)
    return (dlabels if labels_grad else None), dlogits


cross_entropy_forward.register_autograd(_grad, setup_context=_setup)


def cross_entropy(labels: torch.Tensor, logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The loss per index of the other dimensions; see :func:`reference_impls.triton_ops.cross_entropy_triton`."""
    dtype = torch.promote_types(labels.dtype, logits.dtype)
    labels, logits = torch.broadcast_tensors(labels.to(dtype), logits.to(dtype))
    loss, _, _ = cross_entropy_forward(labels.movedim(dim, -1), logits.movedim(dim, -1))
    return loss
