"""pytest-effective-torch: check fast PyTorch code against a slow reference.

Public API; everything in underscore modules is private.
"""

from ._errors import CheckFailed as CheckFailed
from ._inputs import Args as Args
from ._inputs import Maker as Maker
from ._speed import SpeedResult as SpeedResult
from ._speed import assert_faster_than_reference as assert_faster_than_reference
from ._speed_verdict import SpeedInconclusiveWarning as SpeedInconclusiveWarning
from ._timing import synchronized_timer as synchronized_timer

__all__ = [
    "Args",
    "CheckFailed",
    "Maker",
    "SpeedInconclusiveWarning",
    "SpeedResult",
    "assert_faster_than_reference",
    "synchronized_timer",
]
