"""The engine of assert_same_as_reference: one check, trial by trial.

One check runs several trials (see :mod:`._trials`). In each, the inputs are
built once; the candidate, the reference and the reference on float64 copies
(the truth) each get their own copies, run under the same RNG seed, and push
the same seeded cotangent back (:mod:`._gradients`). Outputs and gradients are
then walked (:mod:`._compare`) and judged against the truth
(:mod:`._tolerance`). The first failing trial raises :class:`CheckFailed`
listing every problem in it.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from . import _trials
from ._arguments import (
    _check_device,
    _check_dtype,
    _check_inputs,
    _check_mutates,
    _check_number,
    _check_seed,
)
from ._compare import Leaf, as_tensor, exact_problem, index_leaves, pair
from ._copies import (
    _arg_items,
    _arg_label,
    _arg_value,
    _clone_layout,
    _input_tensors,
    _is_float,
    _map_args,
    _same_values,
    _seed_rng,
    _skeleton,
    _skeleton_change,
    _to_truth_dtype,
)
from ._dtypes import dtype_name
from ._errors import CheckFailed, with_context
from ._gradients import GradientsMixin
from ._inputs import Args, Inputs, Maker, as_args, build, derive_seed, is_builder
from ._report import EquivalenceReport, Problem, describe_tensor, failure_message, value_problem
from ._tolerance import (
    GRADIENT_NOISE,
    SLICE_RULE_MAX_ELEMENTS,
    Scratch,
    Tolerance,
    assert_close_defaults,
    bounds_for,
    judge,
)
from ._trials import Trial

if TYPE_CHECKING:
    import torch


class ReferenceNotDtypeGeneric(UserWarning):
    """The reference ignored float64 inputs, so no float64 truth could be computed."""


# ------------------------------------------------------------------ sides


@dataclass
class _Side:
    """One of candidate / reference / truth: its callable, its module copy and parameters."""

    name: str
    fn: Callable[..., Any]
    module: Any = None
    params: list[tuple[str, torch.Tensor]] = field(default_factory=list)


def _prepare_callable(fn: Any, device: torch.device, dtype: torch.dtype | None, role: str) -> tuple[Callable[..., Any], Any]:
    import torch

    if not callable(fn):
        raise TypeError(f"{role} must be callable (a function or an nn.Module), got {type(fn).__name__}")
    if isinstance(fn, torch.nn.Module):
        module = copy.deepcopy(fn)
        module.to(device=device)
        if dtype is not None:
            module.to(dtype=dtype)
        return module, module
    return fn, None


def _module_params(module: Any) -> list[tuple[str, torch.Tensor]]:
    if module is None:
        return []
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad]


@contextlib.contextmanager
def _buffers_kept(module: Any) -> Iterator[None]:
    """Put a module's buffers back to their values on entry (no-op for functions)."""
    saved = {name: b.clone() for name, b in module.named_buffers()} if module is not None else {}
    try:
        yield
    finally:
        for name, b in module.named_buffers() if module is not None else ():
            if name in saved:
                b.copy_(saved[name])


def _shared_buffers(cand: Any, ref: Any) -> list[tuple[str, Any, Any]]:
    """(name, candidate buffer, reference buffer) for buffers both modules name and shape alike."""
    if cand is None or ref is None:
        return []
    ref_buffers = dict(ref.named_buffers())
    return [
        (name, b, ref_buffers[name])
        for name, b in cand.named_buffers()
        if name in ref_buffers and ref_buffers[name].shape == b.shape
    ]


def _snapshot(args: Args) -> dict[int | str, Any]:
    """Per argument: its container skeleton and its tensors' version counters, before a call."""
    return {
        key: (_skeleton(value), [t._version for _, t in _trials.walk_tensors(value)])
        for key, value in _arg_items(args)
    }


# ------------------------------------------------------------------ engine


class _Check(GradientsMixin):
    """One call of assert_same_as_reference: validated arguments, copies of the callables, the trials."""

    def __init__(
        self,
        candidate: Any,
        reference: Any,
        inputs: Inputs,
        *,
        device: Any,
        dtype: Any,
        seed: Any,
        atol: Any,
        rtol: Any,
        check_grad: Any,
        mutates: Any,
        param_map: Any,
        trials: Any,
        rerun: str | None,
    ) -> None:
        import torch

        if not callable(candidate):
            raise TypeError(f"candidate must be callable (a function or an nn.Module), got {type(candidate).__name__}")
        if not callable(reference):
            raise TypeError(f"reference must be callable (a function or an nn.Module), got {type(reference).__name__}")
        _check_inputs(inputs)
        self.builder = is_builder(inputs)
        self.inputs = inputs
        device = _check_device(device)
        dtype = _check_dtype(dtype)
        self.seed = _check_seed(seed)
        self.tolerance = Tolerance(_check_number("atol", atol), _check_number("rtol", rtol))
        if not isinstance(check_grad, bool):
            raise TypeError(f"check_grad must be True or False, got {check_grad!r}")
        self.check_grad = check_grad
        self.mutates = _check_mutates(mutates)
        if param_map is not None and not isinstance(param_map, Mapping) and not callable(param_map):
            raise TypeError(
                "param_map must be a dict {candidate parameter name: reference parameter name} "
                f"or a callable mapping the reference's gradients by name; got {type(param_map).__name__}"
            )
        self.param_map = param_map
        if trials is None:
            trials = 3
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ValueError(f"trials must be a positive integer, got {trials!r}")
        self.n_random = trials

        if not self.builder:
            given = as_args(inputs)
            tensors = [t for _, _, t in _input_tensors(given)]
            if device is None:
                device = tensors[0].device if tensors else torch.device("cpu")
            if dtype is None:
                floats = [t.dtype for t in tensors if t.dtype.is_floating_point]
                dtype = floats[0] if floats else torch.float32
            target_device, target_dtype = device, dtype
            self.given = _map_args(
                given,
                lambda t: t.detach().to(
                    device=target_device, dtype=target_dtype if t.dtype.is_floating_point else t.dtype
                ).clone(),
            )
        self.device = device if device is not None else torch.device("cpu")
        self.dtype = dtype if dtype is not None else torch.float32
        if not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {self.dtype}")
        # Devices without float64 (MPS) compute the truth on the CPU.
        self.truth_device = torch.device("cpu") if self.device.type == "mps" else self.device
        # In a float64 test the reference run is the truth.
        self.separate_truth = self.dtype != torch.float64 or self.truth_device != self.device
        self.rerun = rerun or (
            "rerun: assert_same_as_reference(candidate, reference, inputs, "
            f"device={str(self.device)!r}, dtype={self.dtype}, seed={self.seed}"
            + (f", trials={trials}" if trials != 3 else "")
            + ")"
        )

        cand_fn, cand_mod = _prepare_callable(candidate, self.device, self.dtype, "candidate")
        ref_fn, ref_mod = _prepare_callable(reference, self.device, self.dtype, "reference")
        self.cand = _Side("candidate", cand_fn, cand_mod, params=_module_params(cand_mod))
        self.ref = _Side("reference", ref_fn, ref_mod, params=_module_params(ref_mod))
        self.truth: _Side | None = None
        if self.separate_truth:
            truth_fn, truth_mod = _prepare_callable(reference, self.truth_device, torch.float64, "reference")
            self.truth = _Side("truth", truth_fn, truth_mod, params=_module_params(truth_mod))
        self.report = EquivalenceReport()
        self.report.truth = "float64" if self.separate_truth else "float64 reference (float64 is the working dtype)"
        self.scratch = Scratch()
        self.degraded_truth_note: str | None = None
        self.suspect_seen: set[tuple[str, str]] = set()

    # -- context for crashes ------------------------------------------------

    def _inputs_line(self, args: Args) -> str:
        parts = []
        for _, path, t in _input_tensors(args)[:8]:
            stride = "" if t.is_contiguous() else f", strides {t.stride()}, offset {t.storage_offset()}"
            parts.append(f"{path}: {describe_tensor(t)}{stride}")
        return "; ".join(parts) or "no tensors"

    def _context(self, what: str, trial: Trial, total: int, args: Args | None) -> str:
        inputs = f"\ninputs: {self._inputs_line(args)}" if args is not None else ""
        return f"effective-torch: while {what} in {trial.describe(total)}{inputs}\n{self.rerun}"

    # -- the check ----------------------------------------------------------

    def run(self) -> EquivalenceReport:
        __tracebackhide__ = True
        import torch

        plan = _trials.plan(self.seed, builder=self.builder, trials=self.n_random, dtype=self.dtype)
        i = 0
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            while i < len(plan):
                trial = plan[i]
                args = self._build(trial, len(plan))
                if i == 0 and self.builder:
                    elements = sum(t.numel() for _, _, t in _input_tensors(args) if _is_float(t))
                    shrunk = _trials.plan(
                        self.seed, builder=True, trials=self.n_random, dtype=self.dtype, input_elements=elements
                    )
                    if len(shrunk) < len(plan):
                        self.report.add_note(
                            f"large inputs ({elements} elements): 1 random trial instead of {self.n_random}"
                        )
                        plan = shrunk
                self._run_trial(trial, len(plan), args, passed_before=i)
                self.report.trials.append(trial)
                i += 1
        if self.degraded_truth_note:
            self.report.add_note(self.degraded_truth_note)
        return self.report

    def _build(self, trial: Trial, total: int) -> Args:
        __tracebackhide__ = True
        import torch

        if not self.builder:
            fn = _trials.noncontiguous_copy if trial.noncontiguous else _clone_layout
            return _map_args(self.given, fn)
        make = Maker(self.device, self.dtype, trial.seed, scale=trial.scale)
        with torch.no_grad():
            args = build(self.inputs, make, context=self._context("building the inputs", trial, total, None))
        if trial.scale is not None and not any(scaled for _, scaled in make.made):
            self.report.add_note(
                f"the {trial.kind}-magnitude trial scaled no tensor: the builder gave every "
                "floating tensor an explicit low/high"
            )
        if trial.noncontiguous:
            args = _map_args(args, _trials.noncontiguous_copy)
        else:
            args = _map_args(args, lambda t: t.detach())
        if self.mutates:
            keys = {k for k, _ in _arg_items(args)}
            unknown = [m for m in self.mutates if m not in keys]
            if unknown:
                raise ValueError(f"mutates names arguments the inputs do not have: {unknown}; arguments: {sorted(map(str, keys))}")
        return args

    def _call(self, side: _Side, args: Args, rng_seed: int, trial: Trial, total: int, mode: str = "") -> Any:
        __tracebackhide__ = True

        _seed_rng(rng_seed, self.truth_device if side.name == "truth" else self.device)
        try:
            return side.fn(*args.args, **args.kwargs)
        except Exception as exc:
            what = "running the reference on float64 copies" if side.name == "truth" else f"running the {side.name}"
            with_context(exc, self._context(what + mode, trial, total, args))

    def _no_grad_run(
        self,
        trial: Trial,
        total: int,
        pristine: Args,
        rng_seed: int,
        ref_out: Any,
        truth_index: dict[str, Any],
        problems: list[Problem],
    ) -> None:
        """The candidate once more under torch.no_grad, its outputs judged like the others.

        Code often takes another path when autograd is off (inference fast
        paths keyed on ``torch.is_grad_enabled()`` or ``x.requires_grad``, as
        ``nn.TransformerEncoderLayer``'s); every other call here records
        gradients, so that path would go unchecked. One extra forward call, in
        the first trial only.
        """
        __tracebackhide__ = True
        import torch

        suffix = " (candidate under torch.no_grad)"
        args = _map_args(pristine, _clone_layout)
        snapshot = _snapshot(args)
        mode = " under torch.no_grad"
        # The extra calls must not advance module state (running statistics)
        # past the other side's: buffers are put back afterwards.
        with torch.no_grad(), _buffers_kept(self.cand.module), _buffers_kept(self.ref.module):
            try:
                out = self._call(self.cand, args, rng_seed, trial, total, mode=mode)
            except Exception:
                # Code that needs autograd inside (forces as -dE/dx) cannot run
                # here; that is no bug if the reference cannot either.
                try:
                    self._call(self.ref, _map_args(pristine, _clone_layout), rng_seed, trial, total, mode=mode)
                except Exception:
                    self.report.add_note(
                        "no check under torch.no_grad: the candidate and the reference both raise there"
                    )
                    return
                raise
        seen = {p.path for p in problems}
        problems += [p for p in self._mutation_problems(args, pristine, snapshot) if p.path not in seen]
        leaves, structure = pair(out, ref_out, "output")
        for problem in structure:
            problem.path = problem.path.replace("output", "output" + suffix, 1)
        problems += structure
        for leaf in leaves:
            if leaf.path in seen:
                continue  # already failing with autograd on: one problem per output is enough
            self._judge_leaf(leaf, truth_index, trial, problems, label=leaf.path.replace("output", "output" + suffix, 1))

    def _run_trial(self, trial: Trial, total: int, pristine: Args, passed_before: int) -> None:
        __tracebackhide__ = True

        grad_ok = self.check_grad
        # Leaves that gradients are taken with respect to; declared-mutated
        # arguments are left alone (in-place ops on such leaves raise).
        for key, _, t in _input_tensors(pristine):
            if grad_ok and _is_float(t) and key not in self.mutates and t.is_leaf:
                t.requires_grad_(True)
        truth_args = None
        if self.truth is not None:
            truth_device = self.truth_device
            truth_args = _map_args(pristine, lambda t: _to_truth_dtype(t, truth_device).requires_grad_(t.requires_grad))
        cand_args = _map_args(pristine, lambda t: _clone_layout(t).requires_grad_(t.requires_grad))
        # The reference writes into declared-mutated arguments of ``pristine``;
        # the extra no_grad run needs the values from before that.
        before_calls = _map_args(pristine, _clone_layout) if passed_before == 0 and self.mutates else pristine
        versions = _snapshot(cand_args)
        rng_seed = derive_seed(trial.seed, "rng")

        try:
            cand_out = self._call(self.cand, cand_args, rng_seed, trial, total)
        except Exception as exc:
            if "in-place operation" in str(exc) and "requires grad" in str(exc):
                self._raise_inplace_leaf(trial, total, pristine, rng_seed, passed_before)
            raise
        problems: list[Problem] = self._mutation_problems(cand_args, pristine, versions)

        ref_out = self._call(self.ref, pristine, rng_seed, trial, total)
        truth_out = ref_out
        truth_args_used = pristine
        if self.truth is not None:
            try:
                truth_out = self._call(self.truth, truth_args, rng_seed, trial, total)
                truth_args_used = truth_args
            except Exception as exc:
                truth_out = None
                self._degrade(f"it raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

        leaves, structure = pair(cand_out, ref_out, "output")
        for key in sorted(self.mutates, key=str):
            label = f"{_arg_label(key)} after the call"
            c_val, r_val = _arg_value(cand_args, key), _arg_value(pristine, key)
            more, more_problems = pair(c_val, r_val, label)
            leaves += more
            structure += more_problems
        # Module state the call changed (BatchNorm's running statistics):
        # buffers both modules name and shape alike are compared like outputs.
        for name, c_buf, r_buf in _shared_buffers(self.cand.module, self.ref.module):
            more, more_problems = pair(c_buf, r_buf, f"buffer {name} after the call")
            leaves += more
            structure += more_problems
        problems += structure
        truth_index = self._truth_index(truth_out, truth_args_used, leaves)

        for leaf in leaves:
            self._judge_leaf(leaf, truth_index, trial, problems)

        if grad_ok and not structure:
            problems += self._gradients(trial, total, leaves, truth_index, cand_args, pristine, truth_args)

        # After the backward passes: module buffers saved for backward must
        # not be touched before them.
        if passed_before == 0 and not structure:
            self._no_grad_run(trial, total, before_calls, rng_seed, ref_out, truth_index, problems)

        if problems:
            notes = list(self.report.notes)
            if self.degraded_truth_note and self.degraded_truth_note not in notes:
                notes.append(self.degraded_truth_note)
            self._fail(trial, total, passed_before, problems, pristine, notes)

    # -- mutation -----------------------------------------------------------

    def _mutation_problems(self, after: Args, before: Args, snapshot: dict[int | str, Any]) -> list[Problem]:
        """Problems for arguments the candidate changed: containers, tensor values, version counters.

        ``snapshot`` is :func:`_snapshot` of ``after`` taken before the call.
        """
        import torch

        problems = []
        before_values = dict(_arg_items(before))
        for key, value in _arg_items(after):
            if key in self.mutates:
                continue
            skeleton, versions = snapshot[key]
            label = _arg_label(key)
            declare = f"declare it with mutates=({key!r},) if that is intended"
            change = _skeleton_change(skeleton, _skeleton(value), label)
            if change is not None:
                # Items were added, removed or replaced: what the caller holds
                # changed, and the tensors no longer pair up with the originals.
                problems.append(Problem(label, [f"candidate modified {label} in place ({change}); {declare}"]))
                continue
            pairs = zip(_trials.walk_tensors(value), _trials.walk_tensors(before_values[key]), versions, strict=True)
            for (sub, t_after), (_, t_before), version in pairs:
                bumped = t_after._version != version
                changed = not _same_values(t_after.detach(), t_before.detach())
                if not (bumped or changed):
                    continue
                details = []
                if changed:
                    a, b = t_after.detach(), t_before.detach()
                    differ = ~((a == b) | (torch.isnan(a) & torch.isnan(b))) if _is_float(a) else a != b
                    details.append(f"values changed at {int(differ.sum())} of {a.numel()} elements")
                if bumped:
                    details.append(f"in-place version counter {version} -> {t_after._version}")
                path = label + sub
                problems.append(
                    Problem(path, [f"candidate modified {path} in place ({'; '.join(details)}); {declare}"])
                )
                break
        return problems

    def _raise_inplace_leaf(self, trial: Trial, total: int, pristine: Args, rng_seed: int, passed_before: int) -> None:
        """The candidate wrote into an input that requires grad: find which one, and say so."""
        __tracebackhide__ = True
        import torch

        probe = _map_args(pristine, _clone_layout)
        versions = _snapshot(probe)
        try:
            with torch.no_grad():
                self._call(self.cand, probe, rng_seed, trial, total)
        except Exception:
            return
        problems = self._mutation_problems(probe, pristine, versions)
        if not problems:
            return
        self._fail(trial, total, passed_before, problems, pristine, [])

    def _fail(
        self, trial: Trial, total: int, passed_before: int, problems: list[Problem], pristine: Args, notes: list[str]
    ) -> NoReturn:
        """Raise the one CheckFailed of this check, for every problem of ``trial``."""
        __tracebackhide__ = True
        raise CheckFailed(
            failure_message(
                trial=trial,
                total_trials=total,
                passed_before=passed_before,
                problems=problems,
                rerun=self.rerun,
                notes=notes,
                inputs_line=self._inputs_line(pristine),
            )
        )

    # -- truth --------------------------------------------------------------

    def _degrade(self, why: str) -> None:
        if self.degraded_truth_note is None:
            self.degraded_truth_note = (
                f"reference is not dtype-generic: given float64 inputs, {why}; no float64 truth, "
                f"so the candidate was judged against the reference in {dtype_name(self.dtype)}"
            )
            warnings.warn(self.degraded_truth_note, ReferenceNotDtypeGeneric, stacklevel=4)

    def _truth_index(self, truth_out: Any, truth_args: Args, leaves: list[Leaf]) -> dict[str, Any]:
        import torch

        if truth_out is None:
            return {}
        index = index_leaves(truth_out, "output")
        for key in self.mutates:
            index.update(index_leaves(_arg_value(truth_args, key), f"{_arg_label(key)} after the call"))
        if self.truth is not None and self.truth.module is not None:
            for name, t_buf in self.truth.module.named_buffers():
                index[f"buffer {name} after the call"] = t_buf
        if self.truth is None:
            return index
        for leaf in leaves:
            if leaf.kind != "float" or not isinstance(leaf.reference, torch.Tensor):
                continue
            t = index.get(leaf.path)
            if not isinstance(t, torch.Tensor):
                self._degrade(f"it returned {type(t).__name__} at {leaf.path}")
                return {}
            if t.shape != leaf.reference.shape:
                self._degrade(f"it returned shape {tuple(t.shape)} at {leaf.path}")
                return {}
            if t.dtype not in (torch.float64, torch.complex128):
                self._degrade(f"it returned {dtype_name(t.dtype)} at {leaf.path}")
                return {}
        return index

    # -- values -------------------------------------------------------------

    def _judge_leaf(
        self, leaf: Leaf, truth_index: dict[str, Any], trial: Trial, problems: list[Problem], label: str | None = None
    ) -> None:

        if leaf.kind == "exact":
            problem = exact_problem(leaf)
            if problem is not None:
                if label is not None:
                    problem.path = label
                problems.append(problem)
            return
        c, r = as_tensor(leaf.candidate), as_tensor(leaf.reference)
        t = truth_index.get(leaf.path)
        t = as_tensor(t) if t is not None else r
        self._judge(label or leaf.path, c.detach(), r.detach(), t.detach(), trial, problems, is_output=True)

    def _judge(
        self,
        path: str,
        c: torch.Tensor,
        r: torch.Tensor,
        t: torch.Tensor,
        trial: Trial,
        problems: list[Problem],
        *,
        is_output: bool,
        grad_scale: Callable[[], float] | None = None,
    ) -> None:
        import torch

        t = t.to(torch.complex128 if (t.dtype.is_complex or c.dtype.is_complex) else torch.float64)
        if t.ndim >= 2 and t.numel() > SLICE_RULE_MAX_ELEMENTS and not self.tolerance.user:
            self.report.add_note(
                f"tensors over {SLICE_RULE_MAX_ELEMENTS} elements were judged without the slice rule "
                "(each row and column on its own scale), to keep large checks cheap"
            )
        bounds = bounds_for(c.dtype, self.dtype)
        noise_floor = None
        if grad_scale is not None:
            scale = grad_scale

            def noise_floor() -> float:
                return GRADIENT_NOISE * bounds.eps * scale()
        defaults = assert_close_defaults(c.dtype if c.dtype.is_floating_point or c.dtype.is_complex else self.dtype)
        verdict = judge(
            c, r, t, bounds=bounds, tolerance=self.tolerance, user_defaults=defaults,
            scratch=self.scratch, noise_floor=noise_floor,
        )  # fmt: skip
        if verdict.reference_off is not None and self.separate_truth:
            # The reference and its own float64 run disagree far beyond
            # rounding, so neither is trusted alone: the candidate passes if
            # it matches either one without slack.
            working = dtype_name(self.dtype)
            against, off = "the float64 truth", verdict.reference_off
            if not verdict.ok:
                second = judge(
                    c, r, r.detach().to(t.dtype), bounds=bounds, tolerance=self.tolerance,
                    user_defaults=defaults, scratch=self.scratch, noise_floor=noise_floor,
                )  # fmt: skip
                if second.ok:
                    verdict, against = second, f"the reference in {working}"
            key = (path, against if verdict.ok else "neither")
            if key not in self.suspect_seen:
                self.suspect_seen.add(key)
                self.report.add_note(
                    f"{path}: the reference's float64 run differs from its {working} run far "
                    f"beyond rounding ({off:.3g} relative in trial {trial.number}): random ops drawing "
                    "differently in float64, a reference that is not dtype-generic, or one that breaks "
                    f"down at this scale; the candidate {'matched ' + against if verdict.ok else 'matched neither'}"
                )
        (self.report.outputs if is_output else self.report.gradients).append(f"{path} (trial {trial.number})")
        for note in verdict.notes:
            scale = f", at input scale x{trial.scale:.3g}" if trial.scale is not None else ""
            self.report.add_note(f"{path}: {note}{scale} (trial {trial.number}, {trial.kind})")
        if verdict.ok:
            self.report.consider(path, trial, verdict.ratio, verdict.error, verdict.allowed, verdict.rule)
        else:
            assert verdict.mismatch is not None
            problems.append(value_problem(path, describe_tensor(c), verdict.mismatch, trial))
