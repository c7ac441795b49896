"""Tests for the bounded two-lane mailbox (`actors._routing.mailbox`)."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from actors import Mailbox, MailboxStatistics


def _receive_all_nowait(mailbox: Mailbox[str]) -> list[str]:
    items = []
    while True:
        try:
            items.append(mailbox.receive_nowait())
        except trio.WouldBlock:
            return items


async def test_each_lane_is_fifo() -> None:
    """Items come out of each lane in the order they went in."""
    mailbox: Mailbox[str] = Mailbox(capacity=10)
    for item in ["n1", "n2", "n3"]:
        await mailbox.send(item)
    for item in ["u1", "u2"]:
        mailbox.send_nowait(item, urgent=True)
    received = [await mailbox.receive() for _ in range(5)]
    assert received == ["u1", "u2", "n1", "n2", "n3"]


async def test_urgent_goes_ahead_of_queued_normal_items() -> None:
    """An urgent item sent after queued normal ones is received before them."""
    mailbox: Mailbox[str] = Mailbox()
    mailbox.send_nowait("work-1")
    mailbox.send_nowait("work-2")
    mailbox.send_nowait("cancel", urgent=True)
    assert await mailbox.receive() == "cancel"
    mailbox.send_nowait("work-3")
    mailbox.send_nowait("stop", urgent=True)
    assert _receive_all_nowait(mailbox) == ["stop", "work-1", "work-2", "work-3"]


async def test_receive_waits_for_an_item() -> None:
    """receive blocks on an empty mailbox until something is sent."""
    mailbox: Mailbox[str] = Mailbox()
    received: list[str] = []

    async def receiver() -> None:
        received.append(await mailbox.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        assert received == []
        mailbox.send_nowait("hello")
    assert received == ["hello"]


async def test_receive_nowait_on_empty_mailbox_would_block() -> None:
    """receive_nowait on an open, empty mailbox raises WouldBlock."""
    mailbox: Mailbox[int] = Mailbox()
    with pytest.raises(trio.WouldBlock):
        mailbox.receive_nowait()


@pytest.mark.parametrize("urgent", [False, True], ids=["normal", "urgent"])
async def test_send_nowait_on_full_lane_would_block(urgent: bool) -> None:
    """A full lane makes send_nowait raise WouldBlock; the other lane still has room."""
    mailbox: Mailbox[int] = Mailbox(capacity=2)
    mailbox.send_nowait(1, urgent=urgent)
    mailbox.send_nowait(2, urgent=urgent)
    with pytest.raises(trio.WouldBlock):
        mailbox.send_nowait(3, urgent=urgent)
    mailbox.send_nowait(4, urgent=not urgent)
    stats = mailbox.statistics()
    assert (stats.queued_urgent, stats.queued) == ((2, 1) if urgent else (1, 2))


async def test_send_waits_until_the_receiver_takes_one() -> None:
    """send on a full lane blocks until the receiver makes room, then queues the item."""
    mailbox: Mailbox[str] = Mailbox(capacity=1)
    mailbox.send_nowait("first")
    sent = trio.Event()

    async def sender() -> None:
        await mailbox.send("second")
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert mailbox.statistics().senders_waiting == 1
        assert mailbox.receive_nowait() == "first"
        await trio.testing.wait_all_tasks_blocked()
        assert sent.is_set()
    assert mailbox.statistics().senders_waiting == 0
    assert _receive_all_nowait(mailbox) == ["second"]


async def test_blocked_senders_on_both_lanes_each_get_in() -> None:
    """Senders blocked on each lane get in as their own lane gets room; none is lost."""
    mailbox: Mailbox[str] = Mailbox(capacity=1)
    mailbox.send_nowait("n1")
    mailbox.send_nowait("u1", urgent=True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(mailbox.send, "n2")
        nursery.start_soon(partial(mailbox.send, "u2", urgent=True))
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.statistics().senders_waiting == 2
        assert await mailbox.receive() == "u1"
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.statistics().senders_waiting == 1
        assert await mailbox.receive() == "u2"
        assert await mailbox.receive() == "n1"
    assert _receive_all_nowait(mailbox) == ["n2"]


async def test_close_wakes_waiting_senders_with_closed_resource_error() -> None:
    """Closing the mailbox makes every blocked send raise ClosedResourceError."""
    mailbox: Mailbox[str] = Mailbox(capacity=1)
    mailbox.send_nowait("kept")
    errors: list[BaseException] = []

    async def sender(item: str) -> None:
        with pytest.raises(trio.ClosedResourceError, match=r"^mailbox is closed$") as info:
            await mailbox.send(item)
        errors.append(info.value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender, "a")
        nursery.start_soon(sender, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.statistics().senders_waiting == 2
        mailbox.close()
    assert len(errors) == 2
    assert mailbox.statistics().senders_waiting == 0


async def test_receiver_gets_remaining_items_then_end_of_channel() -> None:
    """After close the receiver drains what is queued, urgent first, then gets EndOfChannel."""
    mailbox: Mailbox[str] = Mailbox()
    mailbox.send_nowait("n")
    mailbox.send_nowait("u", urgent=True)
    mailbox.close()
    assert await mailbox.receive() == "u"
    assert await mailbox.receive() == "n"
    with pytest.raises(trio.EndOfChannel):
        await mailbox.receive()
    with pytest.raises(trio.EndOfChannel):
        mailbox.receive_nowait()


async def test_close_wakes_a_waiting_receiver() -> None:
    """A receiver blocked on an empty mailbox gets EndOfChannel when it is closed."""
    mailbox: Mailbox[str] = Mailbox()
    ended = trio.Event()

    async def receiver() -> None:
        with pytest.raises(trio.EndOfChannel):
            await mailbox.receive()
        ended.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        mailbox.close()
    assert ended.is_set()


async def test_send_after_close_raises() -> None:
    """send and send_nowait on a closed mailbox raise ClosedResourceError; close is idempotent."""
    mailbox: Mailbox[str] = Mailbox()
    mailbox.close()
    mailbox.close()
    assert mailbox.closed
    with pytest.raises(trio.ClosedResourceError, match=r"^mailbox is closed$"):
        mailbox.send_nowait("x")
    with pytest.raises(trio.ClosedResourceError, match=r"^mailbox is closed$"):
        await mailbox.send("x", urgent=True)
    assert mailbox.statistics().queued == 0


async def test_drain_returns_leftovers_urgent_first() -> None:
    """drain empties both lanes and returns the items, urgent lane first, each in order."""
    mailbox: Mailbox[str] = Mailbox()
    for item in ["n1", "n2"]:
        mailbox.send_nowait(item)
    for item in ["u1", "u2"]:
        mailbox.send_nowait(item, urgent=True)
    mailbox.close()
    assert mailbox.drain() == ["u1", "u2", "n1", "n2"]
    assert mailbox.drain() == []
    with pytest.raises(trio.EndOfChannel):
        await mailbox.receive()


async def test_drain_makes_room_for_blocked_senders() -> None:
    """drain on an open mailbox wakes blocked senders, whose items then queue."""
    mailbox: Mailbox[str] = Mailbox(capacity=1)
    mailbox.send_nowait("old")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mailbox.send, "new")
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.drain() == ["old"]
    assert _receive_all_nowait(mailbox) == ["new"]


async def test_statistics() -> None:
    """statistics() reports both lanes, capacity, blocked senders and closed state."""
    mailbox: Mailbox[int] = Mailbox(capacity=2)
    assert mailbox.statistics() == MailboxStatistics(
        queued=0, queued_urgent=0, capacity=2, senders_waiting=0, closed=False
    )
    mailbox.send_nowait(1)
    mailbox.send_nowait(2)
    mailbox.send_nowait(3, urgent=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mailbox.send, 4)
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.statistics() == MailboxStatistics(
            queued=2, queued_urgent=1, capacity=2, senders_waiting=1, closed=False
        )
        nursery.cancel_scope.cancel()
    mailbox.close()
    assert mailbox.statistics() == MailboxStatistics(
        queued=2, queued_urgent=1, capacity=2, senders_waiting=0, closed=True
    )
    assert repr(mailbox) == "<Mailbox [closed, queued: 2, urgent: 1, capacity: 2]>"


@pytest.mark.parametrize("capacity", [0, -3])
def test_capacity_must_be_positive(capacity: int) -> None:
    """A capacity that is not positive is refused."""
    with pytest.raises(ValueError, match=rf"^capacity must be > 0, got {capacity}$"):
        Mailbox(capacity=capacity)


def test_default_capacity() -> None:
    """The default capacity is 1000 per lane."""
    assert Mailbox().capacity == 1000


async def test_cancelled_blocked_send_leaves_no_item(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling a send blocked on a full lane leaves nothing behind and no waiter."""
    mailbox: Mailbox[str] = Mailbox(capacity=1)
    mailbox.send_nowait("kept")
    with trio.move_on_after(1) as scope:
        await mailbox.send("dropped")
    assert scope.cancelled_caught
    assert mailbox.statistics().senders_waiting == 0
    assert mailbox.drain() == ["kept"]


async def test_send_in_cancelled_scope_queues_nothing() -> None:
    """A send in an already-cancelled scope raises Cancelled without queueing, even with room."""
    mailbox: Mailbox[str] = Mailbox()
    with trio.CancelScope() as scope:
        scope.cancel()
        await mailbox.send("never")
    assert scope.cancelled_caught
    assert mailbox.statistics().queued == 0


async def test_cancelled_receive_takes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """A receive cancelled while waiting takes no item that arrives later."""
    mailbox: Mailbox[str] = Mailbox()
    with trio.move_on_after(1):
        await mailbox.receive()
    mailbox.send_nowait("later")
    assert mailbox.receive_nowait() == "later"
