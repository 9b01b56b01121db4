"""The one exception type for verdicts, and context for crashes in user code."""

from __future__ import annotations

import sys


class CheckFailed(AssertionError):
    """A verdict against the candidate.

    Raised when the candidate computes another function than the reference,
    fails gradcheck, or is not shown to be faster. The message says what
    failed, by how much, on which inputs, and how to rerun exactly that case.
    It subclasses ``AssertionError`` so pytest reports it as a test failure,
    not as an error.
    """


class UserCodeError(Exception):
    """Carries context for a crash in user code on Python < 3.11.

    On 3.11+ the original exception is re-raised with a note instead, so the
    user sees their own exception type.
    """


def with_context(exc: BaseException, context: str) -> BaseException:
    """Attach ``context`` to ``exc`` raised by a candidate, reference or builder.

    Returns the exception to raise: ``exc`` itself with a note on Python
    3.11+, otherwise a :class:`UserCodeError` whose ``__cause__`` is ``exc``.
    Use as ``raise with_context(exc, "...") from ...``-free: callers write
    ``raise with_context(exc, text)`` inside the ``except`` block.
    """
    if sys.version_info >= (3, 11):
        exc.add_note(context)
        return exc
    wrapped = UserCodeError(f"{type(exc).__name__}: {exc}\n{context}")
    wrapped.__cause__ = exc
    return wrapped
