"""``--effective-torch-plots=DIR``: where a sweep's plot goes, and the check that matplotlib is there.

Nothing here imports an engine or matplotlib at module level: the plugin
loads this module at start-up. The drawing is :mod:`..speed.plots`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..config.settings import Settings


def check_usage(config: pytest.Config, settings: Settings) -> None:
    """At start: plots need matplotlib, and a directory; a usage error (exit code 4) says what is wrong."""
    if settings.plots is None:
        return
    source = settings.sources.get("plots", "command line")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise pytest.UsageError(
            f"--effective-torch-plots={settings.plots} (from {source}) needs matplotlib, which is not "
            "installed: pip install 'pytest-effective-torch[plot]' (the plot extra)"
        ) from None
    folder = Path(config.invocation_params.dir, settings.plots)
    if folder.exists() and not folder.is_dir():
        raise pytest.UsageError(
            f"--effective-torch-plots={settings.plots} (from {source}) names a file; expected a "
            "directory (it is created if missing)"
        )


def plot_path(settings: Settings, config: pytest.Config, entry: str) -> Path:
    """``DIR/<entry, odd characters as dashes>.png``, DIR relative to where pytest was started."""
    assert settings.plots is not None
    stem = re.sub(r"[^A-Za-z0-9_.=,+-]+", "-", entry).strip("-") or "sweep"
    return Path(config.invocation_params.dir, settings.plots, stem + ".png")
