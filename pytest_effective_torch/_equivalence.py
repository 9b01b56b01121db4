"""assert_same_as_reference: does the candidate compute the reference's function?

The public function and the fixture's binding; the engine is in
:mod:`._engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._arguments import tolerance_from_marker
from ._engine import ReferenceNotDtypeGeneric, _Check
from ._inputs import Inputs, derive_seed
from ._report import EquivalenceReport

if TYPE_CHECKING:
    import torch

__all__ = ["BoundAssertSame", "ReferenceNotDtypeGeneric", "assert_same_as_reference"]

ParamMap = Mapping[str, str] | Callable[[dict[str, Any]], Mapping[str, Any]]


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
    param_map: ParamMap | None = None,
    trials: int | None = None,
    _rerun: str | None = None,
) -> EquivalenceReport:
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
    are compared). ``param_map`` maps candidate parameter names to the
    reference's (a dict), or is a callable that takes the reference's
    parameter gradients by name and returns the candidate's expected ones.

    >>> import torch
    >>> from pytest_effective_torch import assert_same_as_reference
    >>> def stable_softmax(x):
    ...     e = torch.exp(x - x.amax(-1, keepdim=True))
    ...     return e / e.sum(-1, keepdim=True)
    >>> report = assert_same_as_reference(
    ...     stable_softmax, lambda x: torch.softmax(x, -1), lambda make: (make(8, 10),)
    ... )
    >>> len(report.trials)
    6
    """
    __tracebackhide__ = True
    check = _Check(
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
        param_map=param_map,
        trials=trials,
        rerun=_rerun,
    )
    return check.run()



# ----------------------------------------------------------------- fixture


class BoundAssertSame:
    """The ``assert_same_as_reference`` fixture: the function bound to the test's device, dtype and seed.

    Each call in one test gets its own seed, derived from the test's seed and
    the call's position, so two checks in one test draw different inputs and
    a rerun with the same session seed reproduces both.
    """

    def __init__(self, node: Any, device: torch.device, dtype: torch.dtype, seed: int, trials: int, rerun: str) -> None:
        self._device = device
        self._dtype = dtype
        self._seed = seed
        self._trials = trials
        self._rerun = rerun
        self._marker = tolerance_from_marker(node)
        self.calls = 0

    def __call__(self, candidate: Callable[..., Any], reference: Callable[..., Any], inputs: Inputs, **kwargs: Any) -> EquivalenceReport:
        __tracebackhide__ = True
        call = self.calls
        self.calls += 1
        kwargs.setdefault("device", self._device)
        kwargs.setdefault("dtype", self._dtype)
        kwargs.setdefault("seed", derive_seed(self._seed, "call", call))
        kwargs.setdefault("trials", self._trials)
        if kwargs.get("atol") is None and kwargs.get("rtol") is None:
            for key, value in self._marker.items():
                kwargs[key] = value
        rerun = self._rerun + (f"  (check #{call + 1} in this test)" if call else "")
        return assert_same_as_reference(candidate, reference, inputs, _rerun=rerun, **kwargs)
