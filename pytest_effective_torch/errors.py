"""The one exception type for verdicts, and context for crashes in user code."""

from __future__ import annotations

import re
import sys
from typing import NoReturn


class CheckFailed(AssertionError):
    """A verdict against the candidate.

    Raised when the candidate computes another function than the reference,
    fails gradcheck, or is not shown to be faster. The message says what
    failed, by how much, on which inputs, and how to rerun exactly that case.
    It subclasses ``AssertionError`` so pytest reports it as a test failure,
    not as an error.

    >>> import pytest, torch
    >>> from pytest_effective_torch import CheckFailed, assert_same_as_reference
    >>> with pytest.raises(CheckFailed, match="shape"):
    ...     assert_same_as_reference(
    ...         lambda x: x.sum(), lambda x: x.sum(0), lambda make: (make(3, 2),)
    ...     )
    """


# Shown as pytest_effective_torch.CheckFailed in tracebacks, where users import it.
CheckFailed.__module__ = "pytest_effective_torch"


class UserCodeError(Exception):
    """Carries context for a crash in user code on Python < 3.11.

    On 3.11+ the original exception is re-raised with a note instead, so the
    user sees their own exception type.
    """


def with_context(exc: BaseException, context: str) -> NoReturn:
    """Re-raise ``exc`` (from a candidate, reference or builder) with ``context``.

    Call it inside the ``except`` block that caught ``exc``. On Python 3.11+
    the user's own exception is raised again with ``context`` as a note, so
    its type, message, traceback and chain stay theirs. On 3.10 a
    :class:`UserCodeError` carrying ``context`` is raised from it.
    """
    __tracebackhide__ = True
    if sys.version_info >= (3, 11):
        exc.add_note(context)
        raise exc
    raise UserCodeError(f"{type(exc).__name__}: {exc}\n{context}") from exc


#: What torch says when an input must not require grad, or a function has no backward.
_NOT_DIFFERENTIABLE = re.compile(
    r"is not differentiable with respect to argument '"
    r"|This input cannot have requires_grad True"
    r"|but no autograd formula was registered"
    r"|derivative for '?[\w:.]+'? is not implemented"
)


def gradient_hint(exc: BaseException, *, outputs_only: bool = True) -> str:
    """A hint line when ``exc`` is torch saying autograd could not go through (empty otherwise)."""
    if not _NOT_DIFFERENTIABLE.search(str(exc)):
        return ""
    return (
        "\nhint: the check takes gradients with respect to every floating input; keep arguments "
        "out of them with no_grad=(position or keyword name, ...)"
        + (", or compare outputs only with check_grad=False" if outputs_only else "")
    )


def skip_test(reason: str) -> NoReturn:
    """``pytest.skip(reason)``, reported at the user's test rather than at this package's line.

    (``-rs`` prints where a skip was raised; inside the engines that would be
    a line of ours, not the test that chose the variant or the clock.)
    """
    __tracebackhide__ = True
    import pytest

    raise pytest.skip.Exception(reason, _use_item_location=True)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside this package.

    Warnings about the user's code (a reference that is not dtype-generic, an
    undecided speed verdict) then name the user's test line, however deep in
    the engine they are raised.
    """
    package = __name__.rpartition(".")[0] + "."
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(package):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
