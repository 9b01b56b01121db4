"""One equivalence check, trial by trial: the steps of the engine in order.

For each trial of the plan (:mod:`.plan`) the inputs are built once; the
candidate, the reference and the truth (the reference on float64 copies)
each get their own copies and run under the same RNG seed (:mod:`.sides`);
inputs the candidate changed in place are found (:mod:`.mutation`); outputs
are walked in pairs (:mod:`.compare`) and judged against the truth
(:mod:`.truth`, :mod:`.judge`); the same seeded cotangent is pushed back
through every side and the gradients are judged alike (:mod:`.gradients`).
The first failing trial raises :class:`CheckFailed` listing every problem in
it (:mod:`.report`).
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import CheckFailed
from ..formatting import describe_tensor
from ..inputs import Args, arg_label, arg_value, derive_seed, input_tensors, map_args
from . import plan as plans
from .compare import Leaf, pair
from .conditioning import Conditioning
from .copies import Reused, clone_layout, is_float, to_truth_dtype
from .gradients import Gradients
from .judge import Judge
from .mutation import Snapshot, mutation_problems, snapshot
from .opcheck import OPCHECK_TRIALS
from .options import CheckOptions
from .plan import Trial
from .report import EquivalenceReport, Problem, failure_message
from .sides import Sides, buffers_kept, shared_buffers
from .truth import Truth

_NO_GRAD = " (candidate under torch.no_grad)"


@dataclass
class Calls:
    """What one trial's calls produced: each side's outputs and the arguments it was given."""

    cand_out: Any
    ref_out: Any
    truth_out: Any
    cand_args: Args
    #: the reference runs on the trial's pristine inputs (it may write declared-mutated ones)
    ref_args: Args
    truth_args: Args | None
    rng_seed: int
    problems: list[Problem]


class Check:
    """One call of ``assert_same_as_reference``: the options, the sides, the trials."""

    def __init__(self, options: CheckOptions, sides: Sides, plan: list[Trial] | None = None) -> None:
        self.options = options
        self.sides = sides
        #: the trials to run instead of the default plan (size sweeps choose their own)
        self.planned = plan
        self.report = EquivalenceReport()
        self.report.truth = (
            "float64" if options.separate_truth else "float64 reference (float64 is the working dtype)"
        )
        self.truth = Truth(options, sides.truth)
        #: large copies and cotangents, refilled trial after trial
        self.reused = Reused()
        self.judge = Judge(options, self.report)
        self.judge.degrade = self.truth.degrade
        # (through a weak reference: a bound method would make the check and
        # its gradients a cycle, keeping module copies alive after the check)
        check = weakref.ref(self)
        self.gradients = Gradients(
            sides, self.judge, self.report, options.param_map,
            lambda *args: check().context(*args),  # type: ignore[union-attr]
            self.reused,
        )  # fmt: skip

    # -- context for crashes and failures ------------------------------------

    def inputs_line(self, args: Args) -> str:
        parts = []
        for _, path, t in input_tensors(args)[:8]:
            stride = "" if t.is_contiguous() else f", strides {t.stride()}, offset {t.storage_offset()}"
            parts.append(f"{path}: {describe_tensor(t)}{stride}")
        return "; ".join(parts) or "no tensors"

    def context(self, what: str, trial: Trial, total: int, args: Args | None) -> str:
        inputs = f"\ninputs: {self.inputs_line(args)}" if args is not None else ""
        return f"effective-torch: while {what} in {trial.describe(total)}{inputs}\n{self.options.rerun}"

    # -- the check ----------------------------------------------------------

    def run(self) -> EquivalenceReport:
        __tracebackhide__ = True
        import torch

        options = self.options
        trials = self.planned
        if trials is None:
            trials = plans.plan(options.seed, builder=options.builder is not None, trials=options.trials, dtype=options.dtype)
        devices = [options.device] if options.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                i = 0
                while i < len(trials):
                    trial = trials[i]
                    args = self.build(trial, len(trials))
                    if i == 0 and options.builder is not None and self.planned is None:
                        trials = self.shrink_if_large(trials, args)
                    self.run_trial(trial, len(trials), args, passed_before=i)
                    self.report.trials.append(trial)
                    i += 1
            if options.check_grad and options.no_grad and not self.report.gradients:
                names = ", ".join(map(str, sorted(options.no_grad, key=str)))
                self.report.add_note(f"no gradient was compared: no_grad=({names}) leaves no floating input or parameter")
        finally:
            # Now, not whenever the garbage collector gets to this check's
            # objects: a 4096 x 4096 check holds over 1 GiB of buffers.
            self.judge.scratch.release()
            self.reused.release()
        if self.truth.degraded_note:
            self.report.add_note(self.truth.degraded_note)
        self.note_compiled()
        return self.report

    def note_compiled(self) -> None:
        compiled = self.sides.compiled
        if compiled is not None:
            note = compiled.note()
            self.report.compiled = (compiled.seconds, compiled.graphs, compiled.settings.describe())
            self.report.compile_note = note
            self.report.add_note(note)

    def opcheck(self, pristine: Args) -> list[Problem]:
        """torch.library.opcheck's failures on this trial's inputs (custom ops, first trials only)."""
        from .opcheck import opcheck_problems

        compiled = self.sides.compiled
        op = compiled.original if compiled is not None else self.sides.candidate.fn
        return opcheck_problems(op, pristine)

    def shrink_if_large(self, trials: list[Trial], args: Args) -> list[Trial]:
        """Large inputs get one random trial (known once the first inputs exist)."""
        options = self.options
        elements = sum(t.numel() for _, _, t in input_tensors(args) if is_float(t))
        shrunk = plans.plan(options.seed, builder=True, trials=options.trials, dtype=options.dtype, input_elements=elements)
        if len(shrunk) < len(trials):
            self.report.add_note(f"large inputs ({elements} elements): 1 random trial instead of {options.trials}")
            return shrunk
        return trials

    def build(self, trial: Trial, total: int) -> Args:
        """The trial's inputs: built, rescaled and re-laid-out as the trial says."""
        __tracebackhide__ = True
        options = self.options
        args, scaled_none = plans.trial_inputs(
            trial, options, context=lambda: self.context("building the inputs", trial, total, None)
        )
        if scaled_none:
            what = "offset trial shifted" if trial.kind == "offset" else f"{trial.kind}-magnitude trial scaled"
            self.report.add_note(
                f"the {what} no tensor: the builder gave every "
                "floating tensor an explicit low/high"
                + (" that excludes 0" if trial.kind == "small" else "")
            )
        return args

    def run_trial(self, trial: Trial, total: int, pristine: Args, passed_before: int) -> None:
        """Run, compare and judge one trial; raise CheckFailed with all of its problems."""
        __tracebackhide__ = True
        options = self.options
        first = passed_before == 0
        # The reference writes into declared-mutated arguments of ``pristine``;
        # the extra no_grad run needs the values from before that.
        before_calls = map_args(pristine, clone_layout) if first and options.mutates else pristine

        self.mark_differentiable(pristine)
        checked_ops = self.opcheck(pristine) if options.opcheck and passed_before < OPCHECK_TRIALS else []
        try:
            problems = self.judged_calls(trial, total, pristine, passed_before, before_calls)
        except CheckFailed:
            raise
        except Exception as exc:
            if not checked_ops:
                raise
            # A registration opcheck rejects (no autograd formula, say) often
            # crashes the calls too; opcheck's account of it is the useful one.
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            problems = [Problem("the check's own calls", [f"crashed: {type(exc).__name__}: {text}"])]
        problems += checked_ops
        if problems:
            self.note_compiled()
            notes = list(self.report.notes)
            if self.truth.degraded_note and self.truth.degraded_note not in notes:
                notes.append(self.truth.degraded_note)
            self.fail(trial, total, passed_before, problems, pristine, notes)

    def mark_differentiable(self, pristine: Args) -> None:
        """Make the floating leaves that gradients are taken with respect to require grad.

        Declared-mutated arguments are left alone (in-place ops on such leaves
        raise), and so are the ones ``no_grad`` names.
        """
        options = self.options
        if not options.check_grad:
            return
        for key, _, t in input_tensors(pristine):
            if is_float(t) and t.is_leaf and key not in options.mutates and key not in options.no_grad:
                t.requires_grad_(True)

    def judged_calls(self, trial: Trial, total: int, pristine: Args, passed_before: int, before_calls: Args) -> list[Problem]:
        """Call every side, judge outputs and gradients, and run the no_grad check: the problems found."""
        __tracebackhide__ = True
        options = self.options
        calls = self.call_sides(trial, total, pristine, passed_before)
        leaves, structure = self.pair_outputs(calls)
        problems = calls.problems + structure
        truth_args = calls.truth_args if calls.truth_args is not None else calls.ref_args
        truth_index = self.truth.index(calls.truth_out, truth_args, leaves)
        self.judge.conditioning = self.conditioning(trial, total, calls, leaves, truth_index)
        try:
            for leaf in leaves:
                self.judge.leaf(leaf, truth_index, trial, problems)
            if options.check_grad and not structure:
                problems += self.gradients.problems(
                    trial, total, leaves, truth_index, calls.cand_args, calls.ref_args, calls.truth_args
                )
            # After the backward passes: module buffers saved for backward must
            # not be touched before them.
            if passed_before == 0 and not structure:
                self.no_grad_run(trial, total, before_calls, calls.rng_seed, calls.ref_out, truth_index, problems)
        finally:
            self.judge.conditioning = None  # its perturbed runs are this trial's only
        return problems

    def conditioning(
        self, trial: Trial, total: int, calls: Calls, leaves: list[Leaf], truth_index: dict[str, Any]
    ) -> Conditioning | None:
        """The trial's perturbed truths, run only if a comparison fails the tight rules.

        None where there is no float64 truth to perturb, or the reference
        writes into its arguments (the perturbed runs would start from
        written values).
        """
        import torch

        from .bounds import bounds_for

        sides, options = self.sides, self.options
        side = sides.truth if sides.truth is not None else sides.reference
        args = calls.truth_args if sides.truth is not None else calls.ref_args
        if not truth_index or args is None or options.mutates:
            return None
        return Conditioning(
            side,
            args,
            leaves,
            trial_seed=trial.seed,
            rng_seed=calls.rng_seed,
            unit=bounds_for(options.dtype if options.dtype.is_floating_point else torch.float32).eps / 2,
            check_grad=options.check_grad,
            context=lambda a: lambda doing: self.context(doing + " (perturbed inputs)", trial, total, a),
        )

    def call_sides(self, trial: Trial, total: int, pristine: Args, passed_before: int) -> Calls:
        """Each side on its own copies of the inputs, under the same RNG seed."""
        __tracebackhide__ = True
        import torch

        options, sides = self.options, self.sides
        truth_args = None
        slots = itertools.count()  # map_args visits the tensors in the same order every trial
        if sides.truth is not None:
            device = options.truth_device

            def truth_copy(t: torch.Tensor) -> torch.Tensor:
                if not is_float(t) or t.device != device:
                    return to_truth_dtype(t, device).requires_grad_(t.requires_grad)
                wide = torch.complex128 if t.dtype.is_complex else torch.float64
                return self.reused.copy(("truth", next(slots)), t, wide).requires_grad_(t.requires_grad)

            truth_args = map_args(pristine, truth_copy)
        cand_args = map_args(
            pristine, lambda t: self.reused.copy(("candidate", next(slots)), t).requires_grad_(t.requires_grad)
        )
        taken = snapshot(cand_args)
        rng_seed = derive_seed(trial.seed, "rng")

        def context(args: Args) -> Any:
            return lambda doing: self.context(doing, trial, total, args)

        try:
            cand_out = sides.candidate.call(cand_args, rng_seed, context(cand_args))
        except Exception as exc:
            if "in-place operation" in str(exc) and "requires grad" in str(exc):
                self.raise_inplace_leaf(trial, total, pristine, rng_seed, passed_before)
            raise
        problems = mutation_problems(cand_args, pristine, taken, options.mutates)
        ref_out = sides.reference.call(pristine, rng_seed, context(pristine))
        truth_out = ref_out
        if sides.truth is not None:
            assert truth_args is not None
            try:
                truth_out = sides.truth.call(truth_args, rng_seed, context(truth_args))
            except Exception as exc:
                truth_out, truth_args = None, None
                first_line = str(exc).splitlines()[0] if str(exc) else ""
                self.truth.degrade(f"it raised {type(exc).__name__}: {first_line}")
        return Calls(cand_out, ref_out, truth_out, cand_args, pristine, truth_args, rng_seed, problems)

    def pair_outputs(self, calls: Calls) -> tuple[list[Leaf], list[Problem]]:
        """Outputs, declared-mutated arguments and shared module buffers, walked in pairs."""
        leaves, structure = pair(calls.cand_out, calls.ref_out, "output")
        for key in sorted(self.options.mutates, key=str):
            more, more_problems = pair(
                arg_value(calls.cand_args, key), arg_value(calls.ref_args, key), f"{arg_label(key)} after the call"
            )
            leaves += more
            structure += more_problems
        # Module state the call changed (BatchNorm's running statistics):
        # buffers both modules name and shape alike are compared like outputs.
        for name, c_buf, r_buf in shared_buffers(self.sides.candidate.module, self.sides.reference.module):
            more, more_problems = pair(c_buf, r_buf, f"buffer {name} after the call")
            leaves += more
            structure += more_problems
        return leaves, structure

    def no_grad_run(
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

        sides = self.sides
        args = map_args(pristine, clone_layout)
        taken = snapshot(args)

        def context(doing: str) -> str:
            return self.context(doing, trial, total, args)

        # The extra calls must not advance module state (running statistics)
        # past the other side's: buffers are put back afterwards.
        with torch.no_grad(), buffers_kept(sides.candidate.module), buffers_kept(sides.reference.module):
            try:
                out = sides.candidate.call(args, rng_seed, context, mode=" under torch.no_grad")
            except Exception:
                # Code that needs autograd inside (forces as -dE/dx) cannot run
                # here; that is no bug if the reference cannot either.
                try:
                    sides.reference.call(map_args(pristine, clone_layout), rng_seed, context, mode=" under torch.no_grad")
                except Exception:
                    self.report.add_note("no check under torch.no_grad: the candidate and the reference both raise there")
                    return
                raise
        seen = {p.path for p in problems}
        problems += [p for p in mutation_problems(args, pristine, taken, self.options.mutates) if p.path not in seen]
        leaves, structure = pair(out, ref_out, "output")
        for problem in structure:
            problem.path = problem.path.replace("output", "output" + _NO_GRAD, 1)
        problems += structure
        for leaf in leaves:
            if leaf.path in seen:
                continue  # already failing with autograd on: one problem per output is enough
            self.judge.leaf(leaf, truth_index, trial, problems, label=leaf.path.replace("output", "output" + _NO_GRAD, 1))

    def raise_inplace_leaf(self, trial: Trial, total: int, pristine: Args, rng_seed: int, passed_before: int) -> None:
        """The candidate wrote into an input that requires grad: find which one, and say so."""
        __tracebackhide__ = True
        import torch

        probe = map_args(pristine, clone_layout)
        taken: Snapshot = snapshot(probe)
        try:
            with torch.no_grad():
                self.sides.candidate.call(probe, rng_seed, lambda doing: self.context(doing, trial, total, probe))
        except Exception:
            return
        problems = mutation_problems(probe, pristine, taken, self.options.mutates)
        if problems:
            self.fail(trial, total, passed_before, problems, pristine, [])

    def fail(
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
                rerun=self.options.rerun,
                notes=notes,
                inputs_line=self.inputs_line(pristine),
            )
        )

