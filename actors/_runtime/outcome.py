"""One policy for exception groups at the runtime's `open_*` boundaries (STYLE section 4).

Our nurseries wrap what the user's block raised in exception groups, nested one per nursery.
Those groups are ours, not the caller's business: when one error (the block's own, or one of
our tasks') is all there is, it comes out as itself; when several are, one flat group holds
them all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


def leaves(error: BaseException) -> list[BaseException]:
    """Every non-group exception inside `error`, depth first."""
    if isinstance(error, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in error.exceptions:
            found.extend(leaves(inner))
        return found
    return [error]


def single_error(error: BaseException) -> BaseException:
    """The one error inside nested single-error groups (or `error` itself)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@asynccontextmanager
async def unwrapped_errors(what: str) -> AsyncIterator[None]:
    """Re-raise errors from the block as themselves, or as one flat group.

    Cancelled leaves are dropped when a real error travels with them (Trio re-delivers a
    cancellation at the next checkpoint anyway); a group of nothing but cancellations becomes
    one `trio.Cancelled`.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        found = leaves(group)
        real = [error for error in found if not isinstance(error, trio.Cancelled)]
        chosen = real or found[:1]
        if len(chosen) == 1:
            raise chosen[0].with_traceback(chosen[0].__traceback__) from None
        raise BaseExceptionGroup(f"{what} failed", chosen) from None
