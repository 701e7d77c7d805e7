"""The layering written in ``docs/architecture.md`` holds in the code.

The module map there is the one source: this test reads its table (module -> may import) and
checks every import statement of the core, including those inside functions, against it; the
import graph has no cycle; the core imports neither Airflow, nor the adapters, nor the plugin.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

CORE = PROJECT_ROOT / "include"
DOC = PROJECT_ROOT / "docs" / "architecture.md"
FORBIDDEN = ("airflow", "ml_lifecycle_airflow", "ml_monitoring", "fastapi")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((CORE / "ml_lifecycle").rglob("*.py")):
        parts = path.relative_to(CORE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """(package modules imported, top-level names of every import) of one module."""
    modules = _modules()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    inside, roots = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            roots.add(target.split(".")[0])
            for candidate in (target, *(f"{target}.{a.name}" for a in node.names)):
                if candidate in modules and candidate != name:
                    inside.add(candidate)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                roots.add(alias.name.split(".")[0])
                if alias.name in modules and alias.name != name:
                    inside.add(alias.name)
    return inside, roots


def _documented() -> dict[str, set[str]]:
    table = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `(ml_lifecycle[\w.]*)` \| .* \| ([^|]*) \|$", line)
        if match:
            allowed = match.group(2).strip()
            table[match.group(1)] = set() if allowed == "-" else {
                f"ml_lifecycle.{m.strip()}" for m in allowed.split(",")}
    return table


def test_every_core_module_is_in_the_module_map_and_only_those() -> None:
    assert set(_documented()) == set(_modules())


@pytest.mark.parametrize("name", sorted(_modules()))
def test_each_module_imports_only_what_the_map_allows(name: str) -> None:
    inside, roots = _imports(name, _modules()[name])
    allowed = _documented()[name]
    assert inside <= allowed, f"{name} imports {sorted(inside - allowed)} (not in ARCHITECTURE.md)"
    assert not roots & set(FORBIDDEN), f"{name} imports {sorted(roots & set(FORBIDDEN))}"


def test_the_core_has_no_import_cycle() -> None:
    graph = {name: _imports(name, path)[0] for name, path in _modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_map_rejects_an_undeclared_import(tmp_path) -> None:
    """The checker itself: a module importing outside its row is caught."""
    path = tmp_path / "labels.py"
    path.write_text("from .registry import open_registry\n", encoding="utf-8")
    inside, _ = _imports("ml_lifecycle.labels", path)
    assert inside == {"ml_lifecycle.registry"}
    assert not inside <= _documented()["ml_lifecycle.labels"]
