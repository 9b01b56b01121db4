"""pytest-effective-torch: check fast PyTorch code against a slow reference.

Public API; everything in underscore modules is private.
"""

from ._errors import CheckFailed as CheckFailed
from ._inputs import Args as Args
from ._inputs import Maker as Maker

__all__ = [
    "Args",
    "CheckFailed",
    "Maker",
]
