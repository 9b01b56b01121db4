"""gradcheck: torch.autograd.gradcheck and gradgradcheck, on float64 copies, with a readable verdict.

torch's own failure message dumps whole Jacobians. Here a failure names the
input, the output and the single worst Jacobian entry (numerical against
analytical, central differences computed here), which is what one needs to
find the bug in a backward formula.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import tree
from ..errors import CheckFailed, gradient_hint, with_context
from ..formatting import fmt
from ..inputs import (
    Args,
    Inputs,
    Maker,
    arg_items,
    arg_label,
    build,
    check_argument_keys,
    check_named_arguments,
    map_args,
)
from .bounds import unravel
from .options import check_callable, check_device, check_inputs, check_seed

if TYPE_CHECKING:
    import torch

_DOUBLE_BACKWARD_HINTS = ("double backward", "differentiate twice", "once_differentiable")


@dataclass
class GradcheckReport:
    """What a passing :func:`gradcheck` checked."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    gradgrad: bool = True
    dtype: str = "float64"
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        order = "first and second derivatives" if self.gradgrad else "first derivatives"
        lines = [
            f"{order} of {len(self.outputs)} output(s) with respect to {', '.join(self.inputs)} "
            f"checked on {self.dtype} copies of the inputs"
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


class _Flat:
    """fn as a function of a flat tuple of differentiable float64 tensors."""

    def __init__(self, fn: Any, args: Args, module: Any) -> None:

        self.fn = fn
        self.module = module
        self.args = args
        self.names: list[str] = []
        self.tensors: list[torch.Tensor] = []
        # Where each differentiable tensor goes: (top-level key, path inside)
        for key, value in arg_items(args):
            for sub, t in tree.tensors(value):
                differentiable = (t.dtype.is_floating_point or t.dtype.is_complex) and t.requires_grad
                if differentiable and not any(t is u for u in self.tensors):
                    self.names.append(arg_label(key) + sub)
                    self.tensors.append(t)
        self.param_names: list[str] = []
        if module is not None:
            for name, p in module.named_parameters():
                if p.requires_grad:
                    self.param_names.append(name)
                    self.names.append(f"parameter {name}")
                    self.tensors.append(p.detach().clone().requires_grad_(True))
        self.n_inputs = len(self.tensors) - len(self.param_names)
        self.output_names: list[str] = []

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        new = {id(old): t for old, t in zip(self.tensors[: self.n_inputs], tensors[: self.n_inputs], strict=False)}
        substituted = map_args(self.args, lambda t: new.get(id(t), t))
        args, kwargs = substituted.args, substituted.kwargs
        if self.module is not None:
            from torch.func import functional_call

            params = dict(zip(self.param_names, tensors[self.n_inputs :], strict=False))
            out = functional_call(self.module, params, tuple(args), kwargs)
        else:
            out = self.fn(*args, **kwargs)
        pairs = [(path, t) for path, t in tree.tensors(out, "output") if t.dtype.is_floating_point or t.dtype.is_complex]
        self.output_names = [p for p, _ in pairs]
        return tuple(t for _, t in pairs)


def _numerical_jacobian(f: Callable[..., tuple[Any, ...]], xs: list[Any], i: int, eps: float) -> list[Any]:
    """Central differences of every output with respect to ``xs[i]``: one (out, in) matrix per output."""
    import torch

    x = xs[i]
    flat = x.detach().view(-1)
    columns: list[list[Any]] = []
    def poke(k: int, value: float) -> None:
        with torch.no_grad():  # in-place on a leaf that requires grad
            flat[k] = value

    # f itself runs with grad enabled: for second derivatives f calls autograd.
    for k in range(flat.numel()):
        orig = flat[k].item()
        poke(k, orig + eps)
        plus = [o.detach().reshape(-1).clone() for o in f(*xs)]
        poke(k, orig - eps)
        minus = [o.detach().reshape(-1).clone() for o in f(*xs)]
        poke(k, orig)
        columns.append([(p - m) / (2 * eps) for p, m in zip(plus, minus, strict=False)])
    n_out = len(columns[0]) if columns else 0
    return [torch.stack([col[j] for col in columns], dim=1) if columns else None for j in range(n_out)]


def _analytical_jacobian(f: Callable[..., tuple[Any, ...]], xs: list[Any], i: int) -> list[Any]:
    import torch

    outs = f(*xs)
    mats = []
    for o in outs:
        rows = []
        flat = o.reshape(-1)
        for k in range(flat.numel()):
            if not flat.requires_grad:
                rows.append(torch.zeros(xs[i].numel(), dtype=xs[i].dtype, device=xs[i].device))
                continue
            (g,) = torch.autograd.grad(flat[k], xs[i], retain_graph=True, allow_unused=True)
            rows.append(torch.zeros(xs[i].numel(), dtype=xs[i].dtype, device=xs[i].device) if g is None else g.reshape(-1))
        mats.append(torch.stack(rows) if rows else torch.zeros(0, xs[i].numel(), dtype=xs[i].dtype))
    return mats


def _unravel(flat: int, shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, unravel(flat, shape))) + "]" if shape else ""


def _worst_entry(
    f: Callable[..., tuple[Any, ...]],
    xs: list[Any],
    in_names: list[str],
    out_names: list[str],
    *,
    eps: float,
    atol: float,
    rtol: float,
) -> str | None:
    """Describe the Jacobian entry furthest outside atol + rtol * |numerical|, or None."""
    worst: tuple[float, str] | None = None
    outs = f(*xs)
    out_shapes = [tuple(o.shape) for o in outs]
    names = list(out_names)
    for i, x in enumerate(xs):
        if not getattr(x, "requires_grad", False) or x.dtype.is_complex:
            continue
        num = _numerical_jacobian(f, xs, i, eps)
        ana = _analytical_jacobian(f, xs, i)
        for j, (n, a) in enumerate(zip(num, ana, strict=False)):
            if n is None or n.numel() == 0:
                continue
            diff = (n - a).abs()
            bound = atol + rtol * n.abs()
            excess = diff / bound
            flat = int(excess.reshape(-1).argmax())
            ratio = float(excess.reshape(-1)[flat])
            if not math.isfinite(ratio):
                ratio = math.inf
            row, col = divmod(flat, n.shape[1])
            out_name = names[j] if j < len(names) else f"output {j}"
            text = (
                f"worst Jacobian entry d {out_name}{_unravel(row, out_shapes[j])} / "
                f"d {in_names[i]}{_unravel(col, tuple(x.shape))}: numerical {fmt(float(n[row, col]))}, "
                f"analytical {fmt(float(a[row, col]))} (|difference| {float(diff[row, col]):.3g} > "
                f"atol {atol:g} + rtol {rtol:g} * |numerical|)"
            )
            if ratio > 1 and (worst is None or ratio > worst[0]):
                worst = (ratio, text)
    return worst[1] if worst else None


def _validated(
    fn: Any, inputs: Any, check_gradgrad: Any, seed: Any, device: Any, **numbers: Any
) -> tuple[torch.device | None, int]:
    """The device (None: the inputs' own) and seed, after checking every argument."""
    import torch

    check_callable("fn", fn)
    check_inputs(inputs)
    if not isinstance(check_gradgrad, bool):
        raise TypeError(f"check_gradgrad must be True or False, got {check_gradgrad!r}")
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    dev = check_device(device)
    if dev is not None and dev.type == "mps":
        dev = torch.device("cpu")  # no float64 on MPS
    return dev, check_seed(seed)


def gradcheck(
    fn: Callable[..., Any],
    inputs: Inputs,
    *,
    device: torch.device | str | None = None,
    seed: int | None = None,
    check_gradgrad: bool = True,
    no_grad: Iterable[int | str] | int | str = (),
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    nondet_tol: float = 0.0,
    _rerun: str | None = None,
) -> GradcheckReport:
    """Check ``fn``'s gradients (and second derivatives) against finite differences, in float64.

    Floating inputs are copied to float64 (a builder's ``make`` draws
    float64 directly), so a float32 op is not failed for float32's own
    rounding. An ``nn.Module`` is copied to float64 and its parameters are
    checked too. On failure, :class:`CheckFailed` names the input, the
    output and the worst Jacobian entry. Pass ``check_gradgrad=False`` for
    code that cannot be differentiated twice (e.g. torch.compile'd), and
    ``no_grad=`` to name arguments that are not differentiated (positions or
    keyword names: running statistics, constant tables).

    >>> import torch
    >>> from pytest_effective_torch import gradcheck
    >>> print(gradcheck(torch.tanh, lambda make: (make(3, 4),)))
    first and second derivatives of 1 output(s) with respect to input 0 checked on float64 copies of the inputs
    """
    __tracebackhide__ = True
    import torch

    try:
        dev, seed = _validated(fn, inputs, check_gradgrad, seed, device, eps=eps, atol=atol, rtol=rtol, nondet_tol=nondet_tol)
        constants = check_argument_keys("no_grad", no_grad)
    except (TypeError, ValueError) as exc:
        raise exc.with_traceback(None) from None  # the caller's line, not the validators' frames
    rerun = _rerun or f"rerun: gradcheck(fn, inputs, device={str(dev or 'cpu')!r}, seed={seed})"

    def to64(t: torch.Tensor) -> torch.Tensor:
        target = dev or t.device
        if t.dtype.is_complex:
            return t.detach().to(device=target, dtype=torch.complex128).clone().requires_grad_(True)
        if t.dtype.is_floating_point:
            return t.detach().to(device=target, dtype=torch.float64).clone().requires_grad_(True)
        return t.detach().to(device=target)

    with torch.no_grad():
        raw = build(
            inputs,
            Maker(dev or "cpu", torch.float64, seed),
            context=f"effective-torch: while building the gradcheck inputs (seed={seed})\n{rerun}",
        )
    args = map_args(raw, to64)
    try:
        check_named_arguments(args, no_grad=constants)
    except ValueError as exc:
        raise exc.with_traceback(None) from None
    for key, value in arg_items(args):
        if key in constants:
            for _, t in tree.tensors(value):
                t.requires_grad_(False)

    module = None
    if isinstance(fn, torch.nn.Module):
        module = copy.deepcopy(fn).to(device=dev or "cpu", dtype=torch.float64)
    flat = _Flat(fn, args, module)
    xs = list(flat.tensors)
    report = GradcheckReport(inputs=list(flat.names), gradgrad=check_gradgrad)
    if not xs:
        raise ValueError("gradcheck needs at least one floating tensor input (or parameter) to differentiate")
    shapes = "; ".join(f"{n}: {tuple(x.shape)}" for n, x in zip(flat.names, xs, strict=False))
    context = f"effective-torch: while running fn in gradcheck on float64 copies (seed={seed}); inputs: {shapes}\n{rerun}"

    try:
        outs = flat(*xs)
    except Exception as exc:
        with_context(exc, context + gradient_hint(exc, outputs_only=False))
    report.outputs = list(flat.output_names)
    if not outs:
        raise ValueError("gradcheck: fn returned no floating tensor to differentiate")
    kwargs = {"eps": eps, "atol": atol, "rtol": rtol, "nondet_tol": nondet_tol, "raise_exception": True}

    from torch.autograd.gradcheck import GradcheckError

    try:
        torch.autograd.gradcheck(flat, tuple(xs), **kwargs)
    except GradcheckError as exc:
        worst = _worst_entry(flat, xs, flat.names, flat.output_names, eps=eps, atol=atol, rtol=rtol)
        first = str(exc).strip().splitlines()[0]
        lines = ["gradcheck failed: analytical gradient (backward) differs from finite differences (float64)"]
        lines.append(f"  {worst}" if worst else f"  torch says: {first}")
        lines += [f"  inputs: {shapes}", rerun]
        raise CheckFailed("\n".join(lines)) from None
    except Exception as exc:
        with_context(exc, context)

    if check_gradgrad:
        try:
            torch.autograd.gradgradcheck(flat, tuple(xs), **kwargs)
        except GradcheckError as exc:
            worst = _second_order_worst(flat, xs, seed, eps=eps, atol=atol, rtol=rtol)
            first = str(exc).strip().splitlines()[0]
            lines = ["gradgradcheck failed: second derivatives (backward of backward) differ from finite differences (float64)"]
            lines.append(f"  {worst}" if worst else f"  torch says: {first}")
            lines += [f"  inputs: {shapes}", "  (pass check_gradgrad=False if second derivatives are not needed)", rerun]
            raise CheckFailed("\n".join(lines)) from None
        except Exception as exc:
            text = str(exc)
            if any(h in text for h in _DOUBLE_BACKWARD_HINTS):
                raise CheckFailed(
                    "gradgradcheck: fn cannot be differentiated twice: "
                    f"{text.strip().splitlines()[0]}\n"
                    "  If second derivatives are not needed (e.g. torch.compile'd code), pass "
                    f"check_gradgrad=False.\n{rerun}"
                ) from None
            with_context(exc, context)
    if module is not None:
        report.notes.append(f"parameters checked: {', '.join(flat.param_names) or 'none'}")
    return report


def _second_order_worst(flat: _Flat, xs: list[Any], seed: int, *, eps: float, atol: float, rtol: float) -> str | None:
    """The worst entry of the Jacobian of (inputs, cotangents) -> input gradients."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    outs = flat(*xs)
    cots = [
        torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device).requires_grad_(True) for o in outs
    ]
    n = len(xs)
    out_names = [f"grad of {name}" for name in flat.names]

    def g(*ts: Any) -> tuple[Any, ...]:
        o = flat(*ts[:n])
        grads = torch.autograd.grad(o, ts[:n], ts[n:], create_graph=True, allow_unused=True)
        return tuple(torch.zeros_like(x) if gr is None else gr for gr, x in zip(grads, ts[:n], strict=False))

    names = list(flat.names) + [f"cotangent of {name}" for name in flat.output_names]
    try:
        return _worst_entry(g, [*xs, *cots], names, out_names, eps=eps, atol=atol, rtol=rtol)
    except Exception:
        return None
