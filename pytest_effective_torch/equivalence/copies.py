"""Copies of tensors for the three sides of a check, the seeded cotangent, and RNG seeding."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Period of the tiled random cotangent: prime, so it lines up with no power-of-two shape.
_COTANGENT_PERIOD = 4093
#: Up to this many elements (on the CPU) the cotangent is a window of one pool of values.
_COTANGENT_FULL = 1 << 16


@functools.cache
def _cotangent_pool() -> torch.Tensor:
    """_COTANGENT_FULL + _COTANGENT_PERIOD random float32 values in [-1, 1), drawn once per process."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(0x5EED)
    return torch.empty(_COTANGENT_FULL + _COTANGENT_PERIOD).uniform_(-1, 1, generator=gen)


def clone_layout(t: torch.Tensor) -> torch.Tensor:
    """A copy with the same strides and storage offset (``clone`` would densify gaps)."""
    import torch

    if t.is_contiguous() or t.numel() == 0:
        out = t.detach().clone(memory_format=torch.contiguous_format)
    else:
        extent = 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride(), strict=False))
        buf = torch.empty(t.storage_offset() + extent, dtype=t.dtype, device=t.device)
        out = buf.as_strided(t.shape, t.stride(), t.storage_offset())
        out.copy_(t.detach())
        out = out.detach()
    return out


class Reused:
    """The engine's own large copies, written into the same buffers trial after trial.

    A fresh allocation of a large tensor is fresh pages from the OS (glibc
    maps each allocation over 32 MiB anew, and unmaps it when freed): a
    16M-element check spent more time in page faults than in arithmetic.
    The sides' copies of the inputs and the cotangents are the engine's own,
    and nothing holds them once a trial is over, so each trial refills the
    buffers of the last one. Tensors under :data:`MIN_ELEMENTS` are left to
    the allocator.
    """

    #: Below this many elements a fresh allocation costs less than keeping a buffer.
    MIN_ELEMENTS = 1 << 20

    def __init__(self) -> None:
        self._buffers: dict[tuple[object, ...], torch.Tensor] = {}

    def buffer(self, key: tuple[object, ...], like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor | None:
        """A contiguous buffer shaped like ``like`` (in ``dtype``), or None when small or strided."""
        import torch

        if like.numel() < self.MIN_ELEMENTS or not like.is_contiguous():
            return None  # (the one non-contiguous trial would only keep its buffers alive longer)
        dtype = like.dtype if dtype is None else dtype
        full = (key, tuple(like.shape), like.stride(), like.storage_offset(), dtype, like.device)
        buf = self._buffers.get(full)
        if buf is None:
            buf = self._buffers[full] = torch.empty(like.shape, dtype=dtype, device=like.device)
        return buf.detach()  # a new leaf over the same memory

    def release(self) -> None:
        """Drop every buffer (a check keeps them across its trials, not after)."""
        self._buffers.clear()

    def copy(self, key: tuple[object, ...], t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``t``'s values in a reused buffer (same layout; ``dtype`` if given), or a fresh copy when small."""
        buf = self.buffer(key, t, dtype)
        if buf is None:
            return clone_layout(t) if dtype is None else t.detach().to(dtype=dtype, copy=True)
        return buf.copy_(t.detach())


def is_float(t: torch.Tensor) -> bool:
    """Floating or complex: the tensors that are judged against the truth and differentiated."""
    return t.dtype.is_floating_point or t.dtype.is_complex


def to_truth_dtype(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A float64 (complex128) copy on ``device``; other dtypes are copied as they are."""
    import torch

    if t.dtype.is_complex:
        return t.detach().to(device=device, dtype=torch.complex128)
    if t.dtype.is_floating_point:
        return t.detach().to(device=device, dtype=torch.float64)
    return t.detach().to(device=device).clone()


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal elementwise, nan matching nan."""
    import torch

    if torch.equal(a, b):
        return True
    if is_float(a):
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return False


def cotangent(like: torch.Tensor, seed: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """A seeded random cotangent: a block of random values tiled over the output.

    Drawing a full-size random tensor costs more than a memory-bound op's
    backward; a short prime-period block is as good at exposing a wrong
    gradient and costs one copy (into ``out``, a contiguous buffer of the
    cotangent's shape and dtype, when given). Small cotangents on the CPU
    are a window of one pool of random values, starting where ``seed``
    says: a copy instead of a draw, which costs a small check's backward.
    """
    import torch

    n = like.numel()
    if n <= _COTANGENT_FULL and like.device.type == "cpu":
        start = seed % _COTANGENT_PERIOD
        window = _cotangent_pool()[start : start + n].reshape(like.shape)
        # (a copy: a backward formula may write into its incoming gradient)
        return window.to(dtype=like.dtype if is_float(like) else torch.float32, copy=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    block = torch.empty(min(n, _COTANGENT_PERIOD)).uniform_(-1, 1, generator=gen)
    block = block.to(device=like.device, dtype=like.dtype if is_float(like) else torch.float32)
    if n <= _COTANGENT_PERIOD:
        return block.reshape(like.shape)
    reps = -(-n // _COTANGENT_PERIOD)
    if out is not None and out.is_contiguous() and out.dtype == block.dtype:
        flat = out.view(-1)
        whole = (n // _COTANGENT_PERIOD) * _COTANGENT_PERIOD
        flat[:whole].view(-1, _COTANGENT_PERIOD).copy_(block)  # broadcast: no tiled temporary
        flat[whole:].copy_(block[: n - whole])
        return out
    return block.repeat(reps)[:n].reshape(like.shape)


def seed_rng(seed: int, device: torch.device) -> None:
    """Seed the generators ``device`` draws from (CPU always).

    torch.manual_seed would also queue lazy seeding of every accelerator
    backend, capturing a stack trace each time: a third of a small check.
    ``torch.cuda.manual_seed`` seeds the *current* GPU, so the target one is
    made current first: on ``cuda:1`` it must be cuda:1's generator that is
    seeded (the one the check's ``fork_rng`` guards), not cuda:0's.
    """
    import torch

    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)
