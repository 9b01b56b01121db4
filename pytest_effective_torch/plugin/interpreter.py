"""``--effective-torch-triton-interpret``: Triton kernels on CPU tensors, through Triton's interpreter.

Triton decides between compiling and interpreting when a kernel is defined
(``@triton.jit`` reads ``TRITON_INTERPRET``), so the variable is set before
the project's conftests and test modules are imported, and put back when the
session ends. If triton was imported before the plugin could set it, kernels
may already be defined for compilation: that is a usage error, said plainly,
rather than compiled kernels meeting CPU tensors later.
"""

from __future__ import annotations

import os
import sys

import pytest

from ..config.settings import early_setting

ENV = "TRITON_INTERPRET"


def set_up(config: pytest.Config) -> bool:
    """Set TRITON_INTERPRET=1 for the session when asked; True when it is on."""
    on, source = early_setting(config, "triton_interpret")
    if not on:
        return False
    previous = os.environ.get(ENV)
    if previous != "1" and "triton" in sys.modules:
        raise pytest.UsageError(
            f"--effective-torch-triton-interpret (from {source}): triton was imported before the "
            "plugin could set TRITON_INTERPRET=1, so kernels defined so far would run compiled, "
            "not interpreted; set TRITON_INTERPRET=1 in the environment instead"
        )
    os.environ[ENV] = "1"

    def restore() -> None:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous

    config.add_cleanup(restore)
    return True
