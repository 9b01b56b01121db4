"""pytest-effective-torch: check fast PyTorch code against a slow reference.

Public API; everything in underscore modules is private.
"""

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
