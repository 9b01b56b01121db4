"""Gradients: the same seeded cotangent through all three sides, judged like outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import gradient_hint, with_context
from ..inputs import Args, derive_seed, input_tensors
from .compare import Leaf, pair
from .conditioning import gradient_leaves
from .copies import Reused, cotangent, is_float
from .judge import Judge
from .plan import STRIDED_COTANGENTS, Trial, noncontiguous_copy
from .report import EquivalenceReport, Problem
from .sides import Sides

if TYPE_CHECKING:
    import torch


class Gradients:
    """The gradient half of a check: one seeded cotangent through all three sides, judged like outputs."""

    def __init__(
        self,
        sides: Sides,
        judge: Judge,
        report: EquivalenceReport,
        param_map: Any,
        context: Callable[[str, Trial, int, Args | None], str],
        reused: Reused | None = None,
    ) -> None:
        self.cand = sides.candidate
        self.ref = sides.reference
        self.truth = sides.truth
        self.judge = judge
        self.report = report
        self.param_map = param_map
        self.context = context
        self.reused = reused if reused is not None else Reused()

    def problems(
        self,
        trial: Trial,
        total: int,
        leaves: list[Leaf],
        truth_index: dict[str, Any],
        cand_args: Args,
        ref_args: Args,
        truth_args: Args | None,
    ) -> list[Problem]:
        """Every gradient problem of one trial (inputs' and parameters' gradients)."""
        __tracebackhide__ = True
        import torch

        problems: list[Problem] = []
        float_leaves = gradient_leaves(leaves)
        if not float_leaves:
            return problems
        cots = [
            cotangent(leaf.reference, derive_seed(trial.seed, "cotangent", k), self._cotangent_buffer(k, leaf.reference))
            for k, leaf in enumerate(float_leaves)
        ]
        if trial.noncontiguous:
            # The layout trial's cotangents are strided too: autograd hands a
            # backward whatever layout the next op's gradient has (an
            # expanded scalar after .sum(), a transpose), and a kernel that
            # reads its incoming gradient as if contiguous is wrong there.
            cots = [noncontiguous_copy(c) for c in cots]
        inputs_c = [(p, t) for _, p, t in input_tensors(cand_args) if t.requires_grad]
        inputs_r = [(p, t) for _, p, t in input_tensors(ref_args) if t.requires_grad]

        def grads(side: str, outs: list[Any], ins: list[torch.Tensor], dtype_cast: torch.dtype | None, args: Args | None) -> list[Any]:
            pairs = [
                (o, g if dtype_cast is None else self._cast(k, g, o))
                for k, (o, g) in enumerate(zip(outs, cots, strict=False))
                if isinstance(o, torch.Tensor) and o.requires_grad
            ]
            if not pairs or not ins:
                return [None] * len(ins)
            try:
                return list(
                    torch.autograd.grad(
                        [o for o, _ in pairs], ins, [g for _, g in pairs], allow_unused=True
                    )
                )
            except Exception as exc:
                with_context(
                    exc,
                    self.context(f"computing gradients of the {side} (backward)", trial, total, args)
                    + (f"\n{STRIDED_COTANGENTS}" if trial.noncontiguous else "")
                    + gradient_hint(exc),
                )

        cand_params = self.cand.params
        ref_params = self.ref.params
        g_c = grads("candidate", [leaf.candidate for leaf in float_leaves], [t for _, t in inputs_c] + [p for _, p in cand_params], None, cand_args)

        def reference_grads() -> list[Any]:
            return grads("reference", [leaf.reference for leaf in float_leaves], [t for _, t in inputs_r] + [p for _, p in ref_params], None, ref_args)

        n_in = len(inputs_c)
        have_truth = self.truth is not None and bool(truth_index) and truth_args is not None
        # The reference's own gradient is only a yardstick on the slow path
        # (and its None-ness is the truth's, the same function in float64):
        # for functions it is computed when a comparison needs it.
        lazy = have_truth and not cand_params and not ref_params
        g_r: list[Any] = _Lazy(reference_grads, n_in) if lazy else reference_grads()  # type: ignore[assignment]
        if have_truth:
            inputs_t = [t for _, _, t in input_tensors(truth_args) if t.requires_grad]
            truth_outs = [truth_index.get(leaf.path) for leaf in float_leaves]
            g_t = grads("reference on float64 copies", truth_outs, inputs_t + [p for _, p in self.truth.params], torch.float64, truth_args)
            truth_params = self.truth.params
        else:
            g_t = g_r
            truth_params = ref_params

        per_output: list[tuple[float, float]] = []
        reach: list[set[int]] = []

        def output_scales() -> list[tuple[float, float]]:
            # (rms(v) * max|y|, ||v|| * ||y||, numel(y)) per output: the size
            # of what the backward pass pushes around, hence of its rounding
            # noise; the size a gradient of that output normally has; and
            # over how many elements it is pushed.
            if not per_output:
                for leaf, cot in zip(float_leaves, cots, strict=True):
                    y = truth_index.get(leaf.path, leaf.reference)
                    y = y.detach() if isinstance(y, torch.Tensor) else leaf.reference.detach()
                    finite = y[torch.isfinite(y)].double()
                    v = cot.double()
                    peak = float(finite.abs().max()) * float(v.square().mean().sqrt()) if finite.numel() and v.numel() else 0.0
                    per_output.append((peak, float(finite.norm() * v.norm()), float(y.numel())))
                reach.extend(_reachable_leaves([leaf.reference for leaf in float_leaves]))
            return per_output

        def grad_scale_for(ref_leaf: Any) -> Callable[[], tuple[float, float, float]]:
            """The noise scale for one input's gradient: over the outputs that depend on it.

            (rms(v) * max|y| shared out over the input, that is times the
            smaller of 1 and numel(y) / numel(x); ||v|| * ||y||; ||x||), the
            largest over the outputs. A large output the input does not
            reach pushes no rounding noise into its gradient, so it must not
            excuse that gradient. Where the reference's graph does not show
            the input (a custom Function hiding it, say), all outputs count.
            """

            def scale() -> tuple[float, float, float]:
                scales = output_scales()
                mine = [s for s, r in zip(scales, reach, strict=True) if id(ref_leaf) in r] or scales
                known = isinstance(ref_leaf, torch.Tensor)
                size = ref_leaf.numel() if known else 1
                x_norm = float(ref_leaf.detach().double().norm()) if known else 0.0
                share = max((p * min(1.0, n / max(size, 1)) for p, _, n in mine), default=0.0)
                return share, max((m for _, m, _ in mine), default=0.0), x_norm

            return scale

        for (path, _), (_, ref_leaf), gc, gr, gt in zip(
            inputs_c, inputs_r, g_c[:n_in], g_r[:n_in], g_t[:n_in], strict=False
        ):
            self._judge_grad(f"grad of {path}", gc, gr, gt, trial, problems, grad_scale_for(ref_leaf), f"grad of {path}")

        # Parameters, through the parameter map.
        if cand_params or ref_params:
            self._param_grads(
                trial,
                problems,
                dict(zip([n for n, _ in cand_params], g_c[n_in:], strict=False)),
                dict(zip([n for n, _ in ref_params], g_r[len(inputs_r):], strict=False)),
                dict(zip([n for n, _ in truth_params], g_t[len(inputs_r):], strict=False)),
                {n: grad_scale_for(p) for n, p in ref_params},
                grad_scale_for(None),
            )
        return problems

    def _cotangent_buffer(self, k: int, like: torch.Tensor) -> torch.Tensor | None:
        """A reused buffer for output ``k``'s cotangent (large outputs on the CPU only)."""
        if like.device.type != "cpu" or not is_float(like) or not like.is_contiguous():
            return None
        return self.reused.buffer(("cotangent", k), like)

    def _cast(self, k: int, g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Cotangent ``g`` in ``like``'s dtype and device (the truth's), in a reused buffer when large."""
        if g.dtype == like.dtype and g.device == like.device:
            return g
        buf = self.reused.buffer(("cotangent truth", k), like) if like.is_contiguous() else None
        return g.to(device=like.device, dtype=like.dtype) if buf is None else buf.copy_(g)

    def _judge_grad(
        self,
        path: str,
        gc: Any,
        gr: Any,
        gt: Any,
        trial: Trial,
        problems: list[Problem],
        grad_scale: Callable[[], tuple[float, float, float]] | None = None,
        spread_key: str | None = None,
    ) -> None:
        if isinstance(gr, _LazyItem):
            # Gradient metadata is the input's (autograd enforces it); the
            # reference's None-ness is the truth's.
            if gc is None and gt is None:
                return
            if (gc is None) == (gt is None):
                self.judge.values(
                    path, gc, gr, gt, trial, problems, is_output=False, grad_scale=grad_scale, spread_key=spread_key
                )
                return
            gr = gt
        if gc is None and gr is None:
            return
        if (gc is None) != (gr is None):
            side, other = ("candidate", "reference") if gc is None else ("reference", "candidate")
            problems.append(
                Problem(
                    path,
                    [
                        f"gradient is None for the {side} but not for the {other}: the {side}'s "
                        "outputs do not depend on it through autograd (detached, computed under "
                        "no_grad, or not used)"
                        + ("; pass check_grad=False if the reference is not meant to be differentiable" if side == "reference" else ""),
                    ],
                )
            )
            return
        _, structure = pair(gc, gr, path)
        problems += structure
        if structure:
            return
        self.judge.values(
            path, gc, gr, gt if gt is not None else gr, trial, problems,
            is_output=False, grad_scale=grad_scale, spread_key=spread_key if gt is not None else None,
        )  # fmt: skip

    def _param_grads(
        self,
        trial: Trial,
        problems: list[Problem],
        cand: dict[str, Any],
        ref: dict[str, Any],
        truth: dict[str, Any],
        ref_scales: dict[str, Callable[[], tuple[float, float, float]]],
        any_scale: Callable[[], tuple[float, float, float]],
    ) -> None:
        __tracebackhide__ = True
        import torch

        if not cand or not ref:
            which = "candidate" if not cand else "reference"
            self.report.add_note(f"parameter gradients not compared: the {which} has no parameters")
            return
        if self.param_map is None:
            # Parameters both modules name alike (and shape alike) are compared
            # by name; an extra parameter on one side must not switch off the
            # comparison of the shared ones.
            shapes_c = {n: p.shape for n, p in self.cand.params}
            shapes_r = {n: p.shape for n, p in self.ref.params}
            shared = [n for n in cand if n in ref and shapes_c.get(n) == shapes_r.get(n)]
            if not shared:
                self.report.add_note(
                    "parameter gradients not compared: candidate and reference name their parameters "
                    "differently; pass param_map= (candidate name -> reference name, or a callable)"
                )
                return
            expected = {n: ref[n] for n in shared}
            keys = {n: n for n in shared}
            expected_truth = {n: truth.get(n) for n in shared}
            scales = {n: ref_scales[n] for n in shared}
            unmatched = sorted(n for n in ref if n not in expected)
            if unmatched:
                self.report.add_note(
                    f"reference parameter gradients not compared for {unmatched} (no candidate parameter "
                    "of that name and shape; pass param_map= to map them)"
                )
        elif isinstance(self.param_map, Mapping):  # its names were checked before any call
            expected = {c: ref[r] for c, r in self.param_map.items()}
            keys = dict(self.param_map)
            expected_truth = {c: truth.get(r) for c, r in self.param_map.items()}
            scales = {c: ref_scales[r] for c, r in self.param_map.items()}
        else:
            with torch.no_grad():
                expected = dict(self.param_map(ref))
                expected_truth = dict(self.param_map(truth)) if truth is not ref else expected
            scales = {}  # repacked: which reference parameters feed which is unknown
            keys = {}
            unknown = [k for k in expected if k not in cand]
            if unknown:
                raise ValueError(f"param_map returned unknown candidate parameters {unknown}; candidate has {sorted(cand)}")
        for name in cand:
            if name not in expected:
                continue
            self._judge_grad(
                f"grad of parameter {name}", cand[name], expected[name], expected_truth.get(name), trial, problems,
                scales.get(name, any_scale), f"grad of parameter {keys[name]}" if name in keys else None,
            )
        self.report.parameter_gradients_compared = True
        missing = [n for n in cand if n not in expected]
        if missing:
            why = "not in param_map" if self.param_map is not None else "no reference parameter of that name and shape"
            self.report.add_note(f"parameter gradients not compared for {missing} ({why})")



def _reachable_leaves(outputs: list[Any]) -> list[set[int]]:
    """Per output: ids of the leaf tensors its autograd graph reaches (a walk, no compute)."""
    import torch

    out = []
    for o in outputs:
        found: set[int] = set()
        if isinstance(o, torch.Tensor):
            if o.grad_fn is None and o.requires_grad:
                found.add(id(o))  # the output is an input itself
            stack = [o.grad_fn]
            seen: dict[int, Any] = {}  # holds the nodes, so their ids are not reused mid-walk
            while stack:
                node = stack.pop()
                if node is None or id(node) in seen:
                    continue
                seen[id(node)] = node
                variable = getattr(node, "variable", None)
                if variable is not None:
                    found.add(id(variable))
                stack.extend(n for n, _ in node.next_functions)
        out.append(found)
    return out


class _LazyItem:
    """One input's reference gradient, computed (for all inputs at once) when first asked for."""

    def __init__(self, owner: _Lazy, index: int) -> None:
        self.owner = owner
        self.index = index

    def __call__(self) -> Any:
        return self.owner.values()[self.index]


class _Lazy:
    """The reference's gradients, computed on first use."""

    def __init__(self, compute: Callable[[], list[Any]], n: int) -> None:
        self.compute = compute
        self.n = n
        self._values: list[Any] | None = None

    def values(self) -> list[Any]:
        if self._values is None:
            self._values = self.compute()
        return self._values

    def __getitem__(self, index: slice) -> list[_LazyItem]:
        return [_LazyItem(self, i) for i in range(self.n)][index]
