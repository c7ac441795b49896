"""Every public name has a docstring, as the API reference (mkdocstrings) sees it.

The packages are loaded with griffe, the loader behind mkdocstrings, so this checks exactly
what `make docs` renders: a name counts as documented when griffe finds a docstring for it.
For a class that means its own docstring, one for each public method and property (inherited
ones included, when they come from our packages), and an attribute docstring (a string right
after the assignment) for each public field, attrs field, msgspec Struct field and enum
member. An ``Attributes:`` section in the class docstring does not count: it documents the
name in a table but leaves the member itself blank in the reference.
"""

from __future__ import annotations

from pathlib import Path

import griffe
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "actors",
    "actors.testing",
    "actors.client",
    "supervision",
    "transports",
    "transports.testing",
]
OURS = ("actors", "supervision", "transports")


def _load(package: str, search_path: Path) -> griffe.Module:
    loader = griffe.GriffeLoader(
        search_paths=[str(search_path)], docstring_parser=griffe.Parser.google
    )
    module = loader.load(package)
    assert isinstance(module, griffe.Module)
    return module


def _defined_here(obj: griffe.Object | griffe.Alias) -> griffe.Object:
    """Follow re-exports and inheritance to the object where the name is defined."""
    target = obj.final_target if isinstance(obj, griffe.Alias) else obj
    assert isinstance(target, griffe.Object)
    return target


def missing_docstrings(
    package: str, search_path: Path = ROOT, ours: tuple[str, ...] = OURS
) -> list[str]:
    """Return ``public name (defined at path)`` for every public name without a docstring.

    Args:
        package: the package whose `__all__` is checked.
        search_path: the folder the package is loaded from.
        ours: prefixes of the modules whose inherited members are checked too.
    """
    module = _load(package, search_path)
    missing: list[str] = []
    seen: set[str] = set()

    def check(public: str, obj: griffe.Object) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if not obj.docstring or not obj.docstring.value.strip():
            missing.append(public if public == obj.path else f"{public} (defined at {obj.path})")

    if not module.docstring:
        missing.append(package)
    exports = [str(name) for name in module.exports or []]
    assert exports, f"{package} has no __all__"
    for name in exports:
        obj = _defined_here(module[name])
        check(f"{package}.{name}", obj)
        if not isinstance(obj, griffe.Class):
            continue
        for member_name, member in obj.all_members.items():
            if member_name.startswith("_"):
                continue
            target = _defined_here(member)
            if not target.path.startswith(ours):
                continue
            check(f"{package}.{name}.{member_name}", target)
    return missing


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_a_docstring(package: str) -> None:
    """Each name in `__all__`, and each public member of an exported class, is documented."""
    missing = missing_docstrings(package)
    if missing:
        listing = "\n".join(f"  {name}" for name in missing)
        pytest.fail(
            f"{len(missing)} public names of {package} lack a docstring:\n{listing}",
            pytrace=False,
        )


def test_the_check_sees_a_missing_docstring(tmp_path: Path) -> None:
    """The check reports an undocumented field, enum member and method, and accepts the rest."""
    package = tmp_path / "sample"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""A sample package."""\n'
        "import enum\n\n"
        "import attrs\n\n"
        '__all__ = ["Color", "Point"]\n\n\n'
        "class Color(enum.Enum):\n"
        '    """Colors."""\n\n'
        "    RED = 1\n"
        '    """Documented."""\n'
        "    BLUE = 2\n\n\n"
        "@attrs.frozen\n"
        "class Point:\n"
        '    """A point."""\n\n'
        "    x: int\n"
        '    """Documented."""\n'
        "    y: int\n\n"
        "    def norm(self) -> float:\n"
        "        return 0.0\n"
    )
    assert missing_docstrings("sample", tmp_path, ("sample",)) == [
        "sample.Color.BLUE",
        "sample.Point.y",
        "sample.Point.norm",
    ]
