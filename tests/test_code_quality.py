"""The quality gate runs with the tests: ruff (lint and format) over the repository, mypy (strict
settings from pyproject.toml) over the package, and the package's shape (module size, import
cycles, private names). A failure names the file and line to fix."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "src"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_passes(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# --- The shape of the package (DESIGN.md, rules 6 and 9) -----------------------------------------
PACKAGE = ROOT / "src" / "dicomgate"
MAX_MODULE_LINES = 450


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name) for every import in the file, at any depth (inside
    functions and ``if TYPE_CHECKING`` too); only modules of the package count."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:  # ``from package import module``
                    found.append((f"{base}.{alias.name}", None))
                elif base in modules:
                    found.append((base, alias.name))
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target, _ in _imports(name, path, modules) if target != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_is_over_the_line_limit() -> None:
    too_long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}, f"split these modules (limit {MAX_MODULE_LINES} lines): {too_long}"


def test_no_import_cycle_between_modules() -> None:
    graph = _import_graph()
    cycles = _cycles(graph)
    detail = [{member: sorted(graph[member] & set(cycle)) for member in cycle} for cycle in cycles]
    assert cycles == [], f"import cycles (module -> what it imports in the cycle): {detail}"


def test_no_module_imports_another_modules_private_names() -> None:
    modules = _modules()
    private = [
        f"{name} imports {name_imported} from {target}"
        for name, path in modules.items()
        for target, name_imported in _imports(name, path, modules)
        if name_imported is not None
        and target != name
        and name_imported.startswith("_")
        and not (name_imported.startswith("__") and name_imported.endswith("__"))
    ]
    assert private == []


class TestTheChecksThemselves:
    """The shape checks must be able to fail: they find what they look for."""

    def test_a_cycle_through_a_function_level_import_is_found(self) -> None:
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        assert _cycles(graph) == [["a", "b", "c"]]

    def test_imports_inside_functions_and_relative_imports_are_read(self, tmp_path: Path) -> None:
        source = tmp_path / "mod.py"
        source.write_text(
            "def f():\n    from dicomgate.codec.transcode import _encode_frame\n"
            "from . import pool\n"
        )
        modules = _modules()
        found = _imports("dicomgate.codec.mod", source, modules)
        assert ("dicomgate.codec.transcode", "_encode_frame") in found
        assert ("dicomgate.codec.pool", None) in found
