"""The end-of-run table of speed verdicts, and speedup regressions against a saved run.

Each comparison leaves one row in its test report's ``user_properties``
(under ``effective_torch_speed``), which pytest-xdist carries from the
workers to the controller, so the table is complete under xdist too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest

from ..config.settings import Settings, get_settings
from ..formatting import fmt_time
from .storage import saved_speedups

if TYPE_CHECKING:
    from ..speed.result import SpeedResult

ROW_KEY = "effective_torch_speed"
ROWS = pytest.StashKey[list[dict[str, Any]]]()
REGRESSIONS = pytest.StashKey[list[str]]()
NOTICES = pytest.StashKey[list[str]]()

HEADER = ("test", "device", "dtype", "reference", "candidate", "speedup [interval]", "verdict")


def make_row(
    result: SpeedResult, *, verdict: str, nodeid: str, fullname: str, storage: str, plot: str | None = None
) -> dict[str, Any]:
    """A JSON-friendly summary row (it travels between xdist processes)."""
    row = {
        "test": nodeid,
        "entry": fullname,
        "device": result.device,
        "dtype": result.dtype,
        "reference": result.reference_time,
        "candidate": result.candidate_time,
        "speedup": result.speedup,
        "low": result.interval[0] if result.interval else None,
        "high": result.interval[1] if result.interval else None,
        "min_speedup": result.min_speedup,
        "verdict": verdict,
        "timer": result.timer,
        "storage": storage,
    }
    # Only sweeps with nbytes=/flops= and plots add these; older rows lack them.
    if result.nbytes is not None:
        row["bandwidth"] = result.bandwidth("candidate")
        row["copy_bandwidth"] = result.copy_bandwidth
    if result.flops is not None:
        row["flop_rate"] = result.flop_rate("candidate")
        row["peak_flops"] = result.peak_flops
    if plot is not None:
        row["plot"] = plot
    if result.compile_seconds is not None:
        row["compile"] = result.compile_text()
    return row


class SpeedRecorder:
    """Registered as a plugin per session: gathers rows, checks ratios, writes the table."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        collect(report, self.config)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        check_regressions(session, get_settings(self.config))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write(terminalreporter, self.config)


def collect(report: pytest.TestReport, config: pytest.Config) -> None:
    """Keep the rows a test report carries (its call phase: all phases share them)."""
    if report.when != "call":
        return
    rows = None
    for item in getattr(report, "user_properties", ()):
        name, value = item[0], item[1]
        if name == ROW_KEY and isinstance(value, dict):
            if rows is None:
                rows = config.stash.setdefault(ROWS, [])
            rows.append(value)


def _time(seconds: Any) -> str:
    return fmt_time(seconds) if isinstance(seconds, (int, float)) else "-"


def _speedup(row: dict[str, Any]) -> str:
    speedup, low, high = row.get("speedup"), row.get("low"), row.get("high")
    if not isinstance(speedup, (int, float)):
        return "-"
    text = f"{speedup:.3g}x"
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        text += f" [{low:.3g}, {high:.3g}]"
    return text


def _name(row: dict[str, Any]) -> str:
    entry, test = str(row.get("entry") or ""), str(row.get("test") or "")
    return entry if entry.startswith(test) and entry != test else test


def _verdict(row: dict[str, Any]) -> str:
    """``pass (min 2x)``; ``measured (not asserted)`` for a comparison without a min_speedup."""
    verdict, min_speedup = str(row.get("verdict")), row.get("min_speedup")
    if isinstance(min_speedup, (int, float)):
        return f"{verdict} (min {min_speedup:g}x)"
    if "min_speedup" in row and min_speedup is None:
        return f"{verdict} (not asserted)"
    return verdict


def _achieved(row: dict[str, Any]) -> str:
    """``1.2 TB/s (28% of copy)``, ``3.1 TFLOP/s (31% of peak)``: the candidate's rates, where given."""
    from ..speed.throughput import (  # the engines load only once a test runs
        fmt_bandwidth,
        fmt_flops,
    )

    parts = []
    for key, ceiling, fmt, what in (
        ("bandwidth", "copy_bandwidth", fmt_bandwidth, "copy"),
        ("flop_rate", "peak_flops", fmt_flops, "peak"),
    ):
        value, top = row.get(key), row.get(ceiling)
        if isinstance(value, (int, float)):
            share = f" ({value / top:.0%} of {what})" if isinstance(top, (int, float)) and top > 0 else ""
            parts.append(fmt(value) + share)
    return ", ".join(parts) or "-"


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as an aligned text table, header first; an ``achieved`` column when a row has rates."""
    rates = any("bandwidth" in row or "flop_rate" in row for row in rows)
    header = (*HEADER, "achieved") if rates else HEADER
    body = [
        (
            _name(row),
            str(row.get("device") or "-"),
            str(row.get("dtype") or "-"),
            _time(row.get("reference")),
            _time(row.get("candidate")),
            _speedup(row),
            _verdict(row),
            *((_achieved(row),) if rates else ()),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()

    return [fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, body)]


def speedup_drop(before: float, row: dict[str, Any], threshold: float) -> str | None:
    """The message for a speedup that fell by more than ``threshold`` percent, else None.

    The drop must be shown, not merely estimated: the whole interval of the
    current speedup (its top, where there is one) has to lie below the
    saved speedup less ``threshold`` percent. A point estimate alone flips
    with the noise of the run, the flaky compare-fail this option exists
    to avoid.
    """
    now, high = row.get("speedup"), row.get("high")
    if not isinstance(now, (int, float)) or not math.isfinite(now) or not before > 0:
        return None
    top = high if isinstance(high, (int, float)) and math.isfinite(high) else now
    allowed = before * (1.0 - threshold / 100.0)
    if not top < allowed:
        return None
    drop = (before - now) / before * 100.0
    low = row.get("low")
    interval = (
        f" [{low:.3g}x, {high:.3g}x]"
        if isinstance(low, (int, float)) and isinstance(high, (int, float))
        else ""
    )
    return (
        f"{row.get('entry')}: speedup {now:.3g}x{interval}, "
        f"was {before:.3g}x in the saved run (-{drop:.1f}%, more than "
        f"--effective-torch-max-speedup-drop={threshold:g}%: even the interval's top, "
        f"{top:.3g}x, is below {allowed:.3g}x)"
    )


def check_usage(config: pytest.Config, settings: Settings) -> None:
    """At start: ``--effective-torch-max-speedup-drop`` on the command line needs ``--benchmark-compare``.

    (Set in an ini file it is a project default that runs without a
    comparison simply do not use.)
    """
    if settings.max_speedup_drop is None or not settings.sources.get("max_speedup_drop", "").startswith("command line"):
        return
    if not config.getoption("benchmark_compare", None):
        raise pytest.UsageError(
            "--effective-torch-max-speedup-drop needs a saved run to compare with: "
            "add --benchmark-compare[=NUM|_ID]"
        )


def check_regressions(session: pytest.Session, settings: Settings) -> None:
    """Fail the run when a speedup fell by more than ``max_speedup_drop`` percent.

    Without a speed comparison in this run there is nothing to compare (an
    ini setting must not fail runs of other tests), so nothing is demanded.
    Without a saved run yet (the first run on a fresh CI runner) the run
    passes with a notice. A speedup saved with another clock (host time
    against CUDA device time) is not compared: the two measure different
    things, and their ratio would be a false regression or a false pass.
    """
    threshold = settings.max_speedup_drop
    if threshold is None or not session.config.stash.get(ROWS, []):
        return
    config = session.config
    messages = config.stash.setdefault(REGRESSIONS, [])
    notices = config.stash.setdefault(NOTICES, [])
    saved = saved_speedups(config)
    if not saved:
        notices.append(
            "--effective-torch-max-speedup-drop: no saved run to compare with yet, so no speedup "
            "was checked for a drop (save one with --benchmark-save=NAME or --benchmark-autosave; "
            "later runs compare with --benchmark-compare)"
        )
        return
    for row in config.stash.get(ROWS, []):
        entry = str(row.get("entry"))
        before = saved.get(entry)
        if before is None:
            continue
        if before.timer is not None and before.timer != row.get("timer"):
            notices.append(
                f"{entry}: not compared with the saved run, which was timed with {before.timer} time; "
                f"this run used {row.get('timer')} time (--effective-torch-timer)"
            )
            continue
        message = speedup_drop(before.speedup, row, threshold)
        if message:
            messages.append(message)
    if messages and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def write(terminalreporter: Any, config: pytest.Config) -> None:
    """The "effective-torch speed" section of the terminal summary; nothing without rows."""
    rows = config.stash.get(ROWS, [])
    regressions = config.stash.get(REGRESSIONS, [])
    notices = config.stash.get(NOTICES, [])
    if not rows:  # no speed comparison ran: no heading, not even an empty one
        return
    tr = terminalreporter
    tr.section("effective-torch speed verdicts", sep="-")
    for line in table_lines(rows):
        tr.write_line(line)
    timers = sorted({str(r.get("timer")) for r in rows})
    tr.write_line(
        "times: median per call over interleaved rounds; verdict from "
        + ", ".join(f"{t} time" for t in timers)
        + "; speedup = reference / candidate with its confidence interval"
    )
    notes = sorted({str(r.get("storage")) for r in rows if r.get("storage") not in (None, "", "saved")})
    for note in notes:
        tr.write_line(f"pytest-benchmark {note}" if note.startswith("storage") else note)
    for row in rows:
        if row.get("compile"):  # apart from the table: compile time never enters a verdict
            tr.write_line(f"{_name(row)}: {row['compile']}")
    plots = list(dict.fromkeys(str(r["plot"]) for r in rows if r.get("plot")))
    if plots:
        tr.write_line(f"plots ({len(plots)}, each with its data as CSV beside it): " + ", ".join(plots))
    for message in regressions:
        tr.write_line(f"SPEEDUP REGRESSION: {message}", red=True)
    for message in notices:
        tr.write_line(message, yellow=True)
