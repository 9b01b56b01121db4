"""Hooks of the bundled suite: which items apply, and the table of claims.

``reference_impls/conftest.py`` re-exports the hooks, so they act on the
suite whether it runs through ``python -m reference_impls`` or plain
``pytest reference_impls``.

Every test item of the suite is about one row of the table: a pair's
equivalence (``<pair>:equal``, or ``<pair>:caught`` for a candidate that is
wrong on purpose), its gradcheck (``<pair>:gradcheck``) or one claim
(``Claim.id``). The row key is attached to the item at collection, so even
an item skipped before it runs lands in its row; what a test measured it
adds with :func:`record`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

#: user_properties keys (values are plain JSON, so they cross xdist).
ROW_KEY = "reference_impls_row"
MEASURED_KEY = "reference_impls_measured"
#: Set on tests whose claim is measured and shown but not asserted, so the
#: table says "measured" instead of "verified" for them.
REPORT_ONLY_KEY = "reference_impls_report_only"

#: The suite's tests that run under the compile variant (with the pair's
#: ``compile_inputs``); the others check eager claims (stability at hostile
#: values, size sweeps, memory, the trap) and skip there, saying so.
COMPILED_TESTS = ("test_same_as_reference", "test_faster")

ROWS = pytest.StashKey[dict[str, "Row"]]()


def record(request: pytest.FixtureRequest, measured: str, *, asserted: bool = True) -> None:
    """Add what this test measured to its row of the claims table.

    ``asserted=False`` marks a claim that is only measured: its row reads
    "measured", never "verified", whatever the numbers say.
    """
    request.node.user_properties.append((MEASURED_KEY, measured))
    if not asserted:
        request.node.user_properties.append((REPORT_ONLY_KEY, True))


# ------------------------------------------------------------ collection


def _subject(params: dict[str, Any]) -> Any:
    for key in ("claim", "pair", "fit"):
        if key in params:
            return key, params[key]
    return None, None


def row_key(item: pytest.Item) -> str | None:
    """The table row an item belongs to, from its parametrization (``:compile`` for that variant)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    suffix = ":compile" if params.get("variant") == "compile" else ""
    key, value = _subject(params)
    if key == "claim":
        return str(value.id) + suffix
    if key == "pair":
        check = getattr(item, "originalname", item.name)
        if "gradcheck" in check:
            return f"{value.name}:gradcheck"
        return f"{value.name}:{'caught' if value.expected_failure else 'equal'}" + suffix
    return None


def _dtypes_for(params: dict[str, Any]) -> tuple[str, ...] | None:
    from . import FITS, PAIRS

    key, value = _subject(params)
    if key == "claim":
        if value.dtype:
            return (value.dtype,)
        subject = PAIRS.get(value.subject) or FITS.get(value.subject)
        return subject.dtypes if subject is not None else None
    if key in ("pair", "fit"):
        return value.dtypes
    return None


def _compile_skip(item: pytest.Item, params: dict[str, Any]) -> str | None:
    """Why an item of the compile variant does not run (None when it does)."""
    from . import PAIRS

    if params.get("variant") != "compile":
        return None
    test = getattr(item, "originalname", item.name)
    key, value = _subject(params)
    pair = value if key == "pair" else PAIRS.get(value.subject) if key == "claim" else None
    if key == "claim" and value.sizes:
        return "variant compile: size sweeps run eager only (compiling once per size is too slow)"
    if test not in COMPILED_TESTS:
        return f"variant compile: {test} checks an eager claim (only equivalence and speed run compiled)"
    if pair is None or pair.compile_inputs is None:
        return f"variant compile: {pair} has no compile_inputs (not run compiled)"
    return None


def _triton_skip(params: dict[str, Any]) -> str | None:
    """Why a Triton pair's item cannot run on its device (None when it can)."""
    from . import PAIRS
    from .triton_ops import triton_skip_reason

    key, value = _subject(params)
    pair = value if key == "pair" else PAIRS.get(value.subject) if key == "claim" else None
    if pair is None or not pair.triton:
        return None
    timing = key == "claim" and value.kind in ("faster", "less_memory")
    return triton_skip_reason(str(params.get("device", "cpu")), timing=timing)


def modify_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (pair, dtype) combinations that are not meaningful; say what skips and why.

    The suite's tests declare every dtype any pair supports; a pair that is
    only meaningful in some of them (row sums in half precision accumulate
    the loop's rounding, say) drops the others here, so the run shows no
    wall of skips. Under the compile variant only the equivalence and
    speed tests of pairs with ``compile_inputs`` run; the Triton pairs skip
    where their kernels cannot run (see
    :func:`reference_impls.triton_ops.triton_skip_reason`).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if not str(item.path).startswith(here):
            keep.append(item)
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        dtype = params.get("dtype")
        dtypes = _dtypes_for(params)
        if isinstance(dtype, str) and dtypes is not None and dtype not in dtypes:
            dropped.append(item)
            continue
        key = row_key(item)
        if key is not None:
            item.user_properties.append((ROW_KEY, key))
        compile_reason = _compile_skip(item, params)
        if compile_reason is not None:
            item.add_marker(pytest.mark.skip(reason=compile_reason))
        triton_reason = _triton_skip(params)
        if triton_reason is not None:
            item.add_marker(pytest.mark.skip(reason=triton_reason))
        claim, device = params.get("claim"), params.get("device")
        if claim is not None and claim.devices and isinstance(device, str):
            if device.split(":")[0] not in claim.devices:
                reason = f"the guide makes this claim for {', '.join(claim.devices)} only"
                item.add_marker(pytest.mark.skip(reason=reason))
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# ------------------------------------------------------------ the table


@dataclass
class Row:
    key: str
    results: list[tuple[str, str, str, str]] = field(default_factory=list)
    # (device, dtype, outcome, measured)


def _device_dtype(nodeid: str) -> tuple[str, str]:
    # "...[softmax.stable-cpu-float32]": the plugin's ids are the device and
    # dtype names, so they are read back from the node id's last parts.
    inside = nodeid.rsplit("[", 1)[-1].rstrip("]") if "[" in nodeid else ""
    parts = inside.split("-")
    device = next((p for p in parts if p.split(":")[0] in ("cpu", "cuda", "mps", "xpu")), "-")
    dtype = next((p for p in parts if p.startswith(("float", "bfloat", "int", "complex"))), "-")
    return device, dtype


def _outcome(report: pytest.TestReport) -> tuple[str, str]:
    """(result, why): why is the skip reason, or empty."""
    if hasattr(report, "wasxfail"):
        return ("caught" if report.skipped else "NOT CAUGHT"), ""
    if report.passed:
        return "verified", ""
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return "skipped", reason.removeprefix("Skipped: ")
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = str(getattr(crash, "message", "") or "").splitlines()
    return "FAILED", (message[0][:100] if message else "")


class ClaimTable:
    """Collects the suite's reports and prints one line per claim and device."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: dict[str, Row] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        key = next((v for k, v in report.user_properties if k == ROW_KEY), None)
        # One line per item: its call phase, or the phase that decided it
        # (a skip or error in setup, an error in teardown).
        decided = report.when == "call" or (report.when != "call" and not report.passed)
        if key is None or not decided:
            return
        measured = [str(v) for k, v in report.user_properties if k == MEASURED_KEY]
        outcome, why = _outcome(report)
        if outcome == "verified" and key.endswith(":caught"):
            outcome = "caught"  # the test asserting the failure message passed
        if outcome == "verified" and any(k == REPORT_ONLY_KEY for k, _ in report.user_properties):
            outcome = "measured"  # nothing was asserted about the number
        device, dtype = _device_dtype(report.nodeid)
        row = self.rows.setdefault(key, Row(key))
        if outcome == "FAILED":
            measured = [why]  # what went wrong says more than partial numbers
        row.results.append((device, dtype, outcome, "; ".join(measured) or why))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        # trylast: after pytest-benchmark's and the plugin's tables, so the
        # claims are the last thing on screen.
        if not self.rows:
            return
        terminalreporter.section("reference_impls: the guide's claims", sep="=")
        for line in table_lines(self.rows.values()):
            terminalreporter.write_line(line)


HEADER = ("claim", "the guide says", "device", "result", "dtypes", "measured")
GUIDE_WIDTH = 48


def guide_text(key: str) -> str:
    """What the guide says for a row key (gradcheck rows are the plugin's own)."""
    from . import CLAIMS

    if key.endswith(":gradcheck"):
        return "(gradients match finite differences)"
    compiled = key.endswith(":compile")
    key = key.removesuffix(":compile")
    text = next((c.guide for c in CLAIMS if c.id == key), "")
    if compiled:
        text = f"compiled: {text}"
    return text if len(text) <= GUIDE_WIDTH else text[: GUIDE_WIDTH - 3] + "..."


def _summarize(results: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """Group one row's results by (device, outcome): dtypes joined, measurements kept."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for device, dtype, outcome, measured in results:
        groups.setdefault((device, outcome), []).append((dtype, measured))
    out = []
    for (device, outcome), entries in groups.items():
        dtypes = list(dict.fromkeys(d for d, _ in entries if d != "-"))
        measures = [(d, m) for d, m in entries if m]
        if len({m for _, m in measures}) == 1:
            text = measures[0][1]
        elif len(dtypes) > 1:
            text = " | ".join(f"{d}: {m}" for d, m in measures)
        else:
            text = " | ".join(m for _, m in measures)
        out.append((device, outcome, ",".join(dtypes) or "-", text))
    return out


def table_lines(rows: Iterable[Row]) -> list[str]:
    """The claims table, aligned, header first."""
    body: list[tuple[str, ...]] = []
    for row in rows:
        guide = guide_text(row.key)
        for device, outcome, dtypes, measured in _summarize(row.results):
            body.append((row.key, guide, device, outcome, dtypes, measured))
    widths = [
        min(60, max(len(line[i]) for line in [HEADER, *body])) for i in range(len(HEADER) - 1)
    ]

    def fmt(cells: tuple[str, ...]) -> str:
        head = "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=False))
        return (head + "  " + cells[-1]).rstrip()

    return [fmt(HEADER), fmt(tuple("-" * w for w in [*widths, 8])), *map(fmt, body)]
