"""Mailbox: an actor's bounded inbox with an urgent lane.

Theory of operation
-------------------
Two FIFO lanes, normal and urgent, each bounded by `capacity`. `receive` always takes from the
urgent lane first, so urgent traffic (cancellations, lifecycle) goes ahead of queued work while
each lane keeps arrival order, which gives per-sender FIFO within a lane.

A full lane makes `send` wait (that is the backpressure) and `send_nowait` raise
`trio.WouldBlock`. Senders wait in their lane's own parking lot, and each item taken from a lane
wakes one sender of that lane: under backpressure a receive costs O(1), not a wake-up of every
waiting sender. Closing the mailbox wakes every waiter: senders get
`trio.ClosedResourceError`, and the receiver gets `trio.EndOfChannel` once both lanes are
drained (`drain()` hands the leftovers back so the owner can answer them).

A mailbox has one receiver. When it is parked on an empty mailbox, a sender hands the item
straight to it (as Trio's memory channels do), which saves a trip through the scheduler on
every message.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import attrs
import outcome
import trio

T = TypeVar("T")


class MailboxInterrupted(Exception):
    """A wait in `Mailbox.receive` was ended by `Mailbox.interrupt`."""


@attrs.frozen
class MailboxStatistics:
    """A snapshot of a mailbox's state, like `trio.MemoryChannelStatistics`."""

    queued: int
    """Items waiting in the normal lane."""
    queued_urgent: int
    """Items waiting in the urgent lane."""
    capacity: int
    """Bound of each lane."""
    senders_waiting: int
    """Tasks blocked in `send` because a lane is full."""
    closed: bool
    """Whether the mailbox refuses new items."""


class Mailbox(Generic[T]):
    """A bounded two-lane FIFO queue with one receiver.

    Args:
        capacity: most items each lane holds before `send` waits.

    Raises:
        ValueError: if `capacity` is not positive.
    """

    def __init__(self, capacity: int = 1000) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity!r}")
        self.capacity = capacity
        """Bound of each lane."""
        self._normal: deque[T] = deque()
        self._urgent: deque[T] = deque()
        self._closed = False
        self._receiver: trio.lowlevel.Task | None = None
        self._normal_senders = trio.lowlevel.ParkingLot()
        self._urgent_senders = trio.lowlevel.ParkingLot()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Mailbox [{state}, queued: {len(self._normal)}, urgent: {len(self._urgent)}, "
            f"capacity: {self.capacity}]>"
        )

    def send_nowait(self, item: T, *, urgent: bool = False) -> None:
        """Queue `item` without waiting.

        Raises:
            trio.WouldBlock: if its lane is full.
            trio.ClosedResourceError: if the mailbox is closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("mailbox is closed")
        receiver = self._receiver
        if receiver is not None:
            # The receiver only parks on an empty mailbox: hand the item over directly.
            self._receiver = None
            trio.lowlevel.reschedule(receiver, outcome.Value(item))
            return
        lane = self._urgent if urgent else self._normal
        if len(lane) >= self.capacity:
            raise trio.WouldBlock
        lane.append(item)

    async def send(self, item: T, *, urgent: bool = False) -> None:
        """Queue `item`, waiting while its lane is full.

        Raises:
            trio.ClosedResourceError: if the mailbox is or becomes closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self.send_nowait(item, urgent=urgent)
            except trio.WouldBlock:
                await (self._urgent_senders if urgent else self._normal_senders).park()
            else:
                self._pass_room_on(urgent)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return

    def receive_nowait(self) -> T:
        """Take the next item, urgent lane first, without waiting.

        Raises:
            trio.WouldBlock: if both lanes are empty.
            trio.EndOfChannel: if both lanes are empty and the mailbox is closed.
        """
        if self._urgent:
            item = self._urgent.popleft()
            # One place freed in this lane: one waiting sender of it may take it.
            self._urgent_senders.unpark()
        elif self._normal:
            item = self._normal.popleft()
            self._normal_senders.unpark()
        elif self._closed:
            raise trio.EndOfChannel
        else:
            raise trio.WouldBlock
        return item

    async def receive(self) -> T:
        """Take the next item, urgent lane first, waiting while both lanes are empty.

        Raises:
            trio.EndOfChannel: once the mailbox is closed and drained.
            trio.BusyResourceError: if another task is already waiting in `receive`.
            MailboxInterrupted: if `interrupt` was called while waiting.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            item = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        if self._receiver is not None:
            raise trio.BusyResourceError("another task is already receiving from this mailbox")
        self._receiver = trio.lowlevel.current_task()

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._receiver = None
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    def interrupt(self) -> None:
        """Wake the task waiting in `receive`, which raises `MailboxInterrupted`.

        The owner uses it to stop its receive loop without a cancel scope per message.
        """
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            trio.lowlevel.reschedule(receiver, outcome.Error(MailboxInterrupted()))

    def close(self) -> None:
        """Refuse new items and wake every waiting sender and receiver. Idempotent."""
        self._closed = True
        self._wake_all_senders()
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            trio.lowlevel.reschedule(receiver, outcome.Error(trio.EndOfChannel()))

    def drain(self) -> list[T]:
        """Remove and return everything still queued, urgent items first."""
        items = [*self._urgent, *self._normal]
        self._urgent.clear()
        self._normal.clear()
        self._wake_all_senders()
        return items

    def _pass_room_on(self, urgent: bool) -> None:
        # A woken sender may not have used the place it was woken for (it handed its item
        # straight to a parked receiver): while its lane has room, wake the next sender, so no
        # sender stays parked beside a free place.
        lane, senders = (
            (self._urgent, self._urgent_senders) if urgent else (self._normal, self._normal_senders)
        )
        if senders and len(lane) < self.capacity:
            senders.unpark()

    def _wake_all_senders(self) -> None:
        self._normal_senders.unpark_all()
        self._urgent_senders.unpark_all()

    @property
    def receiver_waiting(self) -> bool:
        """Whether the receiver is parked in `receive` (so both lanes are empty)."""
        return self._receiver is not None

    @property
    def closed(self) -> bool:
        """Whether the mailbox refuses new items."""
        return self._closed

    def statistics(self) -> MailboxStatistics:
        """Return a snapshot of the mailbox's state."""
        return MailboxStatistics(
            queued=len(self._normal),
            queued_urgent=len(self._urgent),
            capacity=self.capacity,
            senders_waiting=len(self._normal_senders) + len(self._urgent_senders),
            closed=self._closed,
        )
