"""Batch gather: ``out[i] = tensor[i, indices[i]]`` for every row ``i``.

``tensor`` has shape ``[B, N, *rest]`` and ``indices`` holds integers in
``[0, N)`` with shape ``[B, *K]``; the result has shape ``[B, *K, *rest]``.

Versions, slowest first:

- :func:`gather_loop`: the guide's Python loop, one small indexing op per
  row, then a stack. The reference.
- :func:`gather_torchscript`: the same loop through ``torch.jit.script``.
  torch 2.13 deprecates ``torch.jit.script`` (it warns and recommends
  torch.compile or torch.export); the pair is kept while the installed torch
  still has it, and the deprecation warning is silenced at the one place we
  script.
- :func:`gather_flat_index`: the guide's vectorized version: fold the batch
  into the gathered dimension and add a per-row offset to the indices. The
  guide's code builds the offsets with ``torch.arange(...).cuda()``, which
  fails on a CPU-only machine and silently copies to the current GPU from
  anywhere else; here the offsets are made on the input's device.
- :func:`gather_native`: what torch offers directly: advanced indexing with
  a broadcast row index (``torch.take_along_dim`` does the same when
  ``indices`` has as many dimensions as ``tensor``).
- :func:`~reference_impls.triton_ops.gather_triton` (beyond the guide):
  one Triton kernel, with a scatter-add kernel for the gradient; needs
  triton, and on CPU tensors Triton's interpreter.

Compiled versions are no pairs of their own: run the suite with
``--effective-torch-variants=eager,compile`` and the plugin checks and times
``torch.compile`` of each candidate that has ``compile_inputs`` (small:
compiling is slow on a CPU), the loop staying the eager reference.

Example::

    >>> import torch
    >>> x = torch.arange(12.).reshape(3, 4)
    >>> gather_native(x, torch.tensor([0, 3, 1]))
    tensor([0., 7., 9.])
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any

import torch

from ._registry import ALL_DTYPES, Builder, Claim, Pair
from .triton_ops import gather_triton

if TYPE_CHECKING:
    from pytest_effective_torch import Maker

__all__ = [
    "CLAIMS",
    "PAIRS",
    "SWEEP_BATCHES",
    "gather_by_batch",
    "gather_flat_index",
    "gather_loop",
    "gather_native",
    "gather_nbytes",
    "gather_torchscript",
    "has_torchscript",
]


def gather_loop(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The guide's loop: index each row on its own, then stack the rows."""
    rows = []
    for i in range(tensor.size(0)):
        rows.append(tensor[i][indices[i]])
    return torch.stack(rows)


def _gather_loop_for_script(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    # TorchScript needs the list's element type spelled out.
    rows: list[torch.Tensor] = []
    for i in range(tensor.size(0)):
        rows.append(tensor[i][indices[i]])
    return torch.stack(rows)


def has_torchscript() -> bool:
    """True while the installed torch still ships ``torch.jit.script``."""
    return callable(getattr(getattr(torch, "jit", None), "script", None))


@functools.cache
def _scripted_loop() -> Any:
    with warnings.catch_warnings():
        # torch >= 2.10 warns that torch.jit.script is deprecated; the pair
        # exists to measure exactly that API, so the warning is expected.
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", category=FutureWarning)
        return torch.jit.script(_gather_loop_for_script)


def gather_torchscript(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The loop compiled by TorchScript (scripted once, on first use)."""
    return _scripted_loop()(tensor, indices)


def _row_index(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``arange(B)`` shaped ``[B, 1, ..., 1]`` to broadcast against ``indices``."""
    batch = tensor.shape[0]
    shape = (batch,) + (1,) * (indices.dim() - 1)
    return torch.arange(batch, device=indices.device).reshape(shape)


def gather_flat_index(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The guide's vectorized version, with the offsets on the input's device.

    Row ``i``'s element ``j`` sits at ``i * N + j`` once the first two
    dimensions are merged, so one indexing op gathers every row.
    """
    batch, n = tensor.shape[0], tensor.shape[1]
    flat = tensor.reshape(batch * n, *tensor.shape[2:])
    return flat[indices + _row_index(tensor, indices) * n]


def gather_native(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Advanced indexing: ``tensor[rows, indices]`` with ``rows`` broadcast."""
    return tensor[_row_index(tensor, indices), indices]


# ---------------------------------------------------------------- inputs


def gather_inputs(batch: int, n: int, width: int, *, per_row: int | None = None) -> Builder:
    """A builder: ``tensor`` ``[batch, n, width]`` and ``indices`` in ``[0, n)``.

    ``indices`` has shape ``[batch]``, or ``[batch, per_row]`` when given.
    Indices may repeat across rows but not within one row's single entry, so
    gradients accumulate in one order only and stay bitwise reproducible.
    """

    def build(make: Maker) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch,) if per_row is None else (batch, per_row)
        return make(batch, n, width), make(*shape, dtype=torch.int64, high=n)

    build.__name__ = build.__qualname__ = f"gather_inputs_{batch}x{n}x{width}" + (
        "" if per_row is None else f"_k{per_row}"
    )
    return build


CHECK = gather_inputs(16, 10, 8)
SMALL = gather_inputs(4, 5, 3)
#: The guide's claim is made at batch 1024 (ANCHORS: 20x at batch 64 on CPU).
LARGE = gather_inputs(1024, 64, 16)
#: Forward plus backward: the loop's backward is quadratic in the batch
#: (each ``tensor[i]`` hands back a full-size gradient that autograd then
#: adds up), so the claim is made at a batch where that still finishes.
LARGE_BACKWARD = gather_inputs(128, 64, 16)
#: The compile variant's inputs stay small (torch.compile compiles one graph per shape).
COMPILE = gather_inputs(8, 10, 8)
#: A large gather for the bandwidth figure (GPU only): a 1 GiB float32
#: source, 64 MiB gathered.
HUGE = gather_inputs(1 << 16, 16, 256)
#: The Triton kernel's check: three indices per row (so the backward adds
#: repeated rows) and sizes that are not multiples of its blocks (36 rows,
#: 24 columns), small enough for Triton's interpreter on a CPU.
TRITON_CHECK = gather_inputs(12, 10, 24, per_row=3)

#: The batches of the size sweep: from one row, where the loop's single
#: indexing op has nothing to lose, to the guide's 1024.
SWEEP_BATCHES = (1, 4, 16, 64, 256, 1024)


def gather_by_batch(make: Maker, *, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A builder swept over ``batch``: ``tensor`` ``[batch, 64, 16]``, ``indices`` ``[batch]``."""
    return gather_inputs(batch, 64, 16)(make)


def gather_nbytes(batch: int) -> int:
    """Bytes one float32 gather of the sweep moves: the rows read and written, and the indices."""
    return 2 * batch * 16 * 4 + batch * 8


def vectorized_beats_loop_cpu(batch: int) -> float | None:
    """10x from batch 256 on the CPU (20x measured at 64); below that, measured only."""
    return 10.0 if batch >= 256 else None


def vectorized_beats_loop_cuda(batch: int) -> float | None:
    """20x from batch 256 on a GPU (47x measured at 64 on an H200); below, measured only."""
    return 20.0 if batch >= 256 else None


def _pair(name: str, candidate: Any, **kwargs: Any) -> Pair:
    kwargs.setdefault("inputs", CHECK)
    kwargs.setdefault("small_inputs", SMALL)
    kwargs.setdefault("large_inputs", LARGE)
    kwargs.setdefault("dtypes", ALL_DTYPES)
    return Pair(
        name=f"batch_gather.{name}",
        topic="batch_gather",
        reference=gather_loop,
        candidate=candidate,
        exact=True,
        **kwargs,
    )


PAIRS: tuple[Pair, ...] = (
    *(
        (
            _pair(
                "torchscript",
                gather_torchscript,
                note="torch.jit.script is deprecated in torch 2.13",
            ),
        )
        if has_torchscript()
        else ()
    ),
    _pair("flat_index", gather_flat_index, compile_inputs=COMPILE),
    _pair("native", gather_native, compile_inputs=COMPILE),
    _pair(
        "triton",
        gather_triton,
        inputs=TRITON_CHECK,
        triton=True,
        note="beyond the guide: a Triton kernel (reference_impls.triton_ops)",
    ),
)

#: The Triton gather against the vectorized form at ``HUGE`` on CUDA: its
#: target is 3.0 TB/s where the vectorized form moves 1.47 TB/s (about 2x),
#: asserted with a margin. Forward plus backward is only measured: zeroing
#: the 1 GiB gradient costs both sides the same and dominates.
TRITON_MIN_SPEEDUP: float | None = 1.5
TRITON_MIN_SPEEDUP_BACKWARD: float | None = None

CLAIMS: tuple[Claim, ...] = (
    *(Claim(p.name, "equal", "all versions return the same rows, exactly") for p in PAIRS),
    *(
        (
            Claim(
                "batch_gather.torchscript",
                "faster",
                "TorchScript about 10% faster than the loop",
                inputs=LARGE,
                dtype="float32",
                note="measured, not asserted: 0.9-2.2x on a 2-core CPU, 1.2-1.3x on an H200",
            ),
        )
        if has_torchscript()
        else ()
    ),
    Claim(
        "batch_gather.flat_index",
        "faster",
        "vectorized about 100x faster than the loop",
        inputs=LARGE,
        min_speedup=10.0,
        per_device={"cuda": 100.0},
        dtype="float32",
        note="asserted: >= 10x on CPU, >= 100x on CUDA (an H200 measured 800x)",
    ),
    Claim(
        "batch_gather.native",
        "faster",
        "batching beats the loop",
        inputs=LARGE,
        min_speedup=10.0,
        per_device={"cuda": 100.0},
        dtype="float32",
    ),
    Claim(
        "batch_gather.flat_index",
        "faster",
        "vectorized ~100x faster, with backward",
        inputs=LARGE_BACKWARD,
        min_speedup=10.0,
        # Launch-bound on a GPU at this batch: each side is a few hundred
        # (loop) or a handful (vectorized) of kernel launches.
        per_device={"cuda": 20.0},
        backward=True,
        dtype="float32",
    ),
    Claim(
        "batch_gather.flat_index",
        "faster",
        "the speedup grows with the batch",
        inputs=gather_by_batch,
        sizes={"batch": SWEEP_BATCHES},
        min_speedup=vectorized_beats_loop_cpu,
        per_device={"cuda": vectorized_beats_loop_cuda},
        nbytes=gather_nbytes,
        dtype="float32",
        note="a size sweep: measured below batch 256, where launch overhead decides; asserted above",
    ),
    Claim(
        "batch_gather.triton",
        "faster",
        "beyond: Triton kernel vs vectorized, large",
        inputs=HUGE,
        per_device={"cuda": TRITON_MIN_SPEEDUP},
        dtype="float32",
        factory=lambda device, dtype: (gather_triton, gather_flat_index),
        note="1 GiB source, 64 MiB gathered; bandwidth: python -m reference_impls.bandwidth",
    ),
    Claim(
        "batch_gather.triton",
        "faster",
        "beyond: Triton vs vectorized, with backward",
        inputs=HUGE,
        per_device={"cuda": TRITON_MIN_SPEEDUP_BACKWARD},
        backward=True,
        dtype="float32",
        factory=lambda device, dtype: (gather_triton, gather_flat_index),
    ),
)
