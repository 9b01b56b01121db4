"""Argument trees: walk, copy (keeping layout and aliasing), label; cotangents and RNG seeding."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _trials
from ._inputs import Args

if TYPE_CHECKING:
    import torch

#: Period of the tiled random cotangent: prime, so it lines up with no power-of-two shape.
_COTANGENT_PERIOD = 4093


def _arg_label(key: int | str) -> str:
    return f"input {key}" if isinstance(key, int) else f"input {key!r}"


def _map_tensors(obj: Any, fn: Callable[[Any], Any], memo: dict[int, Any]) -> Any:
    """Apply ``fn`` to every tensor in nested containers; shared tensors stay shared."""
    import torch

    if isinstance(obj, torch.Tensor):
        if id(obj) not in memo:
            memo[id(obj)] = fn(obj)
        return memo[id(obj)]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_map_tensors(o, fn, memo) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(o, fn, memo) for o in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn, memo) for k, v in obj.items()}
    return obj


def _map_args(args: Args, fn: Callable[[Any], Any]) -> Args:
    memo: dict[int, Any] = {}
    out = Args(*(_map_tensors(a, fn, memo) for a in args.args))
    out.kwargs = {k: _map_tensors(v, fn, memo) for k, v in args.kwargs.items()}
    return out


def _arg_items(args: Args) -> list[tuple[int | str, Any]]:
    return [*enumerate(args.args), *args.kwargs.items()]


def _input_tensors(args: Args) -> list[tuple[int | str, str, torch.Tensor]]:
    """(argument key, path, tensor) for every tensor argument, nested ones included."""
    out = []
    for key, value in _arg_items(args):
        for sub, tensor in _trials.walk_tensors(value):
            out.append((key, _arg_label(key) + sub, tensor))
    return out


def _clone_layout(t: torch.Tensor) -> torch.Tensor:
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


def _is_float(t: torch.Tensor) -> bool:
    return t.dtype.is_floating_point or t.dtype.is_complex


def _to_truth_dtype(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    import torch

    if t.dtype.is_complex:
        return t.detach().to(device=device, dtype=torch.complex128)
    if t.dtype.is_floating_point:
        return t.detach().to(device=device, dtype=torch.float64)
    return t.detach().to(device=device).clone()


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    import torch

    if torch.equal(a, b):
        return True
    if _is_float(a):
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return False


def _cotangent(like: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded random cotangent: a block of random values tiled over the output.

    Drawing a full-size random tensor costs more than a memory-bound op's
    backward; a short prime-period block is as good at exposing a wrong
    gradient and costs one copy.
    """
    import torch

    n = like.numel()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    block = torch.empty(min(n, _COTANGENT_PERIOD)).uniform_(-1, 1, generator=gen)
    block = block.to(device=like.device, dtype=like.dtype if _is_float(like) else torch.float32)
    if n <= _COTANGENT_PERIOD:
        return block.reshape(like.shape)
    reps = -(-n // _COTANGENT_PERIOD)
    return block.repeat(reps)[:n].reshape(like.shape)


def _seed_rng(seed: int, device: torch.device) -> None:
    """Seed the generators ``device`` draws from (CPU always).

    torch.manual_seed would also queue lazy seeding of every accelerator
    backend, capturing a stack trace each time: a third of a small check.
    """
    import torch

    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


def _arg_value(args: Args, key: int | str) -> Any:
    return args.args[key] if isinstance(key, int) else args.kwargs[key]


_PLAIN = (int, float, complex, str, bytes, bool, type(None))


def _skeleton(obj: Any) -> Any:
    """What a caller would see change in a container argument: its items, keys and plain values.

    Tensors count by identity (their values are compared separately), plain
    values (numbers, strings, None) by value, other objects by identity.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        return ("tensor", id(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple(_skeleton(o) for o in obj))
    if isinstance(obj, dict):
        return (type(obj), tuple((k, _skeleton(v)) for k, v in obj.items()))
    if isinstance(obj, _PLAIN):
        return ("value", type(obj), obj)
    return ("object", id(obj))


def _skeleton_change(before: Any, after: Any, path: str) -> str | None:
    """How an argument's containers changed between two :func:`_skeleton` snapshots, or None."""
    if before == after:
        return None
    kind_b, kind_a = before[0], after[0]
    if isinstance(kind_b, type) and kind_b is kind_a:
        name = kind_b.__name__
        if issubclass(kind_b, dict):
            keys_b, keys_a = [k for k, _ in before[1]], [k for k, _ in after[1]]
            gained = [k for k in keys_a if k not in keys_b]
            lost = [k for k in keys_b if k not in keys_a]
            if gained or lost:
                parts = ([f"gained keys {gained}"] if gained else []) + ([f"lost keys {lost}"] if lost else [])
                return f"{name} {' and '.join(parts)}"
            items_a = dict(after[1])
            for k, v in before[1]:
                change = _skeleton_change(v, items_a[k], f"{path}[{k!r}]")
                if change:
                    return change
            return f"{path}: keys reordered"
        if len(before[1]) != len(after[1]):
            return f"{name} had {len(before[1])} items, now {len(after[1])}"
        for i, (b, a) in enumerate(zip(before[1], after[1], strict=True)):
            change = _skeleton_change(b, a, f"{path}[{i}]")
            if change:
                return change
    if before[0] == "value" and after[0] == "value":
        return f"{path} was {before[2]!r}, now {after[2]!r}"
    return f"{path} was replaced by another object"
