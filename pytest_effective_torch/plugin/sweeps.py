"""A speed sweep inside a test: one pytest-benchmark entry and one summary row per point, and a plot.

Each point is stored as the test's entry with the point appended
(``test[cpu-float32][n=64]``, or ``test::name[n=64]`` with ``name=``), so
``--benchmark-compare`` and ``--effective-torch-max-speedup-drop`` work per
point. With ``--effective-torch-plots=DIR`` the sweep's PNG and CSV are
written to DIR, named after the test, whatever the verdict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ..config.settings import Settings
from ..errors import skip_test
from ..speed import stats
from ..speed.result import SpeedOptions
from ..speed.sweep import SpeedSweepResult, SweepPoint, SweepSpec, conclude_sweep, run_sweep
from ..speed.verdict import memory_problem
from . import storage
from .plots import plot_path
from .summary import ROW_KEY, make_row


class SweepRun:
    """One ``assert_faster_than_reference(..., sizes=...)`` call of the fixture."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        benchmark: Any,
        settings: Settings,
        state: storage.StorageState,
        name: str | None,
    ) -> None:
        self.request = request
        self.benchmark = benchmark
        self.settings = settings
        self.state = state
        self.name = name
        self.entries: list[tuple[SweepPoint, str]] = []

    def store(self, point: SweepPoint) -> None:
        fullname = self.request.node.nodeid + f"[{point.label}]"
        if self.state.store:
            fullname = storage.store(self.benchmark, point.result, self.name, point.label, point.point.kwargs)
        elif self.benchmark is not None:
            fullname = storage.entry_names(self.benchmark, self.name, point.label)[1]
        self.entries.append((point, fullname))

    def run(
        self, candidate: Any, reference: Any, inputs: Any, options: SpeedOptions, spec: SweepSpec, lock: Any
    ) -> SpeedSweepResult:
        __tracebackhide__ = True
        sweep: SpeedSweepResult | None = None
        policy = ""
        plot = None
        try:
            sweep = run_sweep(
                candidate, reference, inputs, options, spec, measure=self.state.measure, lock=lock, on_point=self.store
            )
            if self.settings.plots is not None and self.state.measure:
                plot = self.write_plot(sweep)
            if not self.state.measure:
                skip_test(f"speed sweep skipped: {self.state.note}; candidate and reference each ran once per size")
            policy = "error"
            outcome = conclude_sweep(sweep, options)
            policy = " (warned)"
            return outcome
        except pytest.skip.Exception:
            policy = " (skipped)"
            raise
        except AssertionError:
            policy = ""
            raise
        finally:
            self.rows(options, policy, plot)

    def write_plot(self, sweep: SpeedSweepResult) -> str:
        base = self.request.node.nodeid + (f"::{self.name}" if self.name else "")
        png, _ = sweep.save_plot(plot_path(self.settings, self.request.config, base))
        relative = os.path.relpath(png, self.request.config.invocation_params.dir)
        return png.as_posix() if relative.startswith("..") else Path(relative).as_posix()

    def rows(self, options: SpeedOptions, policy: str, plot: str | None) -> None:
        """One summary row per point measured, with its own verdict."""
        for point, fullname in self.entries:
            verdict = point.verdict
            if not self.state.measure:
                verdict = "skipped"
            elif verdict in (stats.PASS, stats.MEASURED) and memory_problem(point.result, options.max_memory_ratio):
                verdict = "fail (memory)"
            elif verdict == stats.INCONCLUSIVE and policy in (" (warned)", " (skipped)"):
                verdict += policy
            row = make_row(
                point.result,
                verdict=verdict,
                nodeid=self.request.node.nodeid,
                fullname=fullname,
                storage="saved" if self.state.store else self.state.note,
                plot=plot,
            )
            self.request.node.user_properties.append((ROW_KEY, row))
