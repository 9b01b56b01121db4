"""pytest-benchmark integration: one stored entry per comparison, and its context.

Each comparison becomes one benchmark entry of the test's ``benchmark``
fixture: the candidate's rounds are its stats (so ``--benchmark-save``,
``--benchmark-json``, ``--benchmark-compare`` and ``--benchmark-compare-fail``
treat it like any benchmark), and ``extra_info`` carries the speedup, its
interval, the reference's stats and where it was measured.

This needs three private pieces of pytest-benchmark (checked by
``tests/test_benchmark_bridge.py``, pinned in pyproject): the fixture's
``_make_stats(iterations)`` (creates and registers an entry), its ``_mode``
(which makes a later plain ``benchmark(...)`` call in the same test an error),
and ``config._benchmarksession`` (xdist state and the loaded comparison run).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from ..speed.result import SpeedResult

MODE = "assert_faster_than_reference(...)"


@dataclass(frozen=True)
class StorageState:
    """Whether a comparison is measured at all, and whether it is stored."""

    measure: bool
    store: bool
    note: str  # why not, for messages and the summary; "" when stored


def storage_state(benchmark: Any, config: pytest.Config, *, untimed: str | None = None) -> StorageState:
    """Read pytest-benchmark's switches: disabled by the user, or off under xdist.

    ``untimed`` says why nothing may be timed this session (Triton's interpreter).
    """
    if untimed:
        return StorageState(False, False, untimed)
    user_disabled = bool(config.getoption("benchmark_disable", False)) and not bool(
        config.getoption("benchmark_enable", False)
    )
    if user_disabled:
        return StorageState(False, False, "benchmarks are disabled (--benchmark-disable)")
    if in_xdist_worker() or getattr(_session(config), "xdist_warning", False):
        return StorageState(True, False, "storage off: pytest-benchmark is disabled under pytest-xdist")
    if benchmark is None or getattr(benchmark, "disabled", False):
        return StorageState(True, False, "storage off: pytest-benchmark is disabled")
    return StorageState(True, True, "")


def in_xdist_worker() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


def _session(config: pytest.Config) -> Any:
    return getattr(config, "_benchmarksession", None)


def claim_fixture(benchmark: Any) -> None:
    """Mark the ``benchmark`` fixture as used by us; refuse one already used."""
    if benchmark is None:
        return
    mode = getattr(benchmark, "_mode", None)
    if mode and mode != MODE:
        raise ValueError(
            f"this test already used the benchmark fixture ({mode}); a test holds one "
            "benchmark fixture, so time the plain benchmark in a separate test"
        )
    benchmark._mode = MODE


def entry_names(benchmark: Any, name: str | None, point: str | None = None) -> tuple[str, str]:
    """(name, fullname) of a comparison's entry: the test's, or ``test::name``; a sweep's
    point adds ``[n=64]`` (``test[cpu-float32][n=64]``, ``test::name[n=64]``)."""
    short, full = benchmark.name, benchmark.fullname
    if name is not None:
        short, full = f"{short}::{name}", f"{full}::{name}"
    if point is not None:
        short, full = f"{short}[{point}]", f"{full}[{point}]"
    return short, full


def _stats_dict(times: Sequence[float]) -> dict[str, Any]:
    from pytest_benchmark.stats import Stats

    stats = Stats()
    for value in times:
        stats.update(value)
    return stats.as_dict() if stats else {}


def extra_info(result: SpeedResult) -> dict[str, Any]:
    """What we add to the entry's ``extra_info`` (JSON-serializable)."""
    import torch

    info: dict[str, Any] = {
        "effective_torch": True,
        "verdict": result.verdict,
        "speedup": result.speedup,
        "speedup_low": result.interval[0] if result.interval else None,
        "speedup_high": result.interval[1] if result.interval else None,
        "confidence": result.confidence,
        "min_speedup": result.min_speedup,
        "candidate": result.candidate_name,
        "reference": result.reference_name,
        "reference_stats": _stats_dict(result.reference_times),
        "measured": result.measured,
        "timer": result.timer,
        "timer_description": result.timer_description,
        "rounds": result.rounds,
        "calls_per_round": {"reference": result.calls_per_round[0], "candidate": result.calls_per_round[1]},
        "first_call": {"reference": result.first_call[0], "candidate": result.first_call[1]},
        "variant": result.variant,
        "device": result.device,
        "device_name": result.device_name,
        "dtype": result.dtype,
        "threads": result.threads,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
    }
    if result.reference_device_time is not None:
        info["host_time"] = {
            "reference": result.reference_host_time,
            "candidate": result.candidate_host_time,
        }
        info["device_time"] = {
            "reference": result.reference_device_time,
            "candidate": result.candidate_device_time,
        }
    if result.peak_memory != (None, None):
        info["peak_memory"] = {"reference": result.peak_memory[0], "candidate": result.peak_memory[1]}
    for key, amount, rate in (("nbytes", result.nbytes, result.bandwidth), ("flops", result.flops, result.flop_rate)):
        if amount is not None:
            info[key] = amount
            info[f"{key}_per_second"] = {"reference": rate("reference"), "candidate": rate("candidate")}
    if result.copy_bandwidth is not None:
        info["copy_bandwidth"] = result.copy_bandwidth
    if result.peak_flops is not None:
        info["peak_flops"] = result.peak_flops
    if result.compile_seconds is not None:
        info["compile_seconds"] = result.compile_seconds
        info["compile"] = result.compile_description
    return info


def store(
    benchmark: Any, result: SpeedResult, name: str | None, point: str | None = None, sizes: dict[str, int] | None = None
) -> str:
    """Register ``result`` as one entry of the session; returns its fullname.

    A sweep's point is its own entry, and its sizes join the entry's
    ``params`` (so ``--benchmark-group-by=param:n`` groups by size).
    """
    iterations = max(1, result.calls_per_round[1])
    entry = benchmark._make_stats(iterations)
    entry.name, entry.fullname = entry_names(benchmark, name, point)
    entry.extra_info = {**benchmark.extra_info, **extra_info(result)}
    if point is not None:
        entry.extra_info["sweep_point"] = point
        entry.params = {**(entry.params or {}), **(sizes or {})}
        entry.param = f"{entry.param}-{point}" if entry.param else point
    entry.options = dict(entry.options, timer=f"effective_torch.{result.timer}")
    for per_call in result.candidate_times:
        entry.update(per_call * iterations)  # Metadata divides by iterations
    return str(entry.fullname)


def machine_info(config: pytest.Config, info: dict[str, Any], devices: Sequence[str]) -> None:
    """Add torch, CUDA and GPU names to pytest-benchmark's machine_info."""
    import torch

    ours: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "intra_op_threads": torch.get_num_threads(),
    }
    if any(d.startswith("cuda") for d in devices) and torch.cuda.is_available():
        ours["gpus"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
        ours["cudnn"] = torch.backends.cudnn.version()
    info["effective_torch"] = ours


def device_lock(device: str) -> Any:
    """A lock across processes for timing on ``device`` (used under xdist)."""
    from filelock import FileLock

    user = os.environ.get("USER") or os.environ.get("USERNAME") or "user"
    user = re.sub(r"[^A-Za-z0-9_.-]", "_", user)
    folder = os.path.join(tempfile.gettempdir(), f"pytest-effective-torch-{user}")
    os.makedirs(folder, exist_ok=True)
    return FileLock(os.path.join(folder, re.sub(r"[^A-Za-z0-9_.-]", "-", device) + ".lock"))


@dataclass(frozen=True)
class Saved:
    """A speedup from the saved run, and the clock it was measured with (None: not recorded)."""

    speedup: float
    timer: str | None


def saved_speedups(config: pytest.Config) -> dict[str, Saved] | None:
    """fullname -> saved speedup of the run loaded by ``--benchmark-compare``; None without one."""
    session = _session(config)
    mapping = getattr(session, "compared_mapping", None)
    if not mapping:
        return None
    out: dict[str, Saved] = {}
    for benchmarks in mapping.values():
        for fullname, bench in benchmarks.items():
            info = bench.get("extra_info") or {}
            speedup = info.get("speedup")
            if isinstance(speedup, (int, float)) and speedup > 0:
                timer = info.get("timer")
                out[fullname] = Saved(float(speedup), timer if isinstance(timer, str) else None)
    return out
