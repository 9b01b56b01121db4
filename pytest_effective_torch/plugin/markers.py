"""The plugin's markers: their documentation, their parsing, and what a bad one does.

A bad marker value (a typo such as ``dtypes("flaot16")``, a positional
``tolerance(1e-3)``) is an error on the test that carries it, reported with
one clear line at setup; the rest of the session runs. (Bad command-line and
ini values are usage errors that stop the run at once: see ``config``.)
"""

from __future__ import annotations

from typing import Any

import pytest

from ..compiling import check_variant
from ..config.devices import check_device_words
from ..dtypes import canonical_dtype_name

MARKERS = (
    "devices(*names): run this test only on these devices (cpu, cuda, cuda:N, "
    "mps), intersected with --device; skipped with a reason when nothing is left.",
    "dtypes(*dtypes): the dtypes this test supports (torch.float16 or "
    "'float16'); without --dtype these run, with --dtype the intersection runs.",
    "tolerance(atol=None, rtol=None): override the automatic tolerance of "
    "assert_same_as_reference in this test (same meaning as in "
    "torch.testing.assert_close, against the float64 truth); call arguments win.",
    "variants(*names): the variants this test runs in (eager, compile); without "
    "--effective-torch-variants these run, with it the intersection runs.",
    "opcheck(enabled): opcheck(False) turns off torch.library.opcheck of custom-op "
    "candidates in assert_same_as_reference for this test; call arguments win.",
    "effective_torch_invalid(message): set by pytest-effective-torch on a test whose "
    "marker it cannot use; the test errors with the message.",
)

#: The mark that carries a bad marker's message to the test's setup.
INVALID = "effective_torch_invalid"

_TOLERANCE_KEYS = ("atol", "rtol")


class MarkerError(ValueError):
    """A marker value the plugin cannot use; the message names the marker and the test."""


def invalid(message: str) -> pytest.MarkDecorator:
    """A mark that makes the test error at setup with ``message``."""
    return getattr(pytest.mark, INVALID)(message)


def is_invalid(item: pytest.Item) -> bool:
    return item.get_closest_marker(INVALID) is not None


def fail_if_invalid(item: pytest.Item) -> None:
    """At setup: an item carrying a bad marker errors with its message, and nothing else."""
    mark = item.get_closest_marker(INVALID)
    if mark is not None:
        pytest.fail(str(mark.args[0]), pytrace=False)


def _values(node: Any, marker: str, where: str) -> list[Any] | None:
    """A ``devices``/``dtypes`` marker's values, flattened; None without the marker."""
    mark = node.get_closest_marker(marker)
    if mark is None:
        return None
    if mark.kwargs:
        raise MarkerError(f"Invalid @pytest.mark.{marker} in {where}: takes positional arguments only, got {sorted(mark.kwargs)}")
    if not mark.args:
        raise MarkerError(f"Invalid @pytest.mark.{marker} in {where}: needs at least one argument")
    values: list[Any] = []
    for arg in mark.args:
        values += list(arg) if isinstance(arg, (list, tuple)) else [arg]
    return values


def devices(node: Any, where: str) -> list[str] | None:
    """The devices a ``devices(...)`` marker names (lower case), validated; None without one."""
    wanted = _values(node, "devices", where)
    if wanted is None:
        return None
    wanted = [str(w).lower() for w in wanted]
    try:
        check_device_words(wanted)
    except ValueError as exc:
        raise MarkerError(f"Invalid @pytest.mark.devices in {where}: {exc}") from None
    return wanted


def dtypes(node: Any, where: str) -> list[str] | None:
    """The canonical dtype names a ``dtypes(...)`` marker names; None without one."""
    declared = _values(node, "dtypes", where)
    if declared is None:
        return None
    try:
        return list(dict.fromkeys(canonical_dtype_name(str(d)) for d in declared))
    except ValueError as exc:
        raise MarkerError(f"Invalid @pytest.mark.dtypes in {where}: {exc}") from None


def variants(node: Any, where: str) -> list[str] | None:
    """The variants a ``variants(...)`` marker names, validated; None without one."""
    declared = _values(node, "variants", where)
    if declared is None:
        return None
    try:
        return list(dict.fromkeys(check_variant(v) for v in declared))
    except ValueError as exc:
        raise MarkerError(f"Invalid @pytest.mark.variants in {where}: {exc}") from None


def opcheck(node: Any) -> bool | None:
    """``@pytest.mark.opcheck(False)``'s value; None without the marker."""
    mark = node.get_closest_marker("opcheck")
    if mark is None:
        return None
    where = f"@pytest.mark.opcheck in {node.nodeid}"
    value = mark.args[0] if len(mark.args) == 1 and not mark.kwargs else mark.kwargs.get("enabled", ...)
    if len(mark.args) + len(mark.kwargs) != 1 or not isinstance(value, bool):
        given = ", ".join([*map(repr, mark.args), *(f"{k}={v!r}" for k, v in mark.kwargs.items())])
        raise MarkerError(f"Invalid {where}: takes one argument, True or False (opcheck(False) turns it off); got opcheck({given})")
    return value


def tolerance(node: Any) -> dict[str, float]:
    """atol/rtol from ``@pytest.mark.tolerance``; a bad marker is a MarkerError naming it."""
    mark = node.get_closest_marker("tolerance")
    if mark is None:
        return {}
    from ..equivalence.options import (
        check_number,  # the engine loads on first use, not with the plugin
    )
    where = f"@pytest.mark.tolerance in {node.nodeid}"
    if mark.args:
        raise MarkerError(f"Invalid {where}: takes keyword arguments atol= and rtol= only, got {mark.args!r}")
    unknown = [k for k in mark.kwargs if k not in _TOLERANCE_KEYS]
    if unknown:
        raise MarkerError(f"Invalid {where}: unknown argument(s) {unknown}; accepted: atol, rtol")
    out = {}
    for key, value in mark.kwargs.items():
        try:
            number = check_number(key, value)
        except (TypeError, ValueError) as exc:
            raise MarkerError(f"Invalid {where}: {exc}") from None
        if number is not None:
            out[key] = number
    return out


def mark_invalid_items(items: list[pytest.Item]) -> None:
    """At collection: items whose ``tolerance`` or ``opcheck`` marker is unusable will error at setup."""
    for item in items:
        if is_invalid(item):
            continue
        try:
            tolerance(item)
            opcheck(item)
        except MarkerError as exc:
            item.add_marker(invalid(str(exc)))
