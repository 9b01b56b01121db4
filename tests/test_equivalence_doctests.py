"""The examples in the engine's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "pytest_effective_torch.equivalence.api",
        "pytest_effective_torch.equivalence.gradcheck",
        "pytest_effective_torch.inputs",
        "pytest_effective_torch.equivalence.tolerance",
        "pytest_effective_torch.equivalence.plan",
        "pytest_effective_torch.plugin.parametrize",
        "pytest_effective_torch.speed.stats",
        "pytest_effective_torch.sizes",
        "pytest_effective_torch.speed.sweep",
        "pytest_effective_torch.speed.throughput",
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_the_check_failed_example_runs():
    # CheckFailed reports itself as pytest_effective_torch.CheckFailed, so
    # doctest.testmod(errors) would not find it; run its docstring directly.
    from pytest_effective_torch import CheckFailed

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    tests = finder.find(CheckFailed, "CheckFailed", globs={})
    assert tests and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
