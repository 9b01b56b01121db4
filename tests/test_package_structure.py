"""The package's imports point one way: no cycles, and the layers stay in order.

Read from the source with ``ast`` (imports inside functions count too; only
``if TYPE_CHECKING:`` blocks, which never run, are left out), so the test
sees what a reader sees.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_effective_torch

ROOT = Path(pytest_effective_torch.__file__).parent
PACKAGE = "pytest_effective_torch"

#: Which top-level parts may import which: a part imports only parts listed
#: after it (the plugin at the top, the foundations at the bottom).
LAYERS = [
    ("plugin",),
    ("config",),
    ("equivalence", "speed"),
    # torch.compile as a variant: the wrapper both engines put around the candidate.
    ("compiling",),
    # Size sweeps: the grid and the builders bound to its points, shared by both engines.
    ("sizes",),
    ("inputs",),
    ("tree", "errors", "formatting", "dtypes"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def resolve(base: str, names: list[str]) -> None:
        for alias in names:
            candidate = f"{base}.{alias}" if alias != "*" else base
            out.add(candidate if candidate in modules else base)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name.startswith(PACKAGE))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                if base.startswith(PACKAGE):
                    resolve(base, [a.name for a in child.names])
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    out.discard(name)
    return {m for m in out if m in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # The public names load their modules on first use (PEP 562).
    graph[PACKAGE] |= {f"{PACKAGE}{target}" for target in pytest_effective_torch._LAZY.values()}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_reader_sees_the_imports_including_those_inside_functions():
    graph = _graph()
    # plugin/__init__ imports header inside a hook; it must be seen.
    assert f"{PACKAGE}.plugin.header" in graph[f"{PACKAGE}.plugin"]
    assert f"{PACKAGE}.tree" in graph[f"{PACKAGE}.inputs"]


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_the_package_imports_itself_back():
    assert _find_cycle(_graph()) is None


def _part(module: str) -> str:
    rest = module.removeprefix(PACKAGE + ".")
    return rest.split(".")[0]


@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_each_layer_imports_only_the_layers_below_it(layer):
    below = {part for parts in LAYERS[layer + 1 :] for part in parts}
    own = set(LAYERS[layer])
    wrong = []
    for module, imported in _graph().items():
        if module == PACKAGE or _part(module) not in own:
            continue
        for target in imported:
            part = _part(target)
            if target == PACKAGE or (part not in below and part != _part(module)):
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_the_engines_do_not_import_each_other():
    wrong = [
        f"{module} -> {target}"
        for module, imported in _graph().items()
        for target in imported
        if {_part(module), _part(target)} == {"equivalence", "speed"}
    ]
    assert not wrong, wrong


def test_no_module_grows_past_the_size_a_reader_can_hold():
    too_long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert not too_long, too_long
