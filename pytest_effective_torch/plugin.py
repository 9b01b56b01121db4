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

from . import _parametrize, _summary
from ._settings import (
    OWNED_FLAGS_KEY,
    SETTINGS_KEY,
    add_headline_flag,
    add_options,
    get_settings,
    resolve_settings,
)

if TYPE_CHECKING:
    import torch

    from ._equivalence import BoundAssertSame
    from ._gradcheck import BoundGradcheck
    from ._inputs import Maker
    from ._speed import SpeedFixture

_HEADLINE_FLAGS = (("--device", "devices"), ("--dtype", "dtypes"))

MARKERS = (
    "devices(*names): run this test only on these devices (cpu, cuda, cuda:N, "
    "mps), intersected with --device; skipped with a reason when nothing is left.",
    "dtypes(*dtypes): the dtypes this test supports (torch.float16 or "
    "'float16'); without --dtype these run, with --dtype the intersection runs.",
    "tolerance(atol=None, rtol=None): override the automatic tolerance of "
    "assert_same_as_reference in this test (same meaning as in "
    "torch.testing.assert_close, against the float64 truth); call arguments win.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    # --device/--dtype are registered after the project's own conftests, so
    # a conftest that defines --device keeps it instead of crashing the run.
    result = yield
    owned = frozenset(
        flag for flag, key in _HEADLINE_FLAGS if add_headline_flag(parser, flag, key)
    )
    early_config.stash[OWNED_FLAGS_KEY] = owned
    return result


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    workerinput = getattr(config, "workerinput", None)
    worker_seed = workerinput.get("effective_torch_seed") if workerinput else None
    config.stash[SETTINGS_KEY] = resolve_settings(config, worker_seed=worker_seed)
    config.pluginmanager.register(_summary.SpeedRecorder(config), "effective-torch-speed")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # pytest-xdist: every worker uses the controller's session seed, also
    # when it was drawn at random.
    node.workerinput["effective_torch_seed"] = get_settings(node.config).seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    from ._header import header_lines

    owned = config.stash.get(OWNED_FLAGS_KEY, frozenset())
    return header_lines(get_settings(config), owned)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    _parametrize.parametrize(metafunc, get_settings(metafunc.config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _parametrize.mark_capability_skips(items, get_settings(config))


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    from ._benchmark_bridge import machine_info as add_machine_info

    add_machine_info(config, machine_info, get_settings(config).devices)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _parametrize.uses_plugin(item):
        settings = get_settings(item.config)
        report.sections.append(
            ("effective-torch", _parametrize.rerun_hint(item, settings))
        )
    return report


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """The torch.device this test runs on; parametrized over ``--device``."""
    return _parametrize.device_from_request(request, get_settings(request.config))


@pytest.fixture
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """The torch.dtype this test runs with; parametrized over ``--dtype``."""
    return _parametrize.dtype_from_request(request, get_settings(request.config))


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """This test's seed (from the session seed and the node id); seeds torch."""
    return _parametrize.seed_test(request.node.nodeid, get_settings(request.config))


@pytest.fixture
def make_tensor(device: torch.device, dtype: torch.dtype, seed: int) -> Maker:
    """``make_tensor(*shape, dtype=None, low=None, high=None)`` on this test's device."""
    from ._inputs import Maker

    return Maker(device, dtype, seed)


@pytest.fixture
def assert_same_as_reference(
    request: pytest.FixtureRequest, device: torch.device, dtype: torch.dtype, seed: int
) -> BoundAssertSame:
    """``assert_same_as_reference(candidate, reference, inputs, **options)`` on this
    test's device, dtype and seed, with ``@pytest.mark.tolerance`` applied."""
    from ._equivalence import BoundAssertSame

    settings = get_settings(request.config)
    return BoundAssertSame(
        request.node, device, dtype, seed, settings.trials, _parametrize.rerun_hint(request.node, settings)
    )


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest, device: torch.device, seed: int) -> BoundGradcheck:
    """``gradcheck(fn, inputs, **options)`` on this test's device and seed (always float64)."""
    from ._gradcheck import BoundGradcheck

    settings = get_settings(request.config)
    return BoundGradcheck(device, seed, _parametrize.rerun_hint(request.node, settings))


@pytest.fixture
def assert_faster_than_reference(
    request: pytest.FixtureRequest, benchmark: Any, device: torch.device, dtype: torch.dtype, seed: int
) -> SpeedFixture:
    """``assert_faster_than_reference(candidate, reference, inputs, *, min_speedup=1.0, ...)``
    on this test's device, dtype and seed, stored through pytest-benchmark."""
    from ._speed import SpeedFixture

    return SpeedFixture(request, benchmark, device, dtype, seed, get_settings(request.config))
