"""`Finished`, what `end()` and `cancel()` return, and the default grace period."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import trio

DEFAULT_GRACE = 5.0
"""Seconds of grace `end()` gives in-flight work when no `grace` is passed."""


class Finished:
    """What `end()` and `cancel()` return: awaiting it waits until the target has finished.

    The request itself takes effect when `end()`/`cancel()` is called, so the result can also
    be ignored (for example from inside the actor that is ending).
    """

    def __init__(self, event: trio.Event) -> None:
        self._event = event

    def __await__(self) -> Generator[Any, None, None]:
        return self._event.wait().__await__()

    def __repr__(self) -> str:
        return f"<Finished [{'done' if self._event.is_set() else 'pending'}]>"
