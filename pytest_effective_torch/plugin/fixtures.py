"""The engines bound to one test: the objects the engine fixtures return.

Each binds an engine function to the test's device, dtype, seed and session
settings, adds the one-line rerun hint to its failures, and gives every call
in one test its own seed (derived from the test's seed and the call's
position), so two checks in one test draw different inputs and a rerun with
the same session seed reproduces both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from ..config.settings import Settings
from ..equivalence.api import assert_same_as_reference
from ..equivalence.gradcheck import GradcheckReport, gradcheck
from ..equivalence.report import EquivalenceReport
from ..errors import skip_test
from ..inputs import Inputs, derive_seed
from ..sizes import Sizes
from ..speed import stats
from ..speed.clocks import untimed_reason
from ..speed.result import SpeedResult
from ..speed.result import options as speed_options
from ..speed.run import compare_speed
from ..speed.sweep import MinSpeedup, SpeedSweepResult, sweep_spec
from ..speed.verdict import conclude
from . import markers, storage
from .parametrize import rerun_hint
from .summary import ROW_KEY, make_row
from .sweeps import SweepRun

if TYPE_CHECKING:
    import torch


class BoundAssertSame:
    """The ``assert_same_as_reference`` fixture, with the ``tolerance`` and ``opcheck`` markers applied."""

    def __init__(
        self, node: Any, device: torch.device, dtype: torch.dtype, seed: int, trials: int, rerun: str,
        variant: str = "eager",
    ) -> None:  # fmt: skip
        self._device = device
        self._variant = variant
        self._opcheck = markers.opcheck(node)  # validated at collection, as the tolerance marker
        self._dtype = dtype
        self._seed = seed
        self._trials = trials
        self._rerun = rerun
        self._marker = markers.tolerance(node)  # validated at collection (markers.mark_invalid_items)
        self.calls = 0

    def __repr__(self) -> str:
        return f"<assert_same_as_reference on {self._device}, {self._dtype}, seed {self._seed}>"

    def __call__(self, candidate: Callable[..., Any], reference: Callable[..., Any], inputs: Inputs, **kwargs: Any) -> EquivalenceReport:
        __tracebackhide__ = True
        call = self.calls
        self.calls += 1
        kwargs.setdefault("device", self._device)
        kwargs.setdefault("dtype", self._dtype)
        kwargs.setdefault("seed", derive_seed(self._seed, "call", call))
        kwargs.setdefault("variant", self._variant)
        if self._opcheck is not None:
            kwargs.setdefault("opcheck", self._opcheck)
        if kwargs.get("sizes") is None:
            # A sweep's points run their own short plan (equivalence/sweep.py);
            # --effective-torch-trials sizes single checks.
            kwargs.setdefault("trials", self._trials)
        if kwargs.get("atol") is None and kwargs.get("rtol") is None:
            for key, value in self._marker.items():
                kwargs[key] = value
        rerun = self._rerun + (f"  (check #{call + 1} in this test)" if call else "")
        return assert_same_as_reference(candidate, reference, inputs, _rerun=rerun, **kwargs)


class BoundGradcheck:
    """The ``gradcheck`` fixture: not bound to a dtype, the check always runs on float64 copies."""

    def __init__(self, device: torch.device, seed: int, rerun: str) -> None:
        self._device = device
        self._seed = seed
        self._rerun = rerun
        self.calls = 0

    def __repr__(self) -> str:
        return f"<gradcheck on {self._device}, seed {self._seed}>"

    def __call__(self, fn: Callable[..., Any], inputs: Inputs, **kwargs: Any) -> GradcheckReport:
        __tracebackhide__ = True
        call = self.calls
        self.calls += 1
        kwargs.setdefault("device", self._device)
        kwargs.setdefault("seed", derive_seed(self._seed, "gradcheck", call))
        rerun = self._rerun + (f"  (gradcheck #{call + 1} in this test)" if call else "")
        return gradcheck(fn, inputs, _rerun=rerun, **kwargs)


# ------------------------------------------------------------ speed

#: Arguments a fixture call may override on top of the session's settings.
_OVERRIDABLE = (
    "device", "dtype", "seed", "time_budget", "threads", "timer", "flush_l2",
    "inconclusive", "confidence", "measure_memory", "variant", "compile_options",
)  # fmt: skip


class SpeedFixture:
    """``assert_faster_than_reference`` bound to a test's device, dtype, seed and settings.

    It stores each comparison as an entry of the test's pytest-benchmark
    ``benchmark`` fixture and leaves a row for the terminal summary. One
    comparison per test is stored under the test's name; to make several in
    one test, give each a ``name=`` (stored as ``test::name``), or
    parametrize the test.

    >>> def test_sum_is_faster(assert_faster_than_reference):  # doctest: +SKIP
    ...     assert_faster_than_reference(
    ...         lambda x: x.sum(1),
    ...         lambda x: torch.stack([r.sum() for r in x]),
    ...         lambda make: (make(256, 64),),
    ...         min_speedup=5,
    ...     )
    """

    def __init__(
        self,
        request: pytest.FixtureRequest,
        benchmark: Any,
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
        settings: Settings,
        variant: str = "eager",
    ) -> None:
        self._request = request
        self._benchmark = benchmark
        self._settings = settings
        self._defaults = dict(
            device=device,
            dtype=dtype,
            seed=seed,
            time_budget=settings.time_budget,
            threads=settings.threads,
            timer=settings.timer,
            flush_l2=settings.flush_l2,
            inconclusive=settings.inconclusive,
            variant=variant,
        )
        self._names: list[str | None] = []

    def __repr__(self) -> str:
        d = self._defaults
        return f"<assert_faster_than_reference on {d['device']}, {d['dtype']}, seed {d['seed']}>"

    def __call__(
        self,
        candidate: Callable[..., Any],
        reference: Callable[..., Any],
        inputs: Inputs,
        *,
        min_speedup: MinSpeedup = 1.0,
        backward: bool = False,
        max_memory_ratio: float | None = None,
        name: str | None = None,
        mode: str | Sequence[str] | None = None,
        sizes: Sizes | None = None,
        nbytes: float | Callable[..., float] | None = None,
        flops: float | Callable[..., float] | None = None,
        **overrides: Any,
    ) -> SpeedResult | SpeedSweepResult:
        """Same arguments as :func:`assert_faster_than_reference`, plus ``name``."""
        __tracebackhide__ = True
        unknown = sorted(set(overrides) - set(_OVERRIDABLE))
        if unknown:
            raise TypeError(
                f"assert_faster_than_reference() got unexpected keyword argument(s) {unknown}"
            )
        self._check_name(name)
        try:
            spec = sweep_spec(inputs, sizes, mode, backward, min_speedup, nbytes, flops)
        except (TypeError, ValueError) as exc:  # a bad argument: the caller's line, not our frames
            raise exc.with_traceback(None) from None
        swept = spec is not None
        options = speed_options(
            min_speedup=None if swept else min_speedup,
            backward=backward,
            mode=None if swept else mode,
            nbytes=None if swept else nbytes,
            flops=None if swept else flops,
            max_memory_ratio=max_memory_ratio,
            rerun=rerun_hint(self._request.node, self._settings),
            **{**self._defaults, **overrides},
        )
        state = storage.storage_state(self._benchmark, self._request.config, untimed=untimed_reason())
        storage.claim_fixture(self._benchmark)
        self._names.append(name)
        lock = storage.device_lock(str(options.device)) if storage.in_xdist_worker() else None
        if spec is not None:
            return SweepRun(self._request, self._benchmark, self._settings, state, name).run(
                candidate, reference, inputs, options, spec, lock
            )
        result = compare_speed(
            candidate, reference, inputs, options, measure=state.measure, lock=lock
        )
        fullname = self._request.node.nodeid
        if state.store:
            fullname = storage.store(self._benchmark, result, name)
        elif self._benchmark is not None:
            fullname = storage.entry_names(self._benchmark, name)[1]
        verdict = result.verdict
        try:
            if not state.measure:
                verdict = "skipped"
                skip_test(
                    f"speed verdict skipped: {state.note}; candidate and reference each ran once"
                )
            verdict = "error"
            outcome = conclude(result, options)
            verdict = result.verdict + (" (warned)" if result.verdict == "inconclusive" else "")
            return outcome
        except pytest.skip.Exception:
            if verdict != "skipped":
                verdict = "inconclusive (skipped)"
            raise
        except AssertionError:
            speed_ok = result.verdict in (stats.PASS, stats.MEASURED)
            verdict = "fail (memory)" if speed_ok else result.verdict
            raise
        finally:
            row = make_row(
                result,
                verdict=verdict,
                nodeid=self._request.node.nodeid,
                fullname=fullname,
                storage="saved" if state.store else state.note,
            )
            self._request.node.user_properties.append((ROW_KEY, row))

    def _check_name(self, name: str | None) -> None:
        __tracebackhide__ = True
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name in self._names or (self._names and name is None):
            what = f"name={name!r}" if name is not None else "no name="
            raise ValueError(
                f"assert_faster_than_reference was already called in this test with {what}; "
                "each comparison in one test needs its own name= (stored as "
                "'<test>::<name>' in pytest-benchmark), or parametrize the test"
            )
