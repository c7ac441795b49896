"""Tests of the public surface of each package and of the layering between packages."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["actors", "transports", "supervision"]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_exist_and_are_public(package: str) -> None:
    """Every name in `__all__` is an attribute of the package and has no leading underscore."""
    module = importlib.import_module(package)
    assert module.__all__, f"{package}.__all__ is empty"
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert not name.startswith("_"), f"{package}.__all__ exports private {name!r}"
        assert hasattr(module, name), f"{package}.__all__ names missing {name!r}"


@pytest.mark.parametrize(
    "package",
    [
        "actors",
        "transports",
        "supervision",
    ],
)
def test_no_public_attribute_missing_from_all(package: str) -> None:
    """Every public attribute of the package, except its submodules, is listed in `__all__`."""
    module = importlib.import_module(package)
    missing = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        # Not identifiers ("@py_builtins"): pytest's assertion rewriting, which it applies to
        # every module of a distribution that ships a pytest plugin.
        and name.isidentifier()
        and not isinstance(value, types.ModuleType)
        and name not in module.__all__
    ]
    assert missing == []


@pytest.mark.parametrize("package", PACKAGES)
def test_exported_objects_belong_to_the_package(package: str) -> None:
    """Exported classes and functions are defined inside the package (no stray re-exports)."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        owner = getattr(value, "__module__", None)
        if owner is not None and isinstance(value, type | types.FunctionType):
            assert owner == package or owner.startswith(package + "."), (name, owner)


def test_documented_imports() -> None:
    """The names DESIGN.md tells users to import can be imported."""
    from actors import (
        Actor,
        ActorNotFound,
        ActorSystem,
        JobError,
        JobEvent,
        JobGroupError,
        JobRequest,
        JobStatus,
        JobTimeout,
        job,
        open_actor_system,
    )
    from supervision import Backoff, Restart, RestartIntensity, Strategy
    from transports import MemoryTransport

    for cls in (Actor, ActorSystem, JobEvent, JobRequest, Backoff, RestartIntensity):
        assert isinstance(cls, type), cls
    for enum_type in (JobStatus, Restart, Strategy):
        assert len(list(enum_type)) >= 3, enum_type
    assert callable(job)
    assert isinstance(MemoryTransport(), MemoryTransport)
    assert issubclass(JobGroupError, JobError)
    assert issubclass(JobTimeout, JobError)
    assert issubclass(ActorNotFound, LookupError)
    assert callable(open_actor_system)


def _run_fresh(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


@pytest.mark.parametrize("package", ["transports", "supervision"])
def test_package_does_not_import_actors(package: str) -> None:
    """Importing transports or supervision in a fresh interpreter loads no part of actors."""
    out = _run_fresh(
        f"import sys, {package}\n"
        "print(sorted(m for m in sys.modules if m == 'actors' or m.startswith('actors.')))"
    )
    assert out == "[]"


@pytest.mark.parametrize(
    ("package", "other"), [("supervision", "transports"), ("transports", "supervision")]
)
def test_supervision_and_transports_are_independent(package: str, other: str) -> None:
    """Neither of supervision and transports imports the other."""
    out = _run_fresh(f"import sys, {package}\nprint({other!r} in sys.modules)")
    assert out == "False"


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


@pytest.mark.parametrize(
    "relative",
    [
        "supervision/_policy.py",
        "supervision/_backoff.py",
        "actors/_wire/codec.py",
        "actors/_wire/envelope.py",
        "actors/_jobs/ledger.py",
        "actors/_jobs/table.py",
        "actors/_jobs/types.py",
        "actors/_routing/dedupe.py",
    ],
)
def test_pure_modules_do_not_import_trio(relative: str) -> None:
    """The sans-io modules import neither trio nor anyio."""
    imported = _imported_modules(ROOT / relative)
    assert imported, f"no imports found in {relative}"
    assert "trio" not in imported
    assert "anyio" not in imported


def test_import_scanner_sees_trio() -> None:
    """The import scanner used above does find trio where it is imported."""
    assert "trio" in _imported_modules(ROOT / "actors" / "_routing" / "mailbox.py")
