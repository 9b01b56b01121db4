"""How tests read a user-code crash: a note on Python 3.11+, a wrapper on 3.10."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def crash(expected: type[BaseException], call: Callable[[], Any]) -> tuple[BaseException, str]:
    """Run ``call``; return the user's original exception and the context text attached to it."""
    with pytest.raises(Exception) as info:
        call()
    raised = info.value
    original = raised if isinstance(raised, expected) else raised.__cause__
    assert isinstance(original, expected), repr(raised)
    return original, "\n".join([*getattr(raised, "__notes__", []), str(raised)])
