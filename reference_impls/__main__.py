"""``python -m reference_impls [--compile] [pytest args...]``: the main job.

Runs the bundled suite (``test_claims.py``) with pytest and the installed
plugin, and prints a table of every claim at the end. Arguments other than
``--compile`` go to pytest unchanged, so ``--device=cuda``, ``-k softmax``,
``-x`` or ``--benchmark-disable`` work as usual. ``--compile`` also runs the
torch.compile pairs (small sizes, slow to compile).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._suite import COMPILE_ENV

_ALREADY_IMPORTED = "Module already imported so cannot be rewritten; reference_impls"

USAGE = """\
usage: python -m reference_impls [--compile] [pytest arguments...]

Check the "Effective PyTorch" guide's claims with pytest-effective-torch and
print a table of them. Default device: cpu; e.g. --device=cuda, -k softmax.
  --compile   also run the torch.compile pairs (opt-in: compiling is slow)
  -h, --help  this text; pytest's own help: python -m pytest --help
"""


def pytest_args(argv: Sequence[str]) -> tuple[list[str], bool]:
    """The arguments for pytest, and whether ``--compile`` was given."""
    args = list(argv)
    compile_on = "--compile" in args
    args = [a for a in args if a != "--compile"]
    suite = str(Path(__file__).resolve().parent / "test_claims.py")
    # -rfE: failures and errors are listed again just above the table.
    # This package is imported before pytest starts (we are running it), so
    # pytest cannot rewrite its __init__'s asserts (it has none) and would say
    # so on every run; the suite's own modules are still rewritten.
    quiet = f"ignore:{_ALREADY_IMPORTED}:pytest.PytestAssertRewriteWarning"
    return [suite, "-rfE", "-W", quiet, *args], compile_on


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(USAGE, end="")
        return 0
    args, compile_on = pytest_args(argv)
    if compile_on:
        os.environ[COMPILE_ENV] = "1"
    import pytest

    return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main())
