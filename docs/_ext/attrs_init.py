"""A griffe extension that gives attrs classes the ``__init__`` attrs generates for them.

griffe reads source statically and never sees the constructor that ``@attrs.define`` or
``@attrs.frozen`` writes at import time. Without it the API reference shows no signature for
such a class, and a class docstring's ``Args:`` section is reported as naming parameters that
do not exist, which fails the strict build. This extension adds the constructor back from the
class's annotated fields: in order, skipping ``ClassVar`` annotations and fields declared with
``init=False``. A class whose constructor would take private fields is made by a factory, not
by users, so it gets none.
"""

from __future__ import annotations

from typing import Any

import griffe

_ATTRS_DECORATORS = ("attrs.define", "attrs.frozen", "attrs.mutable", "attr.s", "attr.attrs")


def _is_attrs_class(cls: griffe.Class) -> bool:
    return any(
        str(decorator.value).split("(", 1)[0] in _ATTRS_DECORATORS for decorator in cls.decorators
    )


def _field_default(attribute: griffe.Attribute) -> tuple[bool, str | griffe.Expr | None]:
    """Return whether the field is an ``__init__`` parameter, and its default if it has one."""
    value = attribute.value
    if isinstance(value, griffe.ExprCall) and str(value.function) in ("attrs.field", "attr.ib"):
        keywords = {
            argument.name: argument.value
            for argument in value.arguments
            if isinstance(argument, griffe.ExprKeyword)
        }
        if str(keywords.get("init", "True")) == "False":
            return False, None
        if "default" in keywords:
            return True, keywords["default"]
        if "factory" in keywords:
            return True, f"{keywords['factory']}()"
        return True, None
    return True, value


class AttrsInit(griffe.Extension):
    """Add the attrs-generated ``__init__`` to every attrs class griffe loads."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        """Synthesize ``__init__`` once the class's members are known."""
        if "__init__" in cls.members or not _is_attrs_class(cls):
            return
        parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
        for name, member in cls.members.items():
            if not isinstance(member, griffe.Attribute) or member.annotation is None:
                continue
            if str(member.annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            in_init, default = _field_default(member)
            if not in_init:
                continue
            if name.startswith("_"):
                return
            parameters.append(
                griffe.Parameter(
                    name,
                    annotation=member.annotation,
                    kind=griffe.ParameterKind.positional_or_keyword,
                    default=default,
                )
            )
        init = griffe.Function(
            "__init__",
            parameters=griffe.Parameters(*parameters),
            returns="None",
            lineno=cls.lineno,
            endlineno=cls.lineno,
        )
        cls.set_member("__init__", init)
