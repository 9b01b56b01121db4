"""pytest-effective-torch: check fast PyTorch code against a slow reference.

Public API: the names in ``__all__``. The subpackages are private; their
layout follows one check down the page: ``plugin`` (pytest hooks, fixtures,
markers, summary) -> ``config`` (settings, devices, dtypes) -> the engines
``equivalence`` and ``speed`` -> ``inputs``, ``tree``, ``errors``,
``formatting``; ``sizes`` (size sweeps) sits between the engines and
``inputs``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The public names are loaded on first use (PEP 562), so that loading the
# pytest plugin, which imports this package, stays cheap for test runs that
# never call an engine.
_LAZY = {
    "ReferenceNotDtypeGeneric": ".equivalence.truth",
    "assert_same_as_reference": ".equivalence.api",
    "CheckFailed": ".errors",
    "GradcheckReport": ".equivalence.gradcheck",
    "gradcheck": ".equivalence.gradcheck",
    "Args": ".inputs",
    "Maker": ".inputs",
    "EquivalenceReport": ".equivalence.report",
    "SpeedResult": ".speed.result",
    "assert_faster_than_reference": ".speed.api",
    "SpeedInconclusiveWarning": ".speed.verdict",
    "synchronized_timer": ".speed.clocks",
    "edge_sizes": ".sizes",
    "EquivalenceSweepReport": ".equivalence.sweep",
    "SpeedSweepResult": ".speed.sweep",
}

if TYPE_CHECKING:
    from .equivalence.api import assert_same_as_reference as assert_same_as_reference
    from .equivalence.gradcheck import GradcheckReport as GradcheckReport
    from .equivalence.gradcheck import gradcheck as gradcheck
    from .equivalence.report import EquivalenceReport as EquivalenceReport
    from .equivalence.sweep import EquivalenceSweepReport as EquivalenceSweepReport
    from .equivalence.truth import ReferenceNotDtypeGeneric as ReferenceNotDtypeGeneric
    from .errors import CheckFailed as CheckFailed
    from .inputs import Args as Args
    from .inputs import Maker as Maker
    from .sizes import edge_sizes as edge_sizes
    from .speed.api import assert_faster_than_reference as assert_faster_than_reference
    from .speed.clocks import synchronized_timer as synchronized_timer
    from .speed.result import SpeedResult as SpeedResult
    from .speed.sweep import SpeedSweepResult as SpeedSweepResult
    from .speed.verdict import SpeedInconclusiveWarning as SpeedInconclusiveWarning

__all__ = [
    "Args",
    "CheckFailed",
    "EquivalenceReport",
    "EquivalenceSweepReport",
    "GradcheckReport",
    "Maker",
    "ReferenceNotDtypeGeneric",
    "SpeedInconclusiveWarning",
    "SpeedResult",
    "SpeedSweepResult",
    "assert_faster_than_reference",
    "assert_same_as_reference",
    "edge_sizes",
    "gradcheck",
    "synchronized_timer",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
