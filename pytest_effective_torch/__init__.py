"""pytest-effective-torch: check fast PyTorch code against a slow reference.

Public API; everything in underscore modules is private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The public names are loaded on first use (PEP 562), so that loading the
# pytest plugin, which imports this package, stays cheap for test runs that
# never call an engine.
_LAZY = {
    "ReferenceNotDtypeGeneric": "._equivalence",
    "assert_same_as_reference": "._equivalence",
    "CheckFailed": "._errors",
    "GradcheckReport": "._gradcheck",
    "gradcheck": "._gradcheck",
    "Args": "._inputs",
    "Maker": "._inputs",
    "EquivalenceReport": "._report",
    "SpeedResult": "._speed",
    "assert_faster_than_reference": "._speed",
    "SpeedInconclusiveWarning": "._speed_verdict",
    "synchronized_timer": "._timing",
}

if TYPE_CHECKING:
    from ._equivalence import ReferenceNotDtypeGeneric as ReferenceNotDtypeGeneric
    from ._equivalence import assert_same_as_reference as assert_same_as_reference
    from ._errors import CheckFailed as CheckFailed
    from ._gradcheck import GradcheckReport as GradcheckReport
    from ._gradcheck import gradcheck as gradcheck
    from ._inputs import Args as Args
    from ._inputs import Maker as Maker
    from ._report import EquivalenceReport as EquivalenceReport
    from ._speed import SpeedResult as SpeedResult
    from ._speed import assert_faster_than_reference as assert_faster_than_reference
    from ._speed_verdict import SpeedInconclusiveWarning as SpeedInconclusiveWarning
    from ._timing import synchronized_timer as synchronized_timer

__all__ = [
    "Args",
    "CheckFailed",
    "EquivalenceReport",
    "GradcheckReport",
    "Maker",
    "ReferenceNotDtypeGeneric",
    "SpeedInconclusiveWarning",
    "SpeedResult",
    "assert_faster_than_reference",
    "assert_same_as_reference",
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
