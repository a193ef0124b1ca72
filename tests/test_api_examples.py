"""Every stage function a notebook calls shows the call in an `Example::` block that compiles and names only
modules and functions that exist (no Spark session is started: the examples are compiled, not run)."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import pytest

STAGES = {
    "ingest": ["generate"],
    "pairs": ["count_pairs", "count_new_pairs"],
    "seasons": ["sample"],
    "training": ["train_vectors"],
    "evaluation": ["evaluate"],
    "pipeline": ["run", "refresh"],
    "uses": ["tastes", "recommend", "audit", "clusters"],
}


def example_of(function) -> str:
    """The indented block after `Example::` in the function's docstring, dedented."""
    doc = inspect.getdoc(function) or ""
    assert "Example::" in doc, f"{function.__module__}.{function.__name__} has no Example:: block"
    block = []
    for line in doc.split("Example::", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    code = textwrap.dedent("\n".join(block)).strip()
    assert code, f"{function.__module__}.{function.__name__}: the Example:: block is empty"
    return code


CALLS = [(module, name) for module, names in STAGES.items() for name in names]


@pytest.mark.parametrize("module, name", CALLS, ids=[f"{module}.{name}" for module, name in CALLS])
def test_stage_example_compiles_and_names_what_exists(module: str, name: str) -> None:
    function = getattr(importlib.import_module(f"film2vec.{module}"), name)
    code = example_of(function)
    compile(code, f"film2vec.{module}.{name} example", "exec")
    tree = ast.parse(code)
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imported[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
    assert imported, "the example imports the film2vec modules it calls"
    called = [
        (node.func.value.id, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in imported
    ]
    assert (module, name) in called, f"the example of {module}.{name} does not call it"
    for owner, attribute in called:
        assert hasattr(imported[owner], attribute), f"film2vec.{owner} has no {attribute}"
