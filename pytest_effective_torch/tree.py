"""The one walker of nested values: inputs, outputs, copies, snapshots and gradients.

Built on ``torch.utils._pytree``, so every container torch knows is walked the
same way everywhere: tuples, lists, dicts (``OrderedDict``, ``defaultdict``),
namedtuples, torch's structseqs (``torch.return_types.max``) and user classes
registered as pytree nodes. Dataclass instances count as containers of their
fields whether or not they are registered (pytree treats unregistered ones as
leaves, which would hide the tensors inside). Tensors are always leaves.

Paths read like the Python that reaches the value: ``[0]['logits'].scale``.
Everything else in the package walks values through this module.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Values compared by value in snapshots (everything else that is no
#: container counts by identity).
_PLAIN = (int, float, complex, str, bytes, bool, type(None))


@dataclass(frozen=True)
class Node:
    """One container, one level deep: its type, the keys of its children, its children."""

    type: type
    keys: tuple[str, ...]
    children: tuple[Any, ...]
    #: Rebuilds a container of this kind from new children (same order).
    rebuild: Callable[[list[Any]], Any]


_TENSOR: type | None = None  # torch.Tensor, once a walk needs it (importing torch is slow)


def _is_tensor(value: Any) -> bool:
    global _TENSOR
    if _TENSOR is None:
        import torch

        _TENSOR = torch.Tensor
    return isinstance(value, _TENSOR)


def _dataclass_node(value: Any) -> Node:
    names = [f.name for f in dataclasses.fields(value)]

    def rebuild(children: list[Any]) -> Any:
        # copy + setattr keeps init=False fields and skips __post_init__,
        # which may validate or derive (the value is a copy, not a new object).
        new = copy.copy(value)
        for name, child in zip(names, children, strict=True):
            object.__setattr__(new, name, child)
        return new

    return Node(
        type(value), tuple(f".{n}" for n in names), tuple(getattr(value, n) for n in names), rebuild
    )


class _ChildrenAreLeaves:
    """``is_leaf`` for a one-level flatten: everything but ``root``."""

    __slots__ = ("root",)

    def __init__(self, root: Any) -> None:
        self.root = root

    def __call__(self, x: Any) -> bool:
        return x is not self.root


def node(value: Any) -> Node | None:
    """``value`` as a container one level deep, or None when it is a leaf."""
    if _is_tensor(value):
        return None
    import torch.utils._pytree as pytree

    # Every child of ``value`` counts as a leaf here: one level, not the tree.
    children_only = _ChildrenAreLeaves(value)
    try:
        pairs, spec = pytree.tree_flatten_with_path(value, is_leaf=children_only)
    finally:
        # torch's flatten recurses through a nested function, a reference
        # cycle that keeps ``is_leaf`` until a full garbage collection: it
        # must not keep ``value`` (outputs and their autograd graphs) too.
        children_only.root = None
    if spec.is_leaf():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _dataclass_node(value)
        return None
    keys = tuple(pytree.keystr(path) for path, _ in pairs)
    return Node(
        type(value),
        keys,
        tuple(child for _, child in pairs),
        lambda children: pytree.tree_unflatten(children, spec),
    )


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf, depth first, in the containers' own order."""
    here = node(value)
    if here is None:
        yield path, value
        return
    for key, child in zip(here.keys, here.children, strict=True):
        yield from leaves(child, path + key)


def tensors(value: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """``(path, tensor)`` for every tensor inside ``value``."""
    if _is_tensor(value):  # the common case, without the walk
        return [(path, value)]
    return [(p, leaf) for p, leaf in leaves(value, path) if _is_tensor(leaf)]


def map_tensors(value: Any, fn: Callable[[Any], Any], memo: dict[int, Any] | None = None) -> Any:
    """``value`` with ``fn(t)`` in place of every tensor ``t``; containers are new objects.

    A tensor that appears twice is mapped once, so shared tensors stay shared
    (pass one ``memo`` to keep sharing across several values).
    """
    memo = {} if memo is None else memo
    if _is_tensor(value):
        if id(value) not in memo:
            memo[id(value)] = (fn(value), value)  # the original is kept so its id stays unique
        return memo[id(value)][0]
    here = node(value)
    if here is None:
        return value
    return here.rebuild([map_tensors(child, fn, memo) for child in here.children])


# ------------------------------------------------------------ snapshots


@dataclass(frozen=True)
class Shape:
    """What a caller holding a container sees: its kind, its keys, and its leaves' identities."""

    type: type | str
    keys: tuple[str, ...] = ()
    children: tuple[Any, ...] = ()
    value: Any = None
    #: a mapping's own keys (``keys`` holds their path strings)
    mapping_keys: tuple[Any, ...] | None = None


def shape(value: Any) -> Shape:
    """A snapshot of ``value``'s containers: tensors and other objects by identity, plain values by value.

    Compare two snapshots of the same object with :func:`shape_change` to
    see whether a call added, removed or replaced anything inside it.
    """
    here = node(value)
    if here is not None:
        keys = tuple(value.keys()) if isinstance(value, Mapping) else None
        return Shape(here.type, here.keys, tuple(shape(c) for c in here.children), mapping_keys=keys)
    if _is_tensor(value):
        return Shape("tensor", value=id(value))
    if isinstance(value, _PLAIN):
        return Shape("value", value=(type(value), value))
    return Shape("object", value=id(value))


def shape_change(before: Shape, after: Shape, path: str, *, top: bool = True) -> str | None:
    """How the containers at ``path`` changed between two :func:`shape` snapshots, or None."""
    if before == after:
        return None
    if before.type == after.type and isinstance(before.type, type):
        where = "" if top else f"{path}: "
        name = before.type.__name__
        if before.keys != after.keys:
            if before.mapping_keys is not None and after.mapping_keys is not None:
                gained = [k for k in after.mapping_keys if k not in before.mapping_keys]
                lost = [k for k in before.mapping_keys if k not in after.mapping_keys]
                if not gained and not lost:
                    return f"{path}: keys reordered"
                parts = [f"gained keys {gained}"] if gained else []
                parts += [f"lost keys {lost}"] if lost else []
                return f"{where}{name} {' and '.join(parts)}"
            return f"{where}{name} had {len(before.keys)} items, now {len(after.keys)}"
        for key, b, a in zip(before.keys, before.children, after.children, strict=True):
            change = shape_change(b, a, path + key, top=False)
            if change:
                return change
    if before.type == "value" and after.type == "value":
        return f"{path} was {before.value[1]!r}, now {after.value[1]!r}"
    return f"{path} was replaced by another object"
