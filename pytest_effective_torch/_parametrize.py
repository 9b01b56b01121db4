"""Multiply tests over devices and dtypes, apply the markers, seed each test."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from ._devices import capability_skip_reason, device_for_worker, device_matches, worker_index
from ._dtypes import canonical_dtype_name, to_torch_dtype
from ._inputs import derive_seed
from ._settings import Settings

if TYPE_CHECKING:
    import torch

_PLUGIN_MODULE = "pytest_effective_torch.plugin"
#: Fixtures whose presence means a test is ours (for the rerun hint).
PLUGIN_FIXTURES = (
    "device",
    "dtype",
    "seed",
    "make_tensor",
    "assert_same_as_reference",
    "gradcheck",
    "assert_faster_than_reference",
)


def _argnames(mark: pytest.Mark) -> list[str]:
    names: Any = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
    if isinstance(names, str):
        return [name.strip() for name in names.split(",") if name.strip()]
    return list(names)


def _steps_aside(metafunc: pytest.Metafunc, name: str) -> bool:
    """True when the test or project parametrizes or redefines ``name`` itself."""
    if name not in metafunc.fixturenames:
        return True
    for mark in metafunc.definition.iter_markers("parametrize"):
        if name in _argnames(mark):
            return True
    fixturedefs = getattr(metafunc, "_arg2fixturedefs", {}).get(name)
    if fixturedefs:
        func = getattr(fixturedefs[-1], "func", None)
        if getattr(func, "__module__", _PLUGIN_MODULE) != _PLUGIN_MODULE:
            return True
    return False


def _marker_values(metafunc: pytest.Metafunc, marker: str) -> list[Any] | None:
    mark = metafunc.definition.get_closest_marker(marker)
    if mark is None:
        return None
    if mark.kwargs:
        raise pytest.UsageError(
            f"@pytest.mark.{marker}() takes positional arguments only, "
            f"got {sorted(mark.kwargs)} in {metafunc.definition.nodeid}"
        )
    if not mark.args:
        raise pytest.UsageError(
            f"@pytest.mark.{marker}() needs at least one argument in {metafunc.definition.nodeid}"
        )
    values: list[Any] = []
    for arg in mark.args:
        values += list(arg) if isinstance(arg, (list, tuple)) else [arg]
    return values


def _skip_param(value: str, reason: str) -> Any:
    return pytest.param(value, marks=pytest.mark.skip(reason=reason), id=value)


def _device_params(metafunc: pytest.Metafunc, settings: Settings) -> list[Any]:
    wanted = _marker_values(metafunc, "devices")
    if wanted is None:
        return list(settings.devices)
    from ._devices import check_device_words

    wanted = [str(w).lower() for w in wanted]
    try:
        check_device_words(wanted)
    except ValueError as exc:
        raise pytest.UsageError(
            f"Invalid @pytest.mark.devices in {metafunc.definition.nodeid}: {exc}"
        ) from None
    chosen = [d for d in settings.devices if any(device_matches(d, w) for w in wanted)]
    if chosen:
        return chosen
    reason = (
        f"needs device {' or '.join(wanted)}; selected: {', '.join(settings.devices)} "
        f"(run with --device={wanted[0]})"
    )
    return [_skip_param(wanted[0], reason)]


def _dtype_params(metafunc: pytest.Metafunc, settings: Settings) -> list[Any]:
    declared = _marker_values(metafunc, "dtypes")
    if declared is None:
        return list(settings.dtypes)
    try:
        supported = list(dict.fromkeys(canonical_dtype_name(str(d)) for d in declared))
    except ValueError as exc:
        raise pytest.UsageError(
            f"Invalid @pytest.mark.dtypes in {metafunc.definition.nodeid}: {exc}"
        ) from None
    if not settings.dtypes_explicit:
        return supported
    chosen = [d for d in settings.dtypes if d in supported]
    if chosen:
        return chosen
    reason = (
        f"supports dtypes {', '.join(supported)}; selected: {', '.join(settings.dtypes)}"
    )
    return [_skip_param(supported[0], reason)]


def parametrize(metafunc: pytest.Metafunc, settings: Settings) -> None:
    if not _steps_aside(metafunc, "device"):
        metafunc.parametrize("device", _device_params(metafunc, settings), indirect=True)
    if not _steps_aside(metafunc, "dtype"):
        metafunc.parametrize("dtype", _dtype_params(metafunc, settings), indirect=True)


def _worker_device(name: str, settings: Settings) -> str:
    """The device this process runs ``name`` on: a bare ``cuda`` is the xdist worker's GPU."""
    count = settings.inventory.cuda_count if settings.inventory else 0
    return device_for_worker(name, worker_index(os.environ.get("PYTEST_XDIST_WORKER")), count)


def _capability(device: str, settings: Settings, cache: dict[str, Any]) -> Any:
    if not device.startswith("cuda"):
        return None
    if device not in cache:
        import torch

        cache[device] = torch.cuda.get_device_capability(_worker_device(device, settings))
    return cache[device]


def mark_capability_skips(items: Iterable[pytest.Item], settings: Settings) -> None:
    """Skip (device, dtype) pairs the hardware cannot run, with the reason."""
    cache: dict[str, Any] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        device, dtype = params.get("device"), params.get("dtype")
        if not isinstance(device, str) or not isinstance(dtype, str):
            continue
        if device not in settings.devices:
            continue  # a placeholder for a devices(...) marker, skipped already
        device_type = device.split(":")[0]
        reason = capability_skip_reason(device_type, dtype, _capability(device, settings, cache))
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"{reason} (device {device})"))


def device_from_request(request: pytest.FixtureRequest, settings: Settings) -> torch.device:
    import torch

    name = getattr(request, "param", None) or settings.devices[0]
    device = torch.device(_worker_device(name, settings))
    if device.type == "cuda":
        # So that code calling .cuda() or allocating on "cuda" lands on this
        # worker's GPU too.
        torch.cuda.set_device(device)
    return device


def dtype_from_request(request: pytest.FixtureRequest, settings: Settings) -> torch.dtype:
    name = getattr(request, "param", None) or settings.dtypes[0]
    return to_torch_dtype(name)


def seed_test(nodeid: str, settings: Settings) -> int:
    """The test's seed; also seeds torch's global generators with it."""
    import torch

    seed = derive_seed(settings.seed, nodeid)
    torch.manual_seed(seed)
    return seed


def uses_plugin(item: pytest.Item) -> bool:
    names: Sequence[str] = getattr(item, "fixturenames", ())
    return any(name in names for name in PLUGIN_FIXTURES)


def rerun_hint(item: pytest.Item, settings: Settings) -> str:
    """One line to paste to rerun this test with the same seeds and parameters."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    parts = ["pytest", shlex.quote(item.nodeid), f"--effective-torch-seed={settings.seed}"]
    if isinstance(params.get("device"), str):
        parts.append(f"--effective-torch-device={params['device']}")
    if isinstance(params.get("dtype"), str):
        parts.append(f"--effective-torch-dtype={params['dtype']}")
    return "rerun: " + " ".join(parts)
