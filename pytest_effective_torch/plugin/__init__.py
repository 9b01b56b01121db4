"""pytest hooks and fixtures of pytest-effective-torch.

Thin by design: each hook reads the session's :class:`Settings` and calls a
private module. torch is not imported here at module level, so loading the
plugin costs nothing until a test asks for a device-bound fixture, and CUDA
is only initialised when a CUDA device was selected.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from ..config.settings import (
    OWNED_FLAGS_KEY,
    SETTINGS_KEY,
    add_headline_flag,
    add_options,
    get_settings,
    resolve_settings,
)
from . import interpreter, markers, parametrize, plots, summary

if TYPE_CHECKING:
    import torch

    from ..inputs import Maker
    from .fixtures import BoundAssertSame, BoundGradcheck, SpeedFixture

_HEADLINE_FLAGS = (("--device", "devices"), ("--dtype", "dtypes"))

def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    # Before any conftest or test module can import triton and define kernels.
    interpreter.set_up(early_config)
    # --device/--dtype are registered after the project's own conftests, so
    # a conftest that defines --device keeps it instead of crashing the run.
    result = yield
    owned = frozenset(
        flag for flag, key in _HEADLINE_FLAGS if add_headline_flag(parser, flag, key)
    )
    early_config.stash[OWNED_FLAGS_KEY] = owned
    return result


def pytest_configure(config: pytest.Config) -> None:
    for line in markers.MARKERS:
        config.addinivalue_line("markers", line)
    workerinput = getattr(config, "workerinput", None)
    worker_seed = workerinput.get("effective_torch_seed") if workerinput else None
    settings = config.stash[SETTINGS_KEY] = resolve_settings(config, worker_seed=worker_seed)
    summary.check_usage(config, settings)
    plots.check_usage(config, settings)
    config.pluginmanager.register(summary.SpeedRecorder(config), "effective-torch-speed")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # pytest-xdist: every worker uses the controller's session seed, also
    # when it was drawn at random.
    node.workerinput["effective_torch_seed"] = get_settings(node.config).seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    from .header import header_lines

    owned = config.stash.get(OWNED_FLAGS_KEY, frozenset())
    return header_lines(get_settings(config), owned)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize.parametrize(metafunc, get_settings(metafunc.config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markers.mark_invalid_items(items)
    parametrize.mark_capability_skips(items, get_settings(config))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    markers.fail_if_invalid(item)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    from .storage import machine_info as add_machine_info

    add_machine_info(config, machine_info, get_settings(config).devices)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and parametrize.uses_plugin(item) and not markers.is_invalid(item):
        settings = get_settings(item.config)
        report.sections.append(
            ("effective-torch", parametrize.rerun_hint(item, settings))
        )
    return report


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """The torch.device this test runs on; parametrized over ``--device``."""
    return parametrize.device_from_request(request, get_settings(request.config))


@pytest.fixture
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """The torch.dtype this test runs with; parametrized over ``--dtype``."""
    return parametrize.dtype_from_request(request, get_settings(request.config))


@pytest.fixture
def variant(request: pytest.FixtureRequest) -> str:
    """``eager`` or ``compile``: how the engine fixtures run this test's candidate;
    parametrized over ``--effective-torch-variants`` (default: eager only)."""
    return parametrize.variant_from_request(request)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """This test's seed (from the session seed and the node id); seeds torch."""
    return parametrize.seed_test(request.node.nodeid, get_settings(request.config))


@pytest.fixture
def make_tensor(device: torch.device, dtype: torch.dtype, seed: int) -> Maker:
    """``make_tensor(*shape, dtype=None, low=None, high=None)`` on this test's device."""
    from ..inputs import Maker

    return Maker(device, dtype, seed)


@pytest.fixture
def assert_same_as_reference(
    request: pytest.FixtureRequest, device: torch.device, dtype: torch.dtype, seed: int, variant: str
) -> BoundAssertSame:
    """``assert_same_as_reference(candidate, reference, inputs, **options)`` on this
    test's device, dtype, seed and variant, with the ``tolerance`` and ``opcheck`` markers applied."""
    from .fixtures import BoundAssertSame

    settings = get_settings(request.config)
    return BoundAssertSame(
        request.node, device, dtype, seed, settings.trials, parametrize.rerun_hint(request.node, settings), variant
    )


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest, device: torch.device, seed: int) -> BoundGradcheck:
    """``gradcheck(fn, inputs, **options)`` on this test's device and seed (always float64)."""
    from .fixtures import BoundGradcheck

    settings = get_settings(request.config)
    return BoundGradcheck(device, seed, parametrize.rerun_hint(request.node, settings))


@pytest.fixture
def assert_faster_than_reference(
    request: pytest.FixtureRequest, benchmark: Any, device: torch.device, dtype: torch.dtype, seed: int, variant: str
) -> SpeedFixture:
    """``assert_faster_than_reference(candidate, reference, inputs, *, min_speedup=1.0, ...)``
    on this test's device, dtype, seed and variant, stored through pytest-benchmark."""
    from .fixtures import SpeedFixture

    return SpeedFixture(request, benchmark, device, dtype, seed, get_settings(request.config), variant)
