"""The package layout keeps its shape: no import cycle among project modules, no private name
imported across modules, one concern per file (under 400 lines, benchmarks included), and the
stages' boundaries (which modules may import Ray, W&B and TensorFlow at all)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("sweeper", "model")
MAX_LINES = 400  # a file this long holds more than one concern


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file, at any depth (function-level ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _project_target(module: str, names: list[str]) -> list[str]:
    """The project modules an import statement loads (``from pkg import submodule`` included)."""
    targets = [module] if module in MODULES else []
    targets += [f"{module}.{name}" for name in names if f"{module}.{name}" in MODULES]
    return targets


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names in _imports(path):
            for target in _project_target(module, names):
                # A package's __init__ importing its own submodules is how it re-exports its API.
                if target != name and not target.startswith(name + "."):
                    graph[name].add(target)
    return graph


def test_no_import_cycle_among_project_modules() -> None:
    graph = _graph()
    # Imports inside functions and under TYPE_CHECKING count: a cycle hidden by either is still
    # one stage reaching back into another.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = [
        f"{name}: from {module} import {imported}"
        for name, path in MODULES.items()
        for module, names in _imports(path)
        if module in MODULES and module != name
        for imported in names
        if imported.startswith("_") and imported != "__version__"
    ]
    assert not offenders, offenders


# The benchmarks are modules too (one per bench group), though not a package of the stages.
SIZED = {**MODULES,
         **{f"benchmarks.{path.stem}": path for path in sorted((ROOT / "benchmarks").glob("*.py"))}}


@pytest.mark.parametrize("name", sorted(SIZED))
def test_each_module_stays_one_concern_in_size(name: str) -> None:
    lines = len(SIZED[name].read_text().splitlines())
    assert lines < MAX_LINES, f"{SIZED[name]}: {lines} lines; split it by concern"


@pytest.mark.parametrize(("library", "allowed"), [
    ("ray", ("sweeper.dispatch", "sweeper.trainable")),
    # The tracking package's readback runs wandb's command line, never the library.
    ("wandb", ("sweeper.tracking.environment", "sweeper.tracking.runs", "sweeper.tracking.sweep")),
    ("tensorflow", ("model",)),
    ("keras", ("model",)),
])
def test_heavy_libraries_stay_behind_their_stage(library: str, allowed: tuple[str, ...]) -> None:
    users = sorted(
        name for name, path in MODULES.items()
        if any(module == library or module.startswith(library + ".") for module, _ in _imports(path))
    )
    assert all(any(u == a or u.startswith(a + ".") for a in allowed) for u in users), users
