"""Batch gather as Triton kernels, registered as ``reference_impls::batch_gather``.

Imported by :func:`reference_impls.triton_ops.load_kernels` only: importing
this module imports triton and defines the kernels (interpreted when
``TRITON_INTERPRET=1`` is set at that moment).

The forward view: the source is ``[B, N, D]`` (``D`` = the trailing
dimensions flattened), the indices ``[R]`` with ``R = B * K`` output rows,
output row ``r`` is source row ``(r // K, indices[r])``. A gather is pure data
movement, so the kernel is designed for bandwidth:

- a program copies a tile of ``BLOCK_R`` whole rows (``BLOCK_D`` columns
  each), about 16 KiB, so every thread has several wide loads in flight;
- along a row the addresses are contiguous, and Triton specialises an inner
  stride of 1 and strides divisible by 16, so those loads become 128-bit
  vector loads when rows are 16-element aligned;
- index and offset arithmetic is int64 (row numbers, loaded indices and
  row offsets), so sources over 2**31 elements address correctly;
- the last tile of rows is masked; the column mask is dropped at compile
  time (``EVEN_D``) when the width is a multiple of the block.

The gradient with respect to the source is a scatter-add into zeros by the
same tiling. With one index per batch row (``K == 1``) every destination row
is written at most once, so plain stores suffice and the result is
deterministic. With ``K > 1`` a row may be hit twice: float32, float64 and
float16 use atomic adds (order unspecified, so the last bits may vary from
run to run); bfloat16 (no atomics in the interpreter, sm90+ only on GPUs) or
``torch.use_deterministic_algorithms(True)`` use torch's ``index_put_`` with
``accumulate=True`` instead, which is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

__all__ = ["GatherConfig", "batch_gather", "batch_gather_backward", "gather_config"]

try:  # The interpreter's kernel type; its name has been stable through triton 3.x.
    from triton.runtime.interpreter import InterpretedFunction as _Interpreted
except ImportError:  # pragma: no cover - a triton without an interpreter
    _Interpreted = ()  # type: ignore[assignment,misc]


@triton.jit
def _gather_kernel(
    src_ptr,
    idx_ptr,
    out_ptr,
    rows,
    per_batch,
    n,
    width,
    stride_b,
    stride_n,
    stride_d,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
    EVEN_D: tl.constexpr,
):
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    row_ok = r < rows
    idx = tl.load(idx_ptr + r, mask=row_ok, other=0).to(tl.int64)
    idx = tl.where(idx < 0, idx + n, idx)
    src_row = (r // per_batch) * stride_b + idx * stride_n
    if EVEN_D:
        mask = row_ok[:, None]
    else:
        mask = row_ok[:, None] & (d < width)[None, :]
    values = tl.load(src_ptr + src_row[:, None] + (d * stride_d)[None, :], mask=mask)
    tl.store(out_ptr + (r * width)[:, None] + d[None, :], values, mask=mask)


@triton.jit
def _scatter_add_kernel(
    grad_ptr,
    idx_ptr,
    out_ptr,
    rows,
    per_batch,
    n,
    width,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
    EVEN_D: tl.constexpr,
    ATOMIC: tl.constexpr,
):
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    row_ok = r < rows
    idx = tl.load(idx_ptr + r, mask=row_ok, other=0).to(tl.int64)
    idx = tl.where(idx < 0, idx + n, idx)
    dst_row = ((r // per_batch) * n + idx) * width
    if EVEN_D:
        mask = row_ok[:, None]
    else:
        mask = row_ok[:, None] & (d < width)[None, :]
    grad = tl.load(grad_ptr + (r * width)[:, None] + d[None, :], mask=mask)
    dst = out_ptr + dst_row[:, None] + d[None, :]
    if ATOMIC:
        tl.atomic_add(dst, grad, mask=mask, sem="relaxed")
    else:
        tl.store(dst, grad, mask=mask)


# ------------------------------------------------------------ launch shapes


@dataclass(frozen=True)
class GatherConfig:
    """How one launch tiles ``rows x width``: rows and columns per program, warps."""

    block_rows: int
    block_cols: int
    num_warps: int

    def grid(self, rows: int, width: int) -> tuple[int, int]:
        return triton.cdiv(rows, self.block_rows), triton.cdiv(width, self.block_cols)


#: Bytes one program moves (read, and again written): enough loads in flight
#: per thread to cover memory latency, few enough programs' registers to keep
#: several programs resident per SM. The bandwidth script sweeps alternatives.
TILE_BYTES = 16 * 1024
#: The widest column block, in bytes: a row wider than this is split over
#: programs along axis 1 of the grid.
ROW_BYTES = 4 * 1024


def gather_config(
    rows: int,
    width: int,
    element_size: int,
    *,
    tile_bytes: int = TILE_BYTES,
    num_warps: int | None = None,
) -> GatherConfig:
    """The tiling for gathering ``rows`` rows of ``width`` elements of ``element_size`` bytes.

    Whole rows up to :data:`ROW_BYTES` per program; several rows per program
    when rows are narrow, up to ``tile_bytes``; never more rows than exist
    (a batch of 3 gets a block of 4, not 16). Block sizes are powers of two,
    as ``tl.arange`` requires; the remainders are masked.
    """
    block_cols = min(triton.next_power_of_2(max(width, 1)), max(1, ROW_BYTES // element_size))
    per_tile = max(1, tile_bytes // (block_cols * element_size))
    block_rows = max(1, min(triton.next_power_of_2(max(rows, 1)), per_tile))
    if num_warps is None:
        # One warp per KiB of the tile between 1 and 8: a 16 KiB tile gives
        # each of 256 threads 64 bytes, four 128-bit loads.
        num_warps = min(
            8, max(1, triton.next_power_of_2(block_rows * block_cols * element_size // 2048))
        )
    return GatherConfig(block_rows, block_cols, num_warps)


# ------------------------------------------------------------ host side


def _check_runnable(t: torch.Tensor) -> None:
    if t.device.type != "cuda" and not isinstance(_gather_kernel, _Interpreted):
        raise RuntimeError(
            f"the Triton batch gather got a {t.device.type} tensor, but triton was set up "
            "to compile for a GPU: CPU tensors need Triton's interpreter, "
            "TRITON_INTERPRET=1 set before the kernels are defined (before importing triton)"
        )


def _check_indices(tensor: torch.Tensor, indices: torch.Tensor) -> None:
    if tensor.dim() < 2:
        raise ValueError(
            f"batch_gather: tensor must be [B, N, ...], got shape {tuple(tensor.shape)}"
        )
    if indices.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"batch_gather: indices must be int64 or int32, got {indices.dtype}")
    if indices.dim() < 1 or indices.shape[0] != tensor.shape[0]:
        raise ValueError(
            f"batch_gather: indices must be [B, ...] with B = {tensor.shape[0]}, "
            f"got shape {tuple(indices.shape)}"
        )
    if indices.device != tensor.device:
        raise ValueError(f"batch_gather: indices on {indices.device}, tensor on {tensor.device}")


def _flat_indices(indices: torch.Tensor) -> torch.Tensor:
    # A 1-D strided view reshapes to itself; the kernel wants unit stride.
    return indices.reshape(-1).contiguous()


def _source_view(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as ``[B, N, D]``, a view where strides allow, with safe int32 column offsets."""
    batch, n = tensor.shape[0], tensor.shape[1]
    width = math.prod(tensor.shape[2:])
    src = tensor.reshape(batch, n, width)
    # Column offsets d * stride_d are int32 in the kernel (row offsets are
    # int64): a strided row longer than 2**31 elements is made contiguous.
    if src.stride(2) != 1 and width * src.stride(2) >= 2**31:
        src = src.contiguous()
    return src


def gather_into(
    out: torch.Tensor,
    tensor: torch.Tensor,
    indices: torch.Tensor,
    config: GatherConfig | None = None,
) -> torch.Tensor:
    """Launch the gather into ``out`` (``[R, D]``, contiguous) and return it.

    ``config`` overrides :func:`gather_config` (the bandwidth sweep uses it).
    """
    src = _source_view(tensor)
    batch, n, width = src.shape
    idx = _flat_indices(indices)
    rows = idx.numel()
    if rows == 0 or width == 0:
        return out
    if n == 0:
        raise IndexError("batch_gather: indices into a dimension of size 0")
    _check_runnable(tensor)
    config = config or gather_config(rows, width, src.element_size())
    _gather_kernel[config.grid(rows, width)](
        src,
        idx,
        out,
        rows,
        rows // batch,
        n,
        width,
        src.stride(0),
        src.stride(1),
        src.stride(2),
        BLOCK_R=config.block_rows,
        BLOCK_D=config.block_cols,
        EVEN_D=width % config.block_cols == 0,
        num_warps=config.num_warps,
    )
    return out


def _output_shape(tensor: torch.Tensor, indices: torch.Tensor) -> list[int]:
    return [*indices.shape, *tensor.shape[2:]]


@torch.library.custom_op("reference_impls::batch_gather", mutates_args=())
def batch_gather(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``out[i] = tensor[i, indices[i]]``; see :func:`reference_impls.triton_ops.gather_triton`."""
    _check_indices(tensor, indices)
    width = math.prod(tensor.shape[2:])
    out = torch.empty(indices.numel(), width, dtype=tensor.dtype, device=tensor.device)
    gather_into(out, tensor, indices)
    return out.reshape(_output_shape(tensor, indices))


@batch_gather.register_fake
def _(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    _check_indices(tensor, indices)
    return tensor.new_empty(_output_shape(tensor, indices))


def _atomic_ok(dtype: torch.dtype) -> bool:
    return dtype in (torch.float32, torch.float64, torch.float16)


@torch.library.custom_op("reference_impls::batch_gather_backward", mutates_args=())
def batch_gather_backward(grad: torch.Tensor, indices: torch.Tensor, n: int) -> torch.Tensor:
    """The source's gradient: ``grad``'s rows added into zeros ``[B, n, *rest]`` at ``indices``."""
    batch = indices.shape[0]
    rest = grad.shape[indices.dim() :]
    width = math.prod(rest)
    out = torch.zeros(batch, n, width, dtype=grad.dtype, device=grad.device)
    idx = _flat_indices(indices)
    rows = idx.numel()
    if rows == 0 or width == 0:
        return out.reshape(batch, n, *rest)
    g = grad.reshape(rows, width).contiguous()
    per_batch = rows // batch
    if per_batch > 1 and (torch.are_deterministic_algorithms_enabled() or not _atomic_ok(g.dtype)):
        # Repeated indices within a row, added in a fixed order by torch.
        local = torch.where(idx < 0, idx + n, idx)
        flat = torch.arange(batch, device=idx.device).repeat_interleave(per_batch) * n + local
        out.view(batch * n, width).index_put_((flat,), g, accumulate=True)
        return out.reshape(batch, n, *rest)
    _check_runnable(grad)
    config = gather_config(rows, width, g.element_size())
    _scatter_add_kernel[config.grid(rows, width)](
        g,
        idx,
        out,
        rows,
        per_batch,
        n,
        width,
        BLOCK_R=config.block_rows,
        BLOCK_D=config.block_cols,
        EVEN_D=width % config.block_cols == 0,
        ATOMIC=per_batch > 1,
        num_warps=config.num_warps,
    )
    return out.reshape(batch, n, *rest)


@batch_gather_backward.register_fake
def _(grad: torch.Tensor, indices: torch.Tensor, n: int) -> torch.Tensor:
    return grad.new_empty([indices.shape[0], n, *grad.shape[indices.dim() :]])


def _gather_setup(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    tensor, indices = inputs
    ctx.save_for_backward(indices)
    ctx.n = tensor.shape[1]


def _gather_grad(ctx, grad):  # type: ignore[no-untyped-def]
    (indices,) = ctx.saved_tensors
    return batch_gather_backward(grad, indices, ctx.n), None


def _scatter_setup(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    _, indices, _ = inputs
    ctx.save_for_backward(indices)


def _scatter_grad(ctx, grad):  # type: ignore[no-untyped-def]
    # The adjoint of a scatter-add is the gather: second derivatives of
    # the gather come out of the same two kernels.
    (indices,) = ctx.saved_tensors
    return batch_gather(grad, indices), None, None


batch_gather.register_autograd(_gather_grad, setup_context=_gather_setup)
batch_gather_backward.register_autograd(_scatter_grad, setup_context=_scatter_setup)
