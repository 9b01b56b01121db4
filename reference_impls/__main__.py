"""``python -m reference_impls [pytest args...]``: the main job.

Runs the bundled suite (``test_claims.py``) with pytest and the installed
plugin, and prints a table of every claim at the end. Arguments go to pytest
unchanged, so ``--device=cuda``, ``-k softmax``, ``-x``,
``--benchmark-disable`` or ``--effective-torch-variants=eager,compile``
(torch.compile of the candidates too, at small sizes) work as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

_ALREADY_IMPORTED = "Module already imported so cannot be rewritten; reference_impls"

USAGE = """\
usage: python -m reference_impls [pytest arguments...]

Check the "Effective PyTorch" guide's claims with pytest-effective-torch and
print a table of them. Default device: cpu; e.g. --device=cuda, -k softmax.
  --effective-torch-variants=eager,compile
              also check and time torch.compile of the candidates (small
              sizes; compiling is slow on a CPU)
  -h, --help  this text; pytest's own help: python -m pytest --help
"""

#: What ``--compile`` (this command's flag until the plugin had variants) says now.
COMPILE_MOVED = (
    "python -m reference_impls: --compile is gone; the compiled candidates are a "
    "variant of the plugin now: use --effective-torch-variants=eager,compile"
)


def pytest_args(argv: Sequence[str]) -> list[str]:
    """The arguments for pytest: the suite, then ours, then the caller's."""
    args = list(argv)
    suite = str(Path(__file__).resolve().parent / "test_claims.py")
    # -rfE: failures and errors are listed again just above the table.
    # This package is imported before pytest starts (we are running it), so
    # pytest cannot rewrite its __init__'s asserts (it has none) and would say
    # so on every run; the suite's own modules are still rewritten.
    quiet = f"ignore:{_ALREADY_IMPORTED}:pytest.PytestAssertRewriteWarning"
    return [suite, "-rfE", "-W", quiet, *args]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(USAGE, end="")
        return 0
    if "--compile" in argv:
        print(COMPILE_MOVED, file=sys.stderr)
        return 4  # pytest's usage-error status
    args = pytest_args(argv)
    import pytest

    return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main())
