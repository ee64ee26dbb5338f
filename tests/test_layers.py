"""Layers point one way: line (a product line's file) -> config -> pipeline (the stage
declarations) -> data -> qa -> model -> train / evaluation -> registry -> serving -> tasks -> flows.
A module may import its own package and the layers below it, never one above, never a sibling
(train and evaluation share only what lives below both), and components import nothing from
Prefect."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = (
    ("components.line",),
    ("components.config",),
    ("components.pipeline",),
    ("components.data",),
    ("components.qa",),
    ("components.model",),
    ("components.train", "components.evaluation"),
    ("components.registry",),
    ("components.serving",),
    ("tasks",),
    ("flows",),
)
RANK = {pkg: rank for rank, pkgs in enumerate(LAYERS) for pkg in pkgs}


def _package(module: str) -> str | None:
    parts = module.split(".")
    for n in (2, 1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    return None


def _modules() -> dict[str, Path]:
    files = [*REPO.glob("components/**/*.py"), *REPO.glob("tasks/*.py"), *REPO.glob("flows/*.py")]
    return {".".join(f.relative_to(REPO).with_suffix("").parts): f for f in files if f.name != "__init__.py"}


def _runtime_nodes(tree: ast.AST):
    """Every node, less `if TYPE_CHECKING:` blocks (imports for annotations only never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own_or_a_sibling(module):
    own = _package(module)
    assert own is not None, f"{module} is in no layer: add its package to LAYERS"
    for name in _imports(MODULES[module]):
        other = _package(name)
        if other is None or other == own:
            continue
        assert RANK[other] < RANK[own], (f"{module} ({own}) imports {name} ({other}), a layer "
                                         f"{'above' if RANK[other] > RANK[own] else 'beside'} it")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components.")))
def test_components_import_nothing_from_prefect(module):
    assert not {n for n in _imports(MODULES[module]) if n.split(".")[0] == "prefect"}, module


def test_no_import_cycles():
    graph = {m: {n for n in _imports(f) if n in MODULES and n != m} for m, f in MODULES.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(n):], n]))
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
