"""The condition-aware allowance: how far rounding the inputs moves the truth.

A correct computation in the working precision is allowed the error that
rounding its inputs to that precision could cause (the backward-error view:
Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 1-3). This
module measures that, per element, for one trial: the truth (the reference
on float64 copies) is run again on inputs perturbed by one unit roundoff of
the working dtype (``x * (1 + u * sign)``, ``u = eps / 2``, random signs;
module parameters too), and its gradients are taken with a cotangent
perturbed the same way. :data:`PERTURBATIONS` reruns, seeded from the
trial's seed; the *spread* of an output or gradient is the largest
``|t_k - t|`` over them, element by element.

It is the slow path: nothing here runs unless a comparison fails the tight
rules (:mod:`.tolerance`), and then once per trial for every output and
gradient together.

The same reruns expose a reference that is not float64-accurate (it
computes in float32 inside and casts back, say): nudged below float32's
resolution, such a reference does not move at all (:meth:`Conditioning.coarse`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..inputs import Args, derive_seed, input_tensors, map_args
from .compare import Leaf, index_leaves
from .copies import cotangent, is_float
from .sides import Side

if TYPE_CHECKING:
    import torch

#: Reruns of the truth on perturbed inputs: the spread is the largest of
#: their distances, so 4 draws see about 1.5 standard deviations of it.
PERTURBATIONS = 4
#: The probe for a reference that computes in float32 inside: a relative
#: nudge of 2**-36, 4096 times below float32's unit roundoff (2**-24) and
#: far above float64's (2**-53).
PROBE = 2.0**-36
#: A reference whose outputs move at no more than this fraction of their
#: finite non-zero elements under the probe computes in float32 (or coarser).
COARSE_MOVED = 0.01


def gradient_leaves(leaves: list[Leaf]) -> list[Leaf]:
    """The output leaves a cotangent is pushed into (floating tensors, not mutated arguments)."""
    import torch

    return [
        leaf
        for leaf in leaves
        if leaf.kind == "float"
        and isinstance(leaf.reference, torch.Tensor)
        and not leaf.path.endswith("after the call")
    ]


def _factor(x: torch.Tensor, relative: float, gen: torch.Generator) -> torch.Tensor:
    """``1 + relative * sign`` with random signs, shaped like ``x``."""
    import torch

    sign = torch.randint(0, 2, x.shape, generator=gen, dtype=torch.int8).to(x.device)
    dtype = x.dtype if (x.is_floating_point() or x.is_complex()) else torch.float64
    return sign.to(dtype).mul_(2 * relative).add_(1 - relative)


def _perturbed(x: torch.Tensor, relative: float, gen: torch.Generator) -> torch.Tensor:
    """``x * (1 + relative * sign)`` as a fresh leaf that requires grad as ``x`` does."""
    return (x.detach() * _factor(x, relative, gen)).requires_grad_(x.requires_grad)


class Conditioning:
    """One trial's perturbed truths, computed on first use and shared by all its comparisons."""

    def __init__(
        self,
        side: Side,
        args: Args,
        leaves: list[Leaf],
        *,
        trial_seed: int,
        rng_seed: int,
        unit: float,
        check_grad: bool,
        context: Callable[[Args], Callable[[str], str]],
    ) -> None:
        self.side = side
        self.args = args
        self.leaves = gradient_leaves(leaves)
        self.paths = [leaf.path for leaf in leaves if leaf.kind == "float"]
        self.trial_seed = trial_seed
        self.rng_seed = rng_seed
        self.unit = unit
        self.check_grad = check_grad
        self.context = context
        self._runs: list[dict[str, torch.Tensor]] | None = None
        self._coarse: bool | None = None
        self._copy: Side | None = None
        self._params: dict[int, torch.Tensor] = {}
        self._buffers: dict[str, torch.Tensor] = {}

    # -- the reruns -----------------------------------------------------------

    def _run(self, relative: float, k: int, *, grads: bool) -> dict[str, torch.Tensor]:
        """The truth's outputs (and gradients) on inputs nudged by ``relative``: path -> tensor."""
        import torch

        gen = torch.Generator().manual_seed(derive_seed(self.trial_seed, "perturb", relative, k))
        args = map_args(self.args, lambda t: _perturbed(t, relative, gen) if is_float(t) else t)
        side = self._side()
        out: dict[str, torch.Tensor] = {}
        with torch.enable_grad():
            with torch.no_grad():
                for _, p in side.params:
                    p.copy_(self._params[id(p)]).mul_(_factor(p, relative, gen))
            result = side.call(args, self.rng_seed, self.context(args))
            index = index_leaves(result, "output")
            for path in self.paths:
                value = index.get(path)
                if isinstance(value, torch.Tensor):
                    out[path] = value.detach()
            if grads:
                out.update(self._grads(side, index, args, relative, gen))
        return out

    def _side(self) -> Side:
        """The side to rerun: a module is copied once (its parameters and buffers, as
        they were before the trial's call changed them, stay with the original, whose
        autograd graph still needs them)."""
        import torch

        if self.side.module is None:
            return self.side
        if self._copy is None:
            module = copy.deepcopy(self.side.module)
            params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
            self._copy = dataclasses.replace(self.side, fn=module, module=module, params=params)
            self._params = {id(p): p.detach().clone() for _, p in params}
            self._buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
        with torch.no_grad():
            for n, b in self._copy.module.named_buffers():
                b.copy_(self._buffers[n])
        return self._copy

    def _grads(
        self, side: Side, index: dict[str, Any], args: Args, relative: float, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        import torch

        pairs = []
        for k, leaf in enumerate(self.leaves):
            y = index.get(leaf.path)
            if not (isinstance(y, torch.Tensor) and y.requires_grad):
                continue
            v = cotangent(leaf.reference, derive_seed(self.trial_seed, "cotangent", k))
            pairs.append((y, _perturbed(v.to(device=y.device, dtype=y.dtype), relative, gen).detach()))
        inputs = [(f"grad of {p}", t) for _, p, t in input_tensors(args) if t.requires_grad]
        inputs += [(f"grad of parameter {n}", p) for n, p in side.params]
        if not pairs or not inputs:
            return {}
        try:
            grads = torch.autograd.grad(
                [y for y, _ in pairs], [t for _, t in inputs], [v for _, v in pairs], allow_unused=True
            )
        except Exception:
            return {}  # a backward that fails on nudged inputs gives no spread; the tight rules stand
        return {path: g.detach() for (path, _), g in zip(inputs, grads, strict=True) if g is not None}

    def _ensure(self) -> list[dict[str, torch.Tensor]]:
        if self._runs is None:
            self._runs = [self._run(self.unit, k, grads=self.check_grad) for k in range(PERTURBATIONS)]
        return self._runs

    # -- what the judge asks --------------------------------------------------

    def spread(self, path: str, t: torch.Tensor) -> torch.Tensor | None:
        """Per element, the largest ``|t_k - t|`` over the perturbed runs (None if unknown)."""
        import torch

        out: torch.Tensor | None = None
        for run in self._ensure():
            tk = run.get(path)
            if tk is None or tk.shape != t.shape:
                return None
            step = (tk.to(device=t.device, dtype=t.dtype) - t).abs()
            step = torch.where(torch.isfinite(step), step, torch.zeros((), dtype=step.dtype, device=step.device))
            out = step if out is None else torch.maximum(out, step, out=out)
        return out

    def coarse(self) -> bool:
        """True when the truth does not move under nudges below float32's resolution.

        A float64-accurate function moves by about ``PROBE`` times its
        condition number; one that rounds its inputs to float32 inside gives
        the same bits, except where an input sits next to a float32 rounding
        boundary. Only finite non-zero output elements count.
        """
        import torch

        if self._coarse is None:
            base = self._run(0.0, 0, grads=False)
            nudged = self._run(PROBE, 0, grads=False)
            live = moved = 0
            for path, t in base.items():
                tk = nudged.get(path)
                if tk is None or tk.shape != t.shape or not t.dtype.is_floating_point:
                    continue
                mask = torch.isfinite(t) & (t != 0)
                live += int(mask.sum())
                moved += int((tk[mask] != t[mask]).sum())
            # Rounding to float32 flips at about 1 element in 4096 under
            # this nudge; a float64-accurate function moves nearly all.
            self._coarse = live > 0 and moved <= COARSE_MOVED * live
        return self._coarse
