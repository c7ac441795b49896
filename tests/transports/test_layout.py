"""Where the Redis dependencies may be imported, and which transport modules stay sans-io."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at any depth of its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("relative", ["transports/_resp.py", "transports/_redis_scripts.py"])
def test_protocol_modules_do_not_import_trio(relative: str) -> None:
    """The RESP layer and the Lua scripts are sans-io: no trio, no anyio."""
    imported = _imported_modules(ROOT / relative)
    assert imported, f"no imports found in {relative}"
    assert not imported & {"trio", "anyio", "asyncio"}


def test_redis_is_imported_only_inside_transports() -> None:
    """No package but transports imports redis or hiredis (tests of transports may)."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("actors", "supervision", "examples", "bench", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.parent.name != "transports" and _imported_modules(path) & {"redis", "hiredis"}
    ]
    assert offenders == []


def test_no_asyncio_in_transports() -> None:
    """The transports run on Trio only."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "transports").rglob("*.py"))
        if "asyncio" in _imported_modules(path)
    ]
    assert offenders == []
