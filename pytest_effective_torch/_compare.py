"""Walk two nested outputs in step: structure and metadata first, then values.

Paths name where a leaf sits (``output[1]['logits']``), so one message can
list every failing leaf. Shapes, dtypes and devices must match exactly: a
candidate that returns an extra size-1 dimension only "works" through
broadcasting, which is a bug waiting for the next caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._report import Problem, describe_tensor, fmt
from ._tolerance import unravel

if TYPE_CHECKING:
    import torch


@dataclass
class Leaf:
    """A candidate/reference pair at one path whose values still need judging."""

    path: str
    candidate: Any
    reference: Any
    #: "float" (judged against the truth), "exact" (integers, bools, other objects)
    kind: str


def _type_name(obj: Any) -> str:
    return "None" if obj is None else type(obj).__name__


def _is_float_number(x: Any) -> bool:
    return isinstance(x, float) or (isinstance(x, complex))


def pair(candidate: Any, reference: Any, path: str) -> tuple[list[Leaf], list[Problem]]:
    """Pair the leaves of two outputs; structural and metadata differences become problems."""
    import torch

    leaves: list[Leaf] = []
    problems: list[Problem] = []

    def walk(c: Any, r: Any, p: str) -> None:
        if isinstance(r, torch.Tensor):
            if not isinstance(c, torch.Tensor):
                problems.append(Problem(p, [f"candidate returned {_type_name(c)}, reference a tensor ({describe_tensor(r)})"]))
                return
            diffs = []
            if c.shape != r.shape:
                diffs.append(f"shape {tuple(c.shape)} vs {tuple(r.shape)}")
            if c.dtype != r.dtype:
                diffs.append(f"dtype {c.dtype} vs {r.dtype}")
            if c.device != r.device:
                diffs.append(f"device {c.device} vs {r.device}")
            if c.layout != r.layout:
                diffs.append(f"layout {c.layout} vs {r.layout}")
            if diffs:
                hint = ""
                if c.shape != r.shape and c.numel() == r.numel():
                    hint = " (same number of elements: an extra or missing size-1 dimension, or a reshape, would only work through broadcasting)"
                elif c.shape != r.shape and _broadcastable(c.shape, r.shape):
                    hint = " (the shapes broadcast together, which would hide this in later arithmetic)"
                problems.append(Problem(p, [f"candidate {', '.join(diffs)} (candidate vs reference){hint}"]))
                return
            kind = "float" if (r.dtype.is_floating_point or r.dtype.is_complex) else "exact"
            leaves.append(Leaf(p, c, r, kind))
        elif isinstance(r, (tuple, list)):
            if type(c) is not type(r):
                problems.append(Problem(p, [f"candidate returned {_type_name(c)}, reference {_type_name(r)}"]))
                return
            if len(c) != len(r):
                problems.append(Problem(p, [f"candidate returned {len(c)} items, reference {len(r)}"]))
                return
            for i, (ci, ri) in enumerate(zip(c, r, strict=False)):
                walk(ci, ri, f"{p}[{i}]")
        elif isinstance(r, dict):
            if not isinstance(c, dict):
                problems.append(Problem(p, [f"candidate returned {_type_name(c)}, reference {_type_name(r)}"]))
                return
            if set(c) != set(r):
                missing = [k for k in r if k not in c]
                extra = [k for k in c if k not in r]
                parts = []
                if missing:
                    parts.append(f"missing keys {missing}")
                if extra:
                    parts.append(f"extra keys {extra}")
                problems.append(Problem(p, [f"candidate dict has {'; '.join(parts)}"]))
                return
            for key in r:
                walk(c[key], r[key], f"{p}[{key!r}]")
        elif r is None:
            if c is not None:
                problems.append(Problem(p, [f"candidate returned {_type_name(c)}, reference None"]))
        elif _is_float_number(r) and isinstance(c, (int, float, complex)) and not isinstance(c, bool):
            leaves.append(Leaf(p, c, r, "float"))
        else:
            if type(c) is not type(r):
                problems.append(Problem(p, [f"candidate returned {_type_name(c)} {c!r}, reference {_type_name(r)} {r!r}"]))
                return
            try:
                same = bool(c == r)
            except Exception:
                same = c is r
            if not same:
                problems.append(Problem(p, [f"candidate returned {c!r}, reference {r!r}"]))

    walk(candidate, reference, path)
    return leaves, problems


def _broadcastable(a: torch.Size, b: torch.Size) -> bool:
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y and x != 1 and y != 1:
            return False
    return True


def index_leaves(obj: Any, path: str) -> dict[str, Any]:
    """path -> leaf (tensors and numbers) of a nested output, with :func:`pair`'s paths."""
    import torch

    out: dict[str, Any] = {}

    def walk(o: Any, p: str) -> None:
        if isinstance(o, torch.Tensor) or isinstance(o, (int, float, complex)):
            out[p] = o
        elif isinstance(o, (tuple, list)):
            for i, item in enumerate(o):
                walk(item, f"{p}[{i}]")
        elif isinstance(o, dict):
            for key, item in o.items():
                walk(item, f"{p}[{key!r}]")

    walk(obj, path)
    return out


def exact_problem(leaf: Leaf) -> Problem | None:
    """Integer and boolean tensors must equal the reference's exactly."""
    import torch

    c, r = leaf.candidate, leaf.reference
    if not isinstance(r, torch.Tensor):
        return None
    if torch.equal(c, r):
        return None
    differ = c != r
    count = int(differ.sum())
    flat = int(differ.reshape(-1).to(torch.uint8).argmax())
    where = ", ".join(map(str, unravel(flat, tuple(r.shape))))
    return Problem(
        leaf.path,
        [
            f"{describe_tensor(r)}: {count} of {r.numel()} elements differ (exact comparison for {r.dtype})",
            f"first at index ({where}): candidate {fmt(c.reshape(-1)[flat].item())}, "
            f"reference {fmt(r.reshape(-1)[flat].item())}",
        ],
    )


def as_tensor(x: Any) -> torch.Tensor:
    """A Python number as a 0-dim float64 (or complex128) tensor, for judging."""
    import torch

    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, complex):
        return torch.tensor(x, dtype=torch.complex128)
    return torch.tensor(float(x) if not math.isnan(float(x)) else math.nan, dtype=torch.float64)
