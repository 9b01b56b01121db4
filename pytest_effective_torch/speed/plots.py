"""A speed sweep as a picture and a table: one PNG, its data as CSV beside it.

Panels, left to right and top to bottom: time per call of both sides
against size (log-log, each with its interval), the speedup with its
interval band and the ``min_speedup`` line, achieved GB/s or FLOP/s when
``nbytes``/``flops`` were given (with the GPU's copy bandwidth or peak),
and peak memory when it was measured. The x axis is the last size key;
other keys and modes give one curve each.

matplotlib (the ``plot`` extra) is imported here only, and used through
its object-oriented API with the Agg canvas: no display is needed and the
caller's pyplot backend is left alone.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..formatting import fmt_time
from .calls import MODES

if TYPE_CHECKING:
    from .sweep import SpeedSweepResult, SweepPoint

#: Inches per panel, and dots per inch: a two-panel plot is 900 x 324 pixels.
PANEL_SIZE = (5.0, 3.6)
DPI = 90
COLORS = {"reference": "tab:orange", "candidate": "tab:blue"}
VERDICT_MARKERS = {"pass": ("o", "tab:green"), "fail": ("X", "tab:red"), "inconclusive": ("D", "goldenrod")}
LINESTYLES = ("-", "--", ":", "-.")


def panels(sweep: SpeedSweepResult) -> list[str]:
    """Which panels the plot has: time and speedup always, rates and memory when measured."""
    out = ["time", "speedup"]
    if any(p.result.nbytes is not None for p in sweep.points):
        out.append("bandwidth")
    if any(p.result.flops is not None for p in sweep.points):
        out.append("flops")
    if any(p.result.peak_memory != (None, None) for p in sweep.points):
        out.append("memory")
    return out


def figure_pixels(sweep: SpeedSweepResult) -> tuple[int, int]:
    """(width, height) of the PNG in pixels: two panels per row."""
    count = len(panels(sweep))
    columns, rows = min(2, count), math.ceil(count / 2)
    return round(columns * PANEL_SIZE[0] * DPI), round(rows * PANEL_SIZE[1] * DPI)


def save(sweep: SpeedSweepResult, path: str | Path) -> tuple[Path, Path]:
    """Write the PNG at ``path`` (``.png`` added if missing) and the CSV beside it."""
    png = Path(path)
    if png.suffix.lower() != ".png":
        png = png.with_name(png.name + ".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    table = png.with_suffix(".csv")
    write_csv(sweep, table)
    write_png(sweep, png)
    return png, table


# ------------------------------------------------------------ CSV


def csv_rows(sweep: SpeedSweepResult) -> list[dict[str, Any]]:
    """One dict per point, every number the plot shows (seconds, bytes, per-second rates)."""
    rows = []
    for p in sweep.points:
        r = p.result
        row: dict[str, Any] = {"mode": p.mode, "point": p.point.label, **p.point.kwargs}
        row.update(
            verdict=r.verdict, min_speedup=r.min_speedup, speedup=r.speedup,
            speedup_low=r.interval[0] if r.interval else None,
            speedup_high=r.interval[1] if r.interval else None,
            confidence=r.confidence, rounds=r.rounds,
        )  # fmt: skip
        for role, interval in (("reference", p.reference_interval), ("candidate", p.candidate_interval)):
            row[f"{role}_seconds"] = r.reference_time if role == "reference" else r.candidate_time
            row[f"{role}_seconds_low"] = interval[0] if interval else None
            row[f"{role}_seconds_high"] = interval[1] if interval else None
        row.update(
            reference_peak_bytes=r.peak_memory[0], candidate_peak_bytes=r.peak_memory[1],
            nbytes=r.nbytes, flops=r.flops,
            reference_bytes_per_second=r.bandwidth("reference"),
            candidate_bytes_per_second=r.bandwidth("candidate"),
            reference_flops_per_second=r.flop_rate("reference"),
            candidate_flops_per_second=r.flop_rate("candidate"),
            copy_bytes_per_second=r.copy_bandwidth, peak_flops_per_second=r.peak_flops,
            device=r.device, dtype=r.dtype, timer=r.timer,
        )  # fmt: skip
        rows.append(row)
    return rows


def write_csv(sweep: SpeedSweepResult, path: Path) -> None:
    rows = csv_rows(sweep)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


# ------------------------------------------------------------ PNG


def _curves(sweep: SpeedSweepResult) -> list[tuple[str, list[SweepPoint]]]:
    """Points grouped into curves along the last size key: one per mode and value of the other keys."""
    x_key = sweep.grid.keys[-1]
    groups: dict[tuple[str, str], list[SweepPoint]] = {}
    for p in sweep.points:
        others = ",".join(f"{k}={v}" for k, v in p.point.items if k != x_key)
        groups.setdefault((p.mode, others), []).append(p)
    curves = []
    for (mode, others), points in groups.items():
        parts = ([MODES[mode]] if len(sweep.modes) > 1 else []) + ([others] if others else [])
        curves.append((", ".join(parts), sorted(points, key=lambda p: p.point[x_key])))
    return curves


def _positive(values: list[float | None]) -> list[float]:
    return [v if v is not None and v > 0 else math.nan for v in values]


def write_png(sweep: SpeedSweepResult, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = panels(sweep)
    width, height = figure_pixels(sweep)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    columns = min(2, len(names))
    rows = math.ceil(len(names) / 2)
    x_key = sweep.grid.keys[-1]
    curves = _curves(sweep)
    draw: dict[str, Callable[[Any, list[tuple[str, list[SweepPoint]]], str], None]] = {
        "time": _time_panel, "speedup": _speedup_panel, "bandwidth": _bandwidth_panel,
        "flops": _flops_panel, "memory": _memory_panel,
    }  # fmt: skip
    sizes = sorted({p.point[x_key] for p in sweep.points})
    for index, name in enumerate(names):
        ax = fig.add_subplot(rows, columns, index + 1)
        draw[name](ax, curves, x_key)
        ax.set_xscale("log")
        _size_ticks(ax.xaxis, sizes)
        ax.set_xlabel(x_key)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    first = sweep.points[0].result
    fig.suptitle(
        f"{sweep.candidate_name} vs {sweep.reference_name} ({first.device}, {first.dtype or '-'}): "
        f"{sweep.verdict}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")


def _log_ticks(axis: Any, text: Callable[[float], str]) -> None:
    """Ticks at 1, 2, 5 times powers of ten, labelled by ``text``: readable over narrow and wide ranges."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: text(value)))
    axis.set_minor_formatter(ticker.NullFormatter())


def _size_ticks(axis: Any, sizes: list[int]) -> None:
    """The swept sizes themselves as ticks, when there are few enough to read."""
    from matplotlib import ticker

    if len(sizes) > 8:
        _log_ticks(axis, lambda value: f"{value:g}")
        return
    axis.set_major_locator(ticker.FixedLocator(sizes))
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(ticker.NullLocator())


def _style(index: int) -> str:
    return LINESTYLES[index % len(LINESTYLES)]


def _label(role: str, name: str, curve: str) -> str:
    return f"{role} {name}" + (f" ({curve})" if curve else "")


def _time_panel(ax: Any, curves: list[tuple[str, list[SweepPoint]]], x_key: str) -> None:
    for index, (curve, points) in enumerate(curves):
        xs = [p.point[x_key] for p in points]
        for role in ("reference", "candidate"):
            times = [p.result.reference_time if role == "reference" else p.result.candidate_time for p in points]
            name = points[0].result.reference_name if role == "reference" else points[0].result.candidate_name
            ax.plot(xs, _positive(times), _style(index), marker=".", color=COLORS[role], label=_label(role, name, curve))
            bands = [p.reference_interval if role == "reference" else p.candidate_interval for p in points]
            low = _positive([b[0] if b else None for b in bands])
            high = _positive([b[1] if b else None for b in bands])
            ax.fill_between(xs, low, high, color=COLORS[role], alpha=0.2, linewidth=0)
    ax.set_yscale("log")
    _log_ticks(ax.yaxis, fmt_time)
    ax.set_ylabel("time per call")
    ax.set_title("median time per call (band: its interval)", fontsize=9)


def _speedup_panel(ax: Any, curves: list[tuple[str, list[SweepPoint]]], x_key: str) -> None:
    for index, (curve, points) in enumerate(curves):
        xs = [p.point[x_key] for p in points]
        ax.plot(xs, _positive([p.result.speedup for p in points]), _style(index), color="tab:blue",
                label="speedup" + (f" ({curve})" if curve else ""))  # fmt: skip
        low = _positive([p.result.interval[0] if p.result.interval else None for p in points])
        high = _positive([p.result.interval[1] if p.result.interval else None for p in points])
        ax.fill_between(xs, low, high, color="tab:blue", alpha=0.2, linewidth=0)
        for verdict, (marker, color) in VERDICT_MARKERS.items():
            chosen = [p for p in points if p.verdict == verdict and p.result.speedup]
            if chosen:
                ax.scatter([p.point[x_key] for p in chosen], [p.result.speedup for p in chosen],
                           marker=marker, color=color, zorder=3, s=24, label=verdict if index == 0 else None)  # fmt: skip
        required = [p.result.min_speedup for p in points]
        if any(r is not None for r in required):
            ax.plot(xs, [r if r is not None else math.nan for r in required], _style(index),
                    drawstyle="steps-mid", color="black", linewidth=1,
                    label="min_speedup" if index == 0 else None)  # fmt: skip
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_yscale("log")
    _log_ticks(ax.yaxis, lambda value: f"{value:g}x")
    ax.set_ylabel("reference time / candidate time")
    ax.set_title("speedup (band: interval)", fontsize=9)


def _rate_panel(
    ax: Any, curves: list[tuple[str, list[SweepPoint]]], x_key: str, rate: str, unit: float, ceiling: str, label: str
) -> None:
    ceilings = set()
    for index, (curve, points) in enumerate(curves):
        xs = [p.point[x_key] for p in points]
        for role in ("reference", "candidate"):
            values = [getattr(p.result, rate)(role) for p in points]
            name = points[0].result.reference_name if role == "reference" else points[0].result.candidate_name
            ax.plot(xs, _positive([v / unit if v else None for v in values]), _style(index), marker=".",
                    color=COLORS[role], label=_label(role, name, curve))  # fmt: skip
        ceilings.update(getattr(p.result, ceiling) for p in points if getattr(p.result, ceiling))
    for value in sorted(ceilings):
        ax.axhline(value / unit, color="black", linestyle="--", linewidth=1, label=f"{label} {value / unit:.3g}")
    ax.set_yscale("log")
    _log_ticks(ax.yaxis, lambda value: f"{value:g}")


def _bandwidth_panel(ax: Any, curves: list[tuple[str, list[SweepPoint]]], x_key: str) -> None:
    _rate_panel(ax, curves, x_key, "bandwidth", 1e9, "copy_bandwidth", "copy bandwidth")
    ax.set_ylabel("GB/s")
    ax.set_title("achieved bandwidth (nbytes / time)", fontsize=9)


def _flops_panel(ax: Any, curves: list[tuple[str, list[SweepPoint]]], x_key: str) -> None:
    _rate_panel(ax, curves, x_key, "flop_rate", 1e9, "peak_flops", "datasheet peak")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("achieved FLOP/s (flops / time)", fontsize=9)


def _memory_panel(ax: Any, curves: list[tuple[str, list[SweepPoint]]], x_key: str) -> None:
    for index, (curve, points) in enumerate(curves):
        xs = [p.point[x_key] for p in points]
        for role, at in (("reference", 0), ("candidate", 1)):
            peaks = [p.result.peak_memory[at] for p in points]
            name = points[0].result.reference_name if role == "reference" else points[0].result.candidate_name
            ax.plot(xs, _positive([v / 2**20 if v else None for v in peaks]), _style(index), marker=".",
                    color=COLORS[role], label=_label(role, name, curve))  # fmt: skip
    ax.set_yscale("log")
    _log_ticks(ax.yaxis, lambda value: f"{value:g}")
    ax.set_ylabel("MiB")
    ax.set_title("peak memory per call", fontsize=9)
