"""One policy for exception groups at the transports' `open_*`/`connect` boundaries.

A transport runs background tasks (connection owners, heartbeats, readers) in a nursery around
the caller's block. When only the caller's block raised, its exception comes out as itself,
not wrapped in an `ExceptionGroup` by our internal nurseries (STYLE.md, section 4); when our
own tasks failed too, the group comes out whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn

import trio


@asynccontextmanager
async def open_service_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for service tasks; an exception of the block alone comes out unwrapped.

    Cancellation: both halves, like `trio.open_nursery`.
    """
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            except BaseException as exc:
                body_error = exc
                raise
    except BaseExceptionGroup as group:
        if body_error is not None:
            _, rest = group.split(lambda error: error is body_error)
            if rest is None:
                _reraise_alone(body_error)
        raise


def _reraise_alone(error: BaseException) -> NoReturn:
    """Raise `error` itself, keeping the cause and context it had."""
    cause, context, suppress = error.__cause__, error.__context__, error.__suppress_context__
    try:
        raise error
    finally:
        error.__cause__, error.__context__ = cause, context
        error.__suppress_context__ = suppress
