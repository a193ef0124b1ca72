"""The package's modules import each other without a cycle: read from their source (every import statement,
those inside functions and under TYPE_CHECKING included), so a cycle fails here before it fails an import."""

from __future__ import annotations

import ast
from pathlib import Path

import film2vec

PACKAGE = Path(film2vec.__file__).parent


def module_imports() -> dict[str, set[str]]:
    """Each film2vec module and the film2vec modules it imports."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {target for target in imported if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) through each module that is on one."""
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def test_cycles_are_found_in_a_planted_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    graph = module_imports()
    assert {"film2vec.cli", "film2vec.config", "film2vec.train.trainer"} <= set(graph)
    assert "film2vec.tables" in graph["film2vec.train.stage"]  # the walk sees the package's own imports
    assert cycles(graph) == []
