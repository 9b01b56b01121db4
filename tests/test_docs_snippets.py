"""The README and the pages under docs/ tell the truth: their Python runs, their links resolve.

Every ```python block is a test of its own, named by page and line
(``test_python_snippet_runs[docs/speed.md:42]``):

- a block whose first line names a test file (``# test_softmax.py``) is a
  test module: it runs through pytester, and every test in it must pass,
  unless an HTML comment right above the fence says otherwise
  (``<!-- outcomes: passed=1 failed=1 -->``); ``<!-- pytest-args: -v -->``
  adds command-line arguments to that run, and ``<!-- output: *text* -->``
  is a line its output must match (fnmatch), so that a snippet failing on
  purpose fails for the reason the page gives;
- any other block is executed as a script in a fresh namespace.

Speed verdicts depend on the machine, so none is asserted here: every call
of ``assert_faster_than_reference`` runs with ``min_speedup=None`` (measure,
assert nothing about time) and a short ``time_budget``; memory ratios, which
do not depend on the clock, are still asserted. A block that needs hardware
or an optional package says so (``<!-- needs: cuda -->``) and is skipped,
with that reason, where it is missing.

Every ```ini and ```toml block is a pytest configuration that must load
without a warning.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import runpy
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pytest_effective_torch
import reference_impls  # noqa: F401

pytest_plugins = ["pytester"]

# pytester's in-process runs drop the modules first imported inside them. Load
# every engine now, so that a snippet executed after such a run catches the
# same CheckFailed and warning classes as the engines raise.
for _name in pytest_effective_torch.__all__:
    getattr(pytest_effective_torch, _name)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = (README, *sorted((ROOT / "docs").glob("*.md")))

MAX_README_LINES = 400
#: Fence languages the pages may use; a bare ``` fence says nothing about its content.
LANGUAGES = {"python", "bash", "console", "text", "ini", "toml"}
#: Enough to run a speed snippet's rounds a few times, never enough to decide anything.
SPEED_BUDGET = 0.05
SPEED_CHECK = "assert_faster_than_reference"

_FENCE = re.compile(r"^\s*```([\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*([a-z-]+):\s*(.*?)\s*-->$")
_TEST_FILE = re.compile(r"^#\s*(test_\w+)\.py\s*$")


@dataclass
class Block:
    """One fenced block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, with the directives in the comments just above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    opening: Block | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        match = _FENCE.match(line)
        if opening is None and match is not None:
            opening = Block(page, number, match.group(1), "", _directives(lines, number - 1))
            body = []
        elif opening is not None and match is not None and not match.group(1):
            opening.code = "\n".join(body) + "\n"
            blocks.append(opening)
            opening = None
        elif opening is not None:
            body.append(line)
    assert opening is None, f"{opening.where}: this fence is never closed"
    return blocks


def _directives(lines: list[str], fence: int) -> dict[str, str]:
    """``<!-- key: value -->`` comments on the lines right above ``lines[fence]``."""
    directives: dict[str, str] = {}
    above = fence - 1
    while above >= 0 and (found := _DIRECTIVE.match(lines[above].strip())):
        directives[found.group(1)] = found.group(2)
        above -= 1
    return directives


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
PYTHON = [block for block in BLOCKS if block.language == "python"]
CONFIG = [block for block in BLOCKS if block.language in ("ini", "toml")]


class _MeasureOnly(ast.NodeTransformer):
    """Turn every speed assertion into a short measurement: no verdict on time."""

    def __init__(self) -> None:
        self.calls = 0

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != SPEED_CHECK:
            return node
        self.calls += 1
        forced = {"min_speedup": None, "time_budget": SPEED_BUDGET}
        node.keywords = [k for k in node.keywords if k.arg not in forced]
        node.keywords += [ast.keyword(k, ast.Constant(v)) for k, v in forced.items()]
        return node


def measure_only(code: str, filename: str) -> tuple[ast.Module, int]:
    """``code`` parsed, with its speed calls made measure-only, and how many there were."""
    tree = ast.parse(code, filename)
    transformer = _MeasureOnly()
    tree = ast.fix_missing_locations(transformer.visit(tree))
    return tree, transformer.calls


def _skip_for_missing_needs(block: Block) -> None:
    for need in block.directives.get("needs", "").split():
        if need == "cuda":
            import torch

            if not torch.cuda.is_available():
                pytest.skip(f"{block.where} needs CUDA, and torch sees no CUDA device here")
        elif importlib.util.find_spec(need) is None:
            pytest.skip(f"{block.where} needs {need}, which is not installed here")


def _expected_outcomes(block: Block, tree: ast.Module) -> dict[str, int]:
    text = block.directives.get("outcomes")
    if text is None:
        tests = [
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        ]
        return {"passed": len(tests)}
    outcomes = {}
    for part in text.split():
        key, _, value = part.partition("=")
        outcomes[key] = int(value)
    return outcomes


@pytest.fixture(scope="session")
def engines_warmed() -> None:
    """Run each engine once, outside pytester, before any snippet runs inside it.

    pytester drops the modules first imported during a test. Some cannot be
    imported twice (the CPU profiler's first use registers torch operators),
    others are slow (torch's first autograd call imports for about 2 s), so
    they are imported here, once, and stay.
    """
    import torch

    from pytest_effective_torch import (
        assert_faster_than_reference,
        assert_same_as_reference,
        gradcheck,
    )

    assert_same_as_reference(torch.sin, torch.sin, lambda make: (make(2, 3),))
    gradcheck(torch.sin, lambda make: (make(3),))
    assert_faster_than_reference(
        torch.neg, torch.neg, (torch.ones(4),), min_speedup=None, time_budget=0.01, measure_memory=True
    )


@pytest.mark.parametrize("block", PYTHON, ids=[block.where for block in PYTHON])
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")  # triton 3.9's own notice
def test_python_snippet_runs(
    engines_warmed: None, compile_loaded: None, block: Block, pytester: pytest.Pytester
) -> None:
    # engines_warmed and compile_loaded come first: pytester's snapshot of
    # sys.modules is taken when it is set up.
    _skip_for_missing_needs(block)
    first_line = block.code.splitlines()[0] if block.code.strip() else ""
    test_file = _TEST_FILE.match(first_line)
    tree, speed_calls = measure_only(block.code, block.where)
    if test_file is None:
        assert not any(
            isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
            for node in tree.body
        ), (
            f"{block.where} defines tests but does not say which file it is; "
            "make its first line a comment like '# test_mine.py' so that it runs through pytest"
        )
        # Executed like a script, from a file (Triton's @jit reads its source),
        # named after the page and line so a traceback points at the snippet.
        script = pytester.path / (re.sub(r"\W", "_", block.where) + ".py")
        script.write_text(ast.unparse(tree) if speed_calls else block.code, encoding="utf-8")
        runpy.run_path(str(script), run_name="__main__")
        return
    # The page's own text, unless speed calls were rewritten: its line numbers then match.
    source = ast.unparse(tree) if speed_calls else block.code
    pytester.makepyfile(**{test_file.group(1): source})
    args = block.directives.get("pytest-args", "").split()
    # Triton's interpreter is chosen per process, before triton is imported:
    # such a snippet gets a fresh one.
    run = pytester.runpytest_subprocess if "--effective-torch-triton-interpret" in args else pytester.runpytest
    result = run("-p", "no:hypothesispytest", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(**_expected_outcomes(block, tree))
    if "output" in block.directives:
        result.stdout.fnmatch_lines([block.directives["output"]])


CONFIG_TEST = """
def test_bound(device, dtype):
    pass
"""


@pytest.mark.parametrize("block", CONFIG, ids=[block.where for block in CONFIG])
def test_config_snippet_is_accepted(block: Block, pytester: pytest.Pytester) -> None:
    # Unknown keys and ill-typed values warn; as errors, they fail the run.
    if block.language == "toml":
        pytester.makepyprojecttoml(block.code)
    else:
        pytester.makefile(".ini", pytest=block.code)
    pytester.makepyfile(test_config=CONFIG_TEST)
    result = pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:cacheprovider", "-W", "error")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    for key in ("devices", "dtypes"):
        if f"effective_torch_{key} =" in block.code:
            result.stdout.fnmatch_lines([f"effective-torch: {key}: * [[]ini option effective_torch_{key}[]]"])


def test_every_fence_names_its_language() -> None:
    unnamed = [f"{b.where} ({b.language or 'no language'})" for b in BLOCKS if b.language not in LANGUAGES]
    assert not unnamed, f"fences must say one of {sorted(LANGUAGES)}: {unnamed}"


def test_the_readme_stays_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines; keep it to {MAX_README_LINES} and move detail to docs/"
    )


def test_the_pages_name_no_private_module() -> None:
    private = re.compile(r"\b(?:pytest_effective_torch|reference_impls)\._\w+")
    found = [
        f"{page.relative_to(ROOT).as_posix()}: {match.group(0)}"
        for page in PAGES
        for match in private.finditer(page.read_text(encoding="utf-8"))
    ]
    assert not found, f"user-facing pages must use the public API only: {found}"


# ------------------------------------------------------------------ links

_LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)\)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def outside_fences(page: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines of ``page`` that are not in a fenced block."""
    out = []
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page``."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in outside_fences(page):
        match = _HEADING.match(line)
        if match is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def relative_links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link of ``page`` that is not a URL."""
    links = []
    for number, line in outside_fences(page):
        for match in _LINK.finditer(_INLINE_CODE.sub("``", line)):
            target = match.group(1)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                links.append((number, target))
    return links


def test_the_index_links_every_page() -> None:
    index = ROOT / "docs" / "index.md"
    linked = {(index.parent / target.partition("#")[0]).resolve() for _, target in relative_links(index)}
    missing = [page.name for page in PAGES if page.parent == index.parent and page not in linked | {index}]
    assert README in linked and not missing, f"docs/index.md must link the README and every page: {missing}"


@pytest.mark.parametrize(
    "page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES]
)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for number, target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"line {number}: {target} (no file {path})")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"line {number}: {target} (no heading #{anchor} in {resolved.name})")
    assert not broken, f"{page.name} has broken links: {broken}"
