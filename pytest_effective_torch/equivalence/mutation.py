"""Inputs a call changed in place: containers, tensor values, version counters.

Before a call, :func:`snapshot` records every argument's containers and its
tensors' version counters; afterwards :func:`mutation_problems` compares the
arguments with that snapshot and with an untouched copy of their values.
"""

from __future__ import annotations

from .. import tree
from ..inputs import Args, arg_items, arg_label
from .copies import is_float, same_values
from .report import Problem

#: Per argument: its container snapshot and its tensors' version counters.
Snapshot = dict[int | str, tuple[tree.Shape, list[int]]]


def snapshot(args: Args) -> Snapshot:
    return {
        key: (tree.shape(value), [t._version for _, t in tree.tensors(value)])
        for key, value in arg_items(args)
    }


def mutation_problems(
    after: Args, before: Args, taken: Snapshot, allowed: frozenset[int | str]
) -> list[Problem]:
    """A problem per argument (not in ``allowed``) that the call changed.

    ``taken`` is :func:`snapshot` of ``after`` from before the call; ``before``
    holds the values the arguments had then.
    """
    import torch

    problems = []
    before_values = dict(arg_items(before))
    for key, value in arg_items(after):
        if key in allowed:
            continue
        shape, versions = taken[key]
        label = arg_label(key)
        declare = f"declare it with mutates=({key!r},) if that is intended"
        change = tree.shape_change(shape, tree.shape(value), label)
        if change is not None:
            # Items were added, removed or replaced: what the caller holds
            # changed, and the tensors no longer pair up with the originals.
            problems.append(Problem(label, [f"candidate modified {label} in place ({change}); {declare}"]))
            continue
        pairs = zip(tree.tensors(value), tree.tensors(before_values[key]), versions, strict=True)
        for (sub, t_after), (_, t_before), version in pairs:
            bumped = t_after._version != version
            a, b = t_after.detach(), t_before.detach()
            changed = not same_values(a, b)
            if not (bumped or changed):
                continue
            details = []
            if changed:
                differ = ~((a == b) | (torch.isnan(a) & torch.isnan(b))) if is_float(a) else a != b
                details.append(f"values changed at {int(differ.sum())} of {a.numel()} elements")
            if bumped:
                details.append(f"in-place version counter {version} -> {t_after._version}")
            path = label + sub
            problems.append(Problem(path, [f"candidate modified {path} in place ({'; '.join(details)}); {declare}"]))
            break
    return problems

