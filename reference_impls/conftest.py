"""pytest hooks for the bundled suite (see ``_suite.py``)."""

from __future__ import annotations

import pytest

from reference_impls import _suite

_PLUGIN_NAME = "reference-impls-claims"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(_PLUGIN_NAME):
        config.pluginmanager.register(_suite.ClaimTable(config), _PLUGIN_NAME)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _suite.modify_items(config, items)
