"""Copies of tensors for the three sides of a check, the seeded cotangent, and RNG seeding."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Period of the tiled random cotangent: prime, so it lines up with no power-of-two shape.
_COTANGENT_PERIOD = 4093


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


def cotangent(like: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded random cotangent: a block of random values tiled over the output.

    Drawing a full-size random tensor costs more than a memory-bound op's
    backward; a short prime-period block is as good at exposing a wrong
    gradient and costs one copy.
    """
    import torch

    n = like.numel()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    block = torch.empty(min(n, _COTANGENT_PERIOD)).uniform_(-1, 1, generator=gen)
    block = block.to(device=like.device, dtype=like.dtype if is_float(like) else torch.float32)
    if n <= _COTANGENT_PERIOD:
        return block.reshape(like.shape)
    reps = -(-n // _COTANGENT_PERIOD)
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
