"""Walk two nested outputs in step: structure and metadata first, then values.

Paths name where a leaf sits (``output[1]['logits']``), so one message can
list every failing leaf. Shapes, dtypes and devices must match exactly: a
candidate that returns an extra size-1 dimension only "works" through
broadcasting, which is a bug waiting for the next caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tree
from ..formatting import describe_tensor, fmt
from .bounds import unravel
from .report import Problem

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


def _metadata_problem(c: torch.Tensor, r: torch.Tensor, path: str) -> Problem | None:
    """Shape, dtype, device and layout must match exactly."""
    diffs = []
    if c.shape != r.shape:
        diffs.append(f"shape {tuple(c.shape)} vs {tuple(r.shape)}")
    if c.dtype != r.dtype:
        diffs.append(f"dtype {c.dtype} vs {r.dtype}")
    if c.device != r.device:
        diffs.append(f"device {c.device} vs {r.device}")
    if c.layout != r.layout:
        diffs.append(f"layout {c.layout} vs {r.layout}")
    if not diffs:
        return None
    hint = ""
    if c.shape != r.shape and c.numel() == r.numel():
        hint = " (same number of elements: an extra or missing size-1 dimension, or a reshape, would only work through broadcasting)"
    elif c.shape != r.shape and _broadcastable(c.shape, r.shape):
        hint = " (the shapes broadcast together, which would hide this in later arithmetic)"
    return Problem(path, [f"candidate {', '.join(diffs)} (candidate vs reference){hint}"])


def _container_problem(c: Any, r: Any, c_node: tree.Node | None, r_node: tree.Node, path: str) -> Problem | None:
    """Why two containers do not pair up child by child, or None when they do."""
    if c_node is None or type(c) is not type(r):
        return Problem(path, [f"candidate returned {_type_name(c)}, reference {_type_name(r)}"])
    if c_node.keys == r_node.keys:
        return None
    if isinstance(r, Mapping):
        missing = [k for k in r if k not in c]
        extra = [k for k in c if k not in r]
        parts = ([f"missing keys {missing}"] if missing else []) + ([f"extra keys {extra}"] if extra else [])
        return Problem(path, [f"candidate {type(r).__name__} has {'; '.join(parts) or 'its keys in another order'}"])
    if len(c_node.keys) != len(r_node.keys):
        return Problem(path, [f"candidate returned {len(c_node.keys)} items, reference {len(r_node.keys)}"])
    return Problem(path, [f"candidate {type(r).__name__} has fields {list(c_node.keys)}, reference {list(r_node.keys)}"])


def pair(candidate: Any, reference: Any, path: str) -> tuple[list[Leaf], list[Problem]]:
    """Pair the leaves of two outputs; structural and metadata differences become problems."""
    leaves: list[Leaf] = []
    problems: list[Problem] = []
    _walk(candidate, reference, path, leaves, problems)
    return leaves, problems


def _walk(c: Any, r: Any, p: str, leaves: list[Leaf], problems: list[Problem]) -> None:
    """:func:`pair`'s recursion (a module function: a nested one that calls
    itself is a reference cycle, which would keep the outputs and their
    autograd graphs alive until the garbage collector's next full pass)."""
    import torch

    if isinstance(r, torch.Tensor):
        if not isinstance(c, torch.Tensor):
            problems.append(Problem(p, [f"candidate returned {_type_name(c)}, reference a tensor ({describe_tensor(r)})"]))
            return
        problem = _metadata_problem(c, r, p)
        if problem is not None:
            problems.append(problem)
            return
        kind = "float" if (r.dtype.is_floating_point or r.dtype.is_complex) else "exact"
        leaves.append(Leaf(p, c, r, kind))
        return
    r_node = tree.node(r)
    if r_node is not None:
        problem = _container_problem(c, r, tree.node(c), r_node, p)
        if problem is not None:
            problems.append(problem)
            return
        c_node = tree.node(c)
        assert c_node is not None
        for key, ci, ri in zip(r_node.keys, c_node.children, r_node.children, strict=True):
            _walk(ci, ri, p + key, leaves, problems)
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


def _broadcastable(a: torch.Size, b: torch.Size) -> bool:
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y and x != 1 and y != 1:
            return False
    return True


def index_leaves(obj: Any, path: str) -> dict[str, Any]:
    """path -> leaf of a nested output, with :func:`pair`'s paths."""
    return dict(tree.leaves(obj, path))


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
