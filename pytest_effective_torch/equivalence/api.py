"""assert_same_as_reference: does the candidate compute the reference's function?

The public function; the steps of one check are in :mod:`.check`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..inputs import Inputs
from ..sizes import Sizes, check_sizes, check_sweep_inputs, check_unswept_inputs
from .check import Check
from .options import ParamMap, check_options
from .report import EquivalenceReport
from .sides import Sides
from .sweep import POINT_TRIALS, EquivalenceSweepReport, Sweep
from .truth import ReferenceNotDtypeGeneric

if TYPE_CHECKING:
    import torch

__all__ = ["EquivalenceSweepReport", "ReferenceNotDtypeGeneric", "assert_same_as_reference"]


def assert_same_as_reference(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    seed: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    check_grad: bool = True,
    mutates: Iterable[int | str] | int | str = (),
    no_grad: Iterable[int | str] | int | str = (),
    param_map: ParamMap | None = None,
    trials: int | None = None,
    sizes: Sizes | None = None,
    opcheck: bool | None = None,
    variant: str = "eager",
    compile_options: Mapping[str, Any] | None = None,
    _rerun: str | None = None,
) -> EquivalenceReport | EquivalenceSweepReport:
    """Check that ``candidate`` computes the same function as ``reference``.

    Runs several trials (fresh seeds, a non-contiguous layout, large and small
    magnitudes) and in each compares outputs and gradients (from the same
    seeded random cotangent) against the reference evaluated on float64
    copies of the inputs. Raises :class:`CheckFailed` naming every failing
    output and gradient; returns an :class:`EquivalenceReport` otherwise.

    ``inputs`` is a tuple of arguments (checked as given, then re-laid-out)
    or a builder ``inputs(make)`` returning a tuple or :class:`Args`. With a
    tuple, ``device``/``dtype`` default to the tensors' own; with a builder,
    to cpu and float32. ``atol``/``rtol`` replace the automatic tolerance
    with torch.testing.assert_close's rule against the truth. ``mutates``
    names arguments the candidate may change in place (their final values
    are compared). ``no_grad`` names arguments whose gradients are not
    taken (running statistics, a constant table): floating inputs are
    otherwise all differentiated. ``param_map`` maps candidate parameter names to the
    reference's (a dict), or is a callable that takes the reference's
    parameter gradients by name and returns the candidate's expected ones.

    ``sizes={"n": [1, 16, 64, 100]}`` sweeps a builder ``inputs(make, *, n)``
    over those sizes (several keys: their product): every point runs
    ``trials`` (default 1) random-value trials and one of the layout and
    magnitude trials in turn; a failure names every failing size and the
    pass-to-fail boundary below each (``n=64 passes, n=65 fails``), found
    by bisection. Returns an :class:`EquivalenceSweepReport` then.

    A candidate that is a ``torch.library`` custom op is also checked with
    ``torch.library.opcheck`` on the first trials' inputs (``opcheck=False``
    turns that off); each failed opcheck test is a problem in the message.
    ``variant="compile"`` checks ``torch.compile(candidate)`` instead
    (``compile_options`` holds torch.compile's ``mode``, ``dynamic`` (default
    False), ``fullgraph``, ``backend``, ``options``); the reference stays
    eager, and the report notes the compile time.

    >>> import torch
    >>> from pytest_effective_torch import assert_same_as_reference
    >>> def stable_softmax(x):
    ...     e = torch.exp(x - x.amax(-1, keepdim=True))
    ...     return e / e.sum(-1, keepdim=True)
    >>> report = assert_same_as_reference(
    ...     stable_softmax, lambda x: torch.softmax(x, -1), lambda make: (make(8, 10),)
    ... )
    >>> len(report.trials)
    7
    """
    __tracebackhide__ = True
    try:
        grid = check_sizes(sizes) if sizes is not None else None
        trials_given = trials is not None
        if grid is not None:
            check_sweep_inputs(inputs, grid)
            if trials is None:
                trials = POINT_TRIALS
        else:
            check_unswept_inputs(inputs)
        options = check_options(
            candidate,
            reference,
            inputs,
            device=device,
            dtype=dtype,
            seed=seed,
            atol=atol,
            rtol=rtol,
            check_grad=check_grad,
            mutates=mutates,
            no_grad=no_grad,
            param_map=param_map,
            trials=trials,
            rerun=_rerun,
            opcheck=opcheck,
            variant=variant,
            compile_options=compile_options,
        )
    except (TypeError, ValueError) as exc:
        # A bad argument: the caller's line, not the validators' frames.
        raise exc.with_traceback(None) from None
    sides = Sides.build(candidate, reference, options)
    try:
        sides.check_param_map(options.param_map)
    except ValueError as exc:
        raise exc.with_traceback(None) from None
    if grid is not None:
        if _rerun is None:
            rerun = options.rerun.removesuffix(")") + f", sizes={grid.as_dict()!r})"
            if not trials_given:  # the sweep's own default, not worth repeating
                rerun = rerun.replace(f", trials={POINT_TRIALS},", ",")
            options = dataclasses.replace(options, rerun=rerun)
        return Sweep(candidate, reference, options, grid, options.trials).run()
    return Check(options, sides).run()
