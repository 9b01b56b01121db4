"""The three sides of a check: the candidate, the reference, and the reference on float64 copies.

A side is a callable, or a copy of an ``nn.Module`` moved to the check's
device and dtype (the truth side: float64). Every call of a side is seeded
the same way, so random ops inside draw the same numbers on every side, and a
crash inside user code is re-raised with the trial's context.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import gradient_hint, with_context
from ..inputs import Args
from .copies import seed_rng
from .options import CheckOptions

if TYPE_CHECKING:
    import torch


@dataclass
class Side:
    """One of candidate / reference / truth: its callable, its module copy and parameters."""

    name: str
    fn: Callable[..., Any]
    device: torch.device
    module: Any = None
    params: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    #: whether a crash that says an input cannot be differentiated gets the no_grad= hint
    grad_hint: bool = True

    @property
    def what(self) -> str:
        """What a crash message says was running."""
        return "running the reference on float64 copies" if self.name == "truth" else f"running the {self.name}"

    def call(self, args: Args, rng_seed: int, context: Callable[[str], str], mode: str = "") -> Any:
        """Call with the RNG seeded; a crash is re-raised with ``context(what was running)``."""
        __tracebackhide__ = True
        seed_rng(rng_seed, self.device)
        try:
            return self.fn(*args.args, **args.kwargs)
        except Exception as exc:
            with_context(exc, context(self.what + mode) + (gradient_hint(exc) if self.grad_hint else ""))


def prepare(fn: Any, name: str, device: torch.device, dtype: torch.dtype) -> Side:
    """A side for ``fn``: modules are deep-copied and moved, so the user's instance is left alone."""
    import torch

    if not isinstance(fn, torch.nn.Module):
        return Side(name, fn, device)
    module = copy.deepcopy(fn).to(device=device, dtype=dtype)
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    return Side(name, module, device, module, params)


@dataclass
class Sides:
    candidate: Side
    reference: Side
    #: None when the reference run is itself the truth (float64 tests).
    truth: Side | None

    @classmethod
    def build(cls, candidate: Any, reference: Any, options: CheckOptions) -> Sides:
        import torch

        sides = cls(
            prepare(candidate, "candidate", options.device, options.dtype),
            prepare(reference, "reference", options.device, options.dtype),
            prepare(reference, "truth", options.truth_device, torch.float64) if options.separate_truth else None,
        )
        for side in (sides.candidate, sides.reference, sides.truth):
            if side is not None:
                # With check_grad=False only module parameters require grad,
                # which neither option can change.
                side.grad_hint = options.check_grad
        if options.compiling is not None:
            # Variant compile: only the candidate is compiled (its module copy,
            # when it is one); the reference and the truth stay eager.
            from ..compiling import compile_candidate

            side = sides.candidate
            side.fn = compile_candidate(side.fn, options.compiling, options.device)
        return sides

    @property
    def compiled(self) -> Any:
        """The candidate's :class:`~pytest_effective_torch.compiling.Compiled` wrapper, or None (eager)."""
        from ..compiling import Compiled

        fn = self.candidate.fn
        return fn if isinstance(fn, Compiled) else None

    def check_param_map(self, param_map: Any) -> None:
        """A dict ``param_map`` must name parameters that exist (known before anything runs)."""
        cand = [n for n, _ in self.candidate.params]
        ref = [n for n, _ in self.reference.params]
        if not isinstance(param_map, Mapping) or not cand or not ref:
            return  # without parameters on both sides, the report notes that none were compared
        unknown_c = [k for k in param_map if k not in cand]
        unknown_r = [v for v in param_map.values() if v not in ref]
        if unknown_c or unknown_r:
            raise ValueError(
                f"param_map names unknown parameters: candidate {unknown_c}, reference {unknown_r}; "
                f"candidate has {sorted(cand)}, reference has {sorted(ref)}"
            )


@contextlib.contextmanager
def buffers_kept(module: Any) -> Iterator[None]:
    """Put a module's buffers back to their values on exit (no-op for functions)."""
    saved = {name: b.clone() for name, b in module.named_buffers()} if module is not None else {}
    try:
        yield
    finally:
        for name, b in module.named_buffers() if module is not None else ():
            if name in saved:
                b.copy_(saved[name])


def shared_buffers(cand: Any, ref: Any) -> list[tuple[str, Any, Any]]:
    """(name, candidate buffer, reference buffer) for buffers both modules name and shape alike."""
    if cand is None or ref is None:
        return []
    ref_buffers = dict(ref.named_buffers())
    return [
        (name, b, ref_buffers[name])
        for name, b in cand.named_buffers()
        if name in ref_buffers and ref_buffers[name].shape == b.shape
    ]
