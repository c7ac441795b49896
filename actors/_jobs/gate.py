"""FifoGate: admission in strict arrival order, for sequential and bounded job handlers.

A ticket is taken synchronously when a job request is taken in (arrival order); the job's
task then waits in `enter` until its ticket is first in line and there is room. Tasks are
started in an order Trio deliberately shuffles, so a lock or limiter acquired from the tasks
themselves would admit jobs in a random order; tickets keep the order of arrival.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import trio


class FifoGate:
    """Lets at most `capacity` ticket holders in at once, strictly in ticket order.

    Args:
        capacity: how many holders may be inside at once.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity!r}")
        self.capacity = capacity
        self._tickets = itertools.count()
        self._waiting: OrderedDict[int, trio.Event] = OrderedDict()
        self._inside = 0

    def __repr__(self) -> str:
        return f"<FifoGate [inside: {self._inside}/{self.capacity}, waiting: {len(self._waiting)}]>"

    def ticket(self) -> int:
        """Take the next place in line."""
        ticket = next(self._tickets)
        self._waiting[ticket] = trio.Event()
        return ticket

    async def enter(self, ticket: int) -> None:
        """Wait until `ticket` is first in line and there is room, then go in.

        Cancellation: a checkpoint; a cancelled waiter gives up its place (see `forget`).
        """
        event = self._waiting[ticket]
        self._wake_head()
        await event.wait()
        del self._waiting[ticket]
        self._inside += 1
        self._wake_head()

    def leave(self) -> None:
        """Go out, making room for the next in line."""
        self._inside -= 1
        self._wake_head()

    def forget(self, ticket: int) -> None:
        """Give up a place in line that was never used (the job ended before it got in)."""
        if self._waiting.pop(ticket, None) is not None:
            self._wake_head()

    def _wake_head(self) -> None:
        if self._inside < self.capacity and self._waiting:
            next(iter(self._waiting.values())).set()
