"""Every stage function a notebook calls shows the call in an `Example::` block that compiles and names only
modules and functions that exist (no Spark session is started: the examples are compiled, not run)."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import pytest

STAGES = {
    "ingest.stage": ["generate"],
    "pairs.stage": ["count_pairs", "count_new_pairs"],
    "seasons.stage": ["sample"],
    "train.stage": ["train_vectors"],
    "evaluation.stage": ["evaluate"],
    "pipeline": ["run", "refresh"],
    "apps.stage": ["tastes", "recommend", "audit", "clusters"],
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
    imported = {}  # name in the example → the module or function it imports
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = importlib.import_module(node.module)
            for alias in node.names:
                found = getattr(source, alias.name, None)
                if found is None:
                    found = importlib.import_module(f"{node.module}.{alias.name}")
                imported[alias.asname or alias.name] = found
    assert imported, "the example imports the film2vec modules or functions it calls"
    called = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in imported:
            function_called = imported[node.func.id]
            called.add((function_called.__module__, function_called.__name__))
        elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            owner = imported.get(node.func.value.id)
            if owner is not None and inspect.ismodule(owner):
                assert hasattr(owner, node.func.attr), f"{owner.__name__} has no {node.func.attr}"
                called.add((owner.__name__, node.func.attr))
    assert (f"film2vec.{module}", name) in called, f"the example of {module}.{name} does not call it"
