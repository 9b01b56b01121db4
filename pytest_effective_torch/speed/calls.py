"""The calls a speed comparison times, by mode: forward, backward, or full (forward plus backward).

``backward`` times the backward pass alone, as kernel authors' benchmarks
do: one forward call builds the graph, outside the timed region, and every
timed call runs backward through it again (``retain_graph=True``) with
the gradients reset to None first, as ``zero_grad`` does.

Each side is called once before timing, so a crash is reported as a crash
with context (not as a timing), and the first call's cost (compilation,
autotuning, lazy initialisation) is measured and reported apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import tree
from ..formatting import callable_name, dtype_name
from ..inputs import Args, input_tensors, map_args
from .clocks import synchronize, time_once

#: What ``mode=`` accepts, and what the result's ``measured`` says for each.
MODES = {"forward": "forward", "backward": "backward", "full": "forward+backward"}


class BackwardMisuse(Exception):
    """A backward mode where it cannot apply: re-raised as a plain ValueError."""


def shapes(args: Args) -> str:
    """``(4, 10) float32, dim=int``: the arguments as a crash message shows them."""
    import torch

    def one(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return f"{tuple(value.shape)} {dtype_name(value.dtype)}"
        found = tree.tensors(value)
        if found:
            return type(value).__name__ + "(" + ", ".join(f"{p}: {tuple(t.shape)}" for p, t in found[:4]) + ")"
        return type(value).__name__

    parts = [one(v) for v in args.args] + [f"{k}={one(v)}" for k, v in args.kwargs.items()]
    return ", ".join(parts)


def with_grad_leaves(args: Args, no_grad: frozenset[int | str] = frozenset()) -> tuple[Args, list[Any]]:
    """``args`` with every floating tensor (nested ones too) replaced by a copy that requires grad.

    The arguments ``no_grad`` names are left as they are.
    """
    leaves: list[Any] = []

    def leaf(t: Any) -> Any:
        if t.is_floating_point() or t.is_complex():
            copy = t.detach().clone().requires_grad_(True)
            leaves.append(copy)
            return copy
        return t

    return map_args(args, leaf, skip=no_grad), leaves


def make_call(
    fn: Callable[..., Any], args: Args, mode: str, role: str, device: Any, no_grad: frozenset[int | str] = frozenset()
) -> tuple[Callable[[], Any], float]:
    """The callable that is timed in ``mode`` (see :data:`MODES`), and the
    seconds its first call took.

    In the backward modes the first call (forward and backward) is also the
    probe that checks an output requires grad, so its cost (where
    torch.compile compiles, lazy modules initialise) is the one reported as
    first call.
    """
    __tracebackhide__ = True
    what = "backward=True" if mode == "full" else f"mode={mode!r}"
    if mode == "forward":

        def forward() -> Any:
            __tracebackhide__ = True
            return fn(*args.args, **args.kwargs)

        return forward, time_once(forward, device)

    import torch

    grad_args, leaves = with_grad_leaves(args, no_grad)
    if not leaves:
        raise BackwardMisuse(
            f"{what} needs at least one floating-point tensor among the inputs; "
            f"got ({shapes(args)})"
        )
    params = list(fn.parameters()) if isinstance(fn, torch.nn.Module) else []
    cleared = leaves + params

    def outputs_requiring_grad() -> list[Any]:
        out = fn(*grad_args.args, **grad_args.kwargs)
        return [t for _, t in tree.tensors(out) if t.requires_grad]

    synchronize(device)
    start = time.perf_counter()
    probe = outputs_requiring_grad()
    if not probe:
        raise BackwardMisuse(
            f"{what} but no output of the {role} ({callable_name(fn)}) requires grad; "
            "is it computed under torch.no_grad() or detached?"
        )
    grad_outputs = [torch.ones_like(t) for t in probe]
    torch.autograd.backward(probe, grad_outputs, retain_graph=mode == "backward")
    synchronize(device)
    first = time.perf_counter() - start

    if mode == "backward":
        kept = probe  # the graph every timed call runs backward through

        def backward_only() -> Any:
            __tracebackhide__ = True
            for tensor in cleared:
                tensor.grad = None
            torch.autograd.backward(kept, grad_outputs, retain_graph=True)

        return backward_only, first
    del probe

    def forward_backward() -> Any:
        __tracebackhide__ = True
        for tensor in cleared:
            tensor.grad = None
        torch.autograd.backward(outputs_requiring_grad(), grad_outputs)

    return forward_backward, first


def first_device(args: Args) -> Any:
    """The device of the first tensor argument (nested ones too); the CPU without one."""
    import torch

    found = input_tensors(args)
    return found[0][2].device if found else torch.device("cpu")
