"""Tests for the supervision package's public surface and its import direction."""

from __future__ import annotations

import ast
from pathlib import Path

import supervision

PACKAGE = Path(supervision.__file__).parent
PURE_MODULES = ("_policy.py", "_backoff.py", "_exceptions.py")


def imported_roots(path: Path) -> set[str]:
    """Top-level packages that a module imports absolutely."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public attribute, and no private one."""
    # Names that are not identifiers ("@py_builtins") are pytest's assertion rewriting,
    # which it applies to every module of a distribution that ships a pytest plugin.
    public = {
        name for name in vars(supervision) if not name.startswith("_") and name.isidentifier()
    }
    public -= {"annotations"}  # from __future__ import annotations

    assert set(supervision.__all__) == public
    assert all(getattr(supervision, name).__module__.startswith("supervision.") for name in public)


def test_public_names_are_documented() -> None:
    """Every exported name carries a docstring."""
    assert [name for name in supervision.__all__ if not getattr(supervision, name).__doc__] == []


def test_supervision_knows_nothing_about_actors_or_transports() -> None:
    """No supervision module imports actors or transports."""
    for path in PACKAGE.glob("*.py"):
        assert not imported_roots(path) & {"actors", "transports"}, path.name


def test_pure_modules_do_not_import_trio() -> None:
    """The policy, backoff and error modules run without trio, like h11 without sockets."""
    for name in PURE_MODULES:
        assert "trio" not in imported_roots(PACKAGE / name), name
