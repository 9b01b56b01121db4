"""Multiply tests over devices and dtypes, apply the markers, seed each test."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from ..compiling import DEFAULT_VARIANT
from ..config.devices import capability_skip_reason, device_for_worker, device_matches, worker_index
from ..config.settings import Settings
from ..dtypes import to_torch_dtype
from ..inputs import derive_seed
from . import markers

if TYPE_CHECKING:
    import torch

_PLUGIN_MODULE = "pytest_effective_torch.plugin"
#: Fixtures whose presence means a test is ours (for the rerun hint).
PLUGIN_FIXTURES = (
    "device",
    "dtype",
    "seed",
    "make_tensor",
    "variant",
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


def _skip_param(value: str, reason: str) -> Any:
    return pytest.param(value, marks=pytest.mark.skip(reason=reason), id=value)


def _device_params(metafunc: pytest.Metafunc, settings: Settings) -> list[Any]:
    wanted = markers.devices(metafunc.definition, metafunc.definition.nodeid)
    if wanted is None:
        return list(settings.devices)
    chosen = [d for d in settings.devices if any(device_matches(d, w) for w in wanted)]
    if chosen:
        return chosen
    reason = (
        f"needs device {' or '.join(wanted)}; selected: {', '.join(settings.devices)} "
        f"(run with --device={wanted[0]})"
    )
    return [_skip_param(wanted[0], reason)]


def _dtype_params(metafunc: pytest.Metafunc, settings: Settings) -> list[Any]:
    def reason(supported: list[str]) -> str:
        return f"supports dtypes {', '.join(supported)}; selected: {', '.join(settings.dtypes)}"

    supported = markers.dtypes(metafunc.definition, metafunc.definition.nodeid)
    return _marked_params(supported, settings.dtypes, settings.dtypes_explicit, reason)


def _variant_params(metafunc: pytest.Metafunc, settings: Settings) -> list[Any]:
    def reason(supported: list[str]) -> str:
        return (
            f"runs in variants {', '.join(supported)}; selected: {', '.join(settings.variants)} "
            f"(run with --effective-torch-variants={supported[0]})"
        )

    supported = markers.variants(metafunc.definition, metafunc.definition.nodeid)
    return _marked_params(supported, settings.variants, settings.variants_explicit, reason)


def _marked_params(
    supported: list[str] | None, selected: Sequence[str], explicit: bool, reason: Callable[[list[str]], str]
) -> list[Any]:
    """What a marker allows: every selected value without one, the marker's own values when none
    were selected explicitly, else those in both, or one skipped value saying why."""
    if supported is None:
        return list(selected)
    if not explicit:
        return supported
    chosen = [v for v in selected if v in supported]
    if chosen:
        return chosen
    return [_skip_param(supported[0], reason(supported))]


def _parts(value: Any) -> tuple[Any, list[Any], str]:
    """(value, marks, id) of a plain value or a ``pytest.param``."""
    if isinstance(value, str):
        return value, [], value
    return value.values[0], list(value.marks), value.id or str(value.values[0])


def _with_variants(values: list[Any], variants: list[Any]) -> list[Any]:
    """Each (device or dtype) value once per variant; the plain ``eager`` variant adds nothing to the id.

    So eager ids stay what they were before variants existed (saved
    benchmark history keeps its names): ``[cpu-float32]`` and
    ``[cpu-float32-compile]``.
    """
    out = []
    for value in values:
        v, v_marks, v_id = _parts(value)
        for variant in variants:
            w, w_marks, w_id = _parts(variant)
            suffix = "" if variant == DEFAULT_VARIANT else f"-{w_id}"
            out.append(pytest.param(v, w, marks=[*v_marks, *w_marks], id=v_id + suffix))
    return out


def parametrize(metafunc: pytest.Metafunc, settings: Settings) -> None:
    """Multiply the test over the selected devices, dtypes and variants (those it uses), markers applied.

    A bad ``devices``/``dtypes``/``variants`` marker gives the test one
    placeholder parameter that errors at setup with the marker's message.
    Variants ride on the last of the device and dtype parametrizations, so
    that the eager variant keeps the ids tests had without variants.
    """
    chosen: list[tuple[str, list[Any]]] = []
    for name, params, default in (
        ("device", _device_params, settings.devices[0]),
        ("dtype", _dtype_params, settings.dtypes[0]),
    ):
        if _steps_aside(metafunc, name):
            continue
        try:
            values = params(metafunc, settings)
        except markers.MarkerError as exc:
            values = [pytest.param(default, marks=markers.invalid(str(exc)), id=f"invalid-{name}s-marker")]
        chosen.append((name, values))
    variants: list[Any] = [DEFAULT_VARIANT]
    if not _steps_aside(metafunc, "variant"):
        try:
            variants = _variant_params(metafunc, settings)
        except markers.MarkerError as exc:
            marks = markers.invalid(str(exc))
            variants = [pytest.param(DEFAULT_VARIANT, marks=marks, id="invalid-variants-marker")]
    for i, (name, values) in enumerate(chosen):
        if i == len(chosen) - 1 and variants != [DEFAULT_VARIANT]:
            metafunc.parametrize((name, "variant"), _with_variants(values, variants), indirect=True)
        else:
            metafunc.parametrize(name, values, indirect=True)
    if not chosen and variants != [DEFAULT_VARIANT]:
        metafunc.parametrize("variant", variants, indirect=True)


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
        if device not in settings.devices or markers.is_invalid(item):
            continue  # a placeholder for a devices(...) marker, skipped or failing already
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


def variant_from_request(request: pytest.FixtureRequest) -> str:
    """``eager`` unless the test was parametrized over another variant."""
    value = getattr(request, "param", None)
    return value if isinstance(value, str) else DEFAULT_VARIANT


def seed_test(nodeid: str, settings: Settings) -> int:
    """The test's seed; also seeds torch's global generators with it."""
    import torch

    seed = derive_seed(settings.seed, nodeid)
    torch.manual_seed(seed)
    return seed


def uses_plugin(item: pytest.Item) -> bool:
    names: Sequence[str] = getattr(item, "fixturenames", ())
    return any(name in names for name in PLUGIN_FIXTURES)


def visible_devices_prefix(device: str, worker_device: str, visible: str | None) -> str:
    """``CUDA_VISIBLE_DEVICES=k `` when a bare ``cuda`` test ran on a GPU other than the first.

    Under pytest-xdist worker k runs ``cuda`` tests on ``cuda:(k mod N)``;
    the test id still says ``cuda``, so a rerun outside xdist must make that
    GPU the first visible one (an already set CUDA_VISIBLE_DEVICES is mapped
    through).

    >>> visible_devices_prefix("cuda", "cuda:1", None)
    'CUDA_VISIBLE_DEVICES=1 '
    >>> visible_devices_prefix("cuda", "cuda:1", "4,6")
    'CUDA_VISIBLE_DEVICES=6 '
    >>> visible_devices_prefix("cuda", "cuda:0", None)
    ''
    """
    if device != "cuda" or not worker_device.startswith("cuda:") or worker_device == "cuda:0":
        return ""
    index = int(worker_device.split(":")[1])
    entries = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    physical = entries[index] if index < len(entries) else str(index)
    return f"CUDA_VISIBLE_DEVICES={physical} "


def rerun_hint(item: pytest.Item, settings: Settings) -> str:
    """One line to paste to rerun this test with the same seeds and parameters."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    prefix = ""
    if isinstance(params.get("device"), str):
        device = params["device"]
        prefix = visible_devices_prefix(device, _worker_device(device, settings), os.environ.get("CUDA_VISIBLE_DEVICES"))
    parts = [prefix + "pytest", shlex.quote(item.nodeid), f"--effective-torch-seed={settings.seed}"]
    if isinstance(params.get("device"), str):
        parts.append(f"--effective-torch-device={params['device']}")
    if isinstance(params.get("dtype"), str):
        parts.append(f"--effective-torch-dtype={params['dtype']}")
    if isinstance(params.get("variant"), str) and params["variant"] != DEFAULT_VARIANT:
        parts.append(f"--effective-torch-variants={params['variant']}")
    return "rerun: " + " ".join(parts)
