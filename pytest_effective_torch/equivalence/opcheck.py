"""``torch.library.opcheck`` for candidates that are custom ops.

A kernel registered with ``torch.library`` (a ``CustomOpDef`` from
``@torch.library.custom_op``, or an ``OpOverload``/``OpOverloadPacket``
from ``torch.ops``) must also be registered correctly for torch.compile to
trace it: a schema that matches what it does, an autograd formula where
it is differentiated, a fake (meta) implementation. ``opcheck`` tests those
on real inputs; the equivalence check runs it on the inputs of its first
trials and reports each failed opcheck test as one problem, named by test.

Results are cached per op and input signature: torch's first opcheck in a
process costs about 2 s (imports), later ones a few hundredths.
"""

from __future__ import annotations

from typing import Any

from ..inputs import Args, input_tensors, map_args
from .copies import clone_layout
from .report import Problem

#: opcheck runs on the inputs of this many trials of a check (the first ones).
OPCHECK_TRIALS = 2

_CACHE: dict[tuple[Any, ...], list[Problem]] = {}


def is_custom_op(fn: Any) -> bool:
    """True for a ``torch.library`` custom op: CustomOpDef, OpOverload or OpOverloadPacket."""
    import torch

    kinds: list[type] = [torch._ops.OpOverload, torch._ops.OpOverloadPacket]
    custom_ops = getattr(getattr(torch, "_library", None), "custom_ops", None)
    if custom_ops is not None and hasattr(custom_ops, "CustomOpDef"):
        kinds.append(custom_ops.CustomOpDef)
    return isinstance(fn, tuple(kinds))


def check_opcheck(opcheck: Any, candidate: Any) -> bool:
    """``opcheck=`` resolved: None means "when the candidate is a custom op"."""
    if opcheck is None:
        return is_custom_op(candidate)
    if not isinstance(opcheck, bool):
        raise TypeError(f"opcheck must be True, False or None (automatic), got {opcheck!r}")
    if opcheck and not is_custom_op(candidate):
        raise ValueError(
            "opcheck=True needs a torch.library custom op as the candidate (a function decorated "
            "with @torch.library.custom_op, or torch.ops.<namespace>.<op>); got "
            f"{type(candidate).__name__}"
        )
    return opcheck


def op_name(op: Any) -> str:
    """``mylib::scale`` for any of the three kinds."""
    for attr in ("_qualname", "_qualified_op_name"):
        name = getattr(op, attr, None)
        if isinstance(name, str):
            return name
    schema = getattr(op, "_schema", None)
    return str(getattr(schema, "name", None) or op)


def _signature(args: Args) -> tuple[Any, ...]:
    return tuple(
        (str(key), tuple(t.shape), t.stride(), t.dtype, str(t.device), t.requires_grad)
        for key, _, t in input_tensors(args)
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def opcheck_problems(op: Any, pristine: Args) -> list[Problem]:
    """One problem per opcheck test that fails on copies of ``pristine``.

    The copies require grad where ``pristine``'s tensors do (with
    ``check_grad``, every floating input that ``no_grad`` does not name):
    opcheck then also checks the autograd registration and the backward
    under AOT dispatch. With ``check_grad=False`` none does, so an op
    without an autograd formula can pass.
    """
    import torch

    def copy(t: torch.Tensor) -> torch.Tensor:
        return clone_layout(t.detach()).requires_grad_(t.requires_grad)

    args = map_args(pristine, copy)
    check_grad = any(t.requires_grad for _, _, t in input_tensors(args))
    key = (op_name(op), _signature(args), check_grad)
    if key in _CACHE:
        return list(_CACHE[key])
    try:
        results = torch.library.opcheck(op, tuple(args.args), dict(args.kwargs), raise_exception=False)
    except Exception as exc:  # opcheck itself could not run on these arguments
        problems = [Problem("opcheck", [f"torch.library.opcheck could not run: {type(exc).__name__}: {_first_line(exc)}"])]
    else:
        problems = [
            Problem(f"opcheck {test}", [_first_line(outcome) if isinstance(outcome, BaseException) else str(outcome)])
            for test, outcome in results.items()
            if outcome != "SUCCESS"
        ]
    if problems:
        problems[-1].lines.append(
            f"torch.library.opcheck({op_name(op)}) on this trial's inputs"
            + (" (requiring grad; no_grad= keeps arguments out, check_grad=False checks without)" if check_grad else " (not requiring grad)")
            + "; opcheck=False turns this check off"
        )
    _CACHE[key] = problems
    return list(problems)
