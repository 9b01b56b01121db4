"""The examples in the engine's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "pytest_effective_torch._equivalence",
        "pytest_effective_torch._gradcheck",
        "pytest_effective_torch._inputs",
        "pytest_effective_torch._tolerance",
        "pytest_effective_torch._trials",
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
