"""Tests for the in-memory transport (`transports._memory`) against the `transports._abc` API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from transports import (
    Delivery,
    MemoryTransport,
    NameClaimed,
    PacketTooLarge,
    PeerLost,
    SystemNameTaken,
    TransportError,
    TransportLink,
    UnknownRecipient,
)


class Boom(Exception):
    """Raised inside a link's block to make it end by an error."""


@asynccontextmanager
async def _pair(
    transport: MemoryTransport | None = None,
) -> AsyncIterator[tuple[TransportLink, TransportLink]]:
    transport = transport if transport is not None else MemoryTransport()
    async with transport.connect("a") as a, transport.connect("b") as b:
        yield a, b


async def _pending(link: TransportLink) -> list[Delivery | PeerLost]:
    """Everything waiting in `link`'s inbox: receive until nothing comes (needs autojump_clock)."""
    items: list[Delivery | PeerLost] = []
    while True:
        with trio.move_on_after(1):
            items.append(await link.receive())
            continue
        return items


async def test_claimed_name_receives_addressed_packets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A packet sent to a name another link claimed arrives there as a Delivery."""
    async with _pair() as (a, b):
        await b.claim("worker")
        packet = {"not": "bytes"}
        await a.send("worker", packet)
        delivery = await b.receive()
        assert delivery == Delivery("worker", packet)
        assert isinstance(delivery, Delivery)
        assert delivery.packet is packet
        assert delivery.recipient == "worker"
        await b.ack(delivery)
        assert await _pending(a) == []


async def test_send_to_own_name_loops_back() -> None:
    """A link can send to a name it holds itself."""
    async with _pair() as (a, _b):
        await a.claim("me")
        await a.send("me", b"hi")
        assert await a.receive() == Delivery("me", b"hi")


async def test_send_batch_delivers_in_order(autojump_clock: trio.testing.MockClock) -> None:
    """send_batch delivers every addressed packet, in order."""
    async with _pair() as (a, b):
        await b.claim("x")
        await b.claim("y")
        await a.send_batch([("x", 1), ("y", 2), ("x", 3)])
        assert await _pending(b) == [Delivery("x", 1), Delivery("y", 2), Delivery("x", 3)]


async def test_claim_of_a_held_name_raises_name_claimed() -> None:
    """Claiming a name another (or the same) system holds raises NameClaimed with the owner."""
    async with _pair() as (a, b):
        await a.claim("solo")
        with pytest.raises(
            NameClaimed, match=r"^name 'solo' is already held by system 'a'$"
        ) as info:
            await b.claim("solo")
        assert info.value.name == "solo"
        assert info.value.owner == "a"
        assert isinstance(info.value, TransportError)
        with pytest.raises(NameClaimed, match=r"^name 'solo' is already held by system 'a'$"):
            await a.claim("solo")


async def test_release_frees_the_name() -> None:
    """After release, the name is unknown to senders and free to claim elsewhere."""
    async with _pair() as (a, b):
        await a.claim("n")
        await b.release("n")  # not b's: a no-op
        await b.send("n", 1)
        assert await a.receive() == Delivery("n", 1)
        await a.release("n")
        await a.release("n")
        with pytest.raises(UnknownRecipient):
            await b.send("n", 2)
        await b.claim("n")
        await a.send("n", 3)
        assert await b.receive() == Delivery("n", 3)


async def test_send_to_unknown_name() -> None:
    """Sending to a name no system holds raises UnknownRecipient naming it."""
    async with _pair() as (a, _b):
        with pytest.raises(
            UnknownRecipient,
            match=r"^no system reachable through this transport holds 'nobody'$",
        ) as info:
            await a.send("nobody", b"x")
        assert info.value.name == "nobody"
        assert isinstance(info.value, LookupError)
        with pytest.raises(UnknownRecipient):
            await a.send_batch([("nobody", 1)])


async def test_broadcast_reaches_other_links_not_the_sender(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A broadcast arrives at every other link with recipient None, and not at the sender."""
    transport = MemoryTransport()
    async with (
        transport.connect("a") as a,
        transport.connect("b") as b,
        transport.connect("c") as c,
    ):
        await a.broadcast("hello")
        assert await _pending(b) == [Delivery(None, "hello")]
        assert await _pending(c) == [Delivery(None, "hello")]
        assert await _pending(a) == []


async def test_closing_a_link_releases_names_and_tells_peers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving a link's block frees its names; peers receive PeerLost(system, crashed=False)."""
    transport = MemoryTransport()
    async with transport.connect("a") as a:
        async with transport.connect("b") as b:
            await b.claim("bw")
        assert await _pending(a) == [PeerLost("b", crashed=False)]
        with pytest.raises(UnknownRecipient):
            await a.send("bw", 1)
        await a.claim("bw")
        async with transport.connect("b") as b2:  # the system name is free again
            await b2.send("bw", 2)
            assert await a.receive() == Delivery("bw", 2)


async def test_link_that_raised_is_reported_crashed(autojump_clock: trio.testing.MockClock) -> None:
    """A link whose block raised is reported to peers with crashed=True."""
    transport = MemoryTransport()
    async with transport.connect("a") as a:
        with pytest.raises(Boom):
            async with transport.connect("b") as b:
                await b.claim("bw")
                raise Boom
        assert await _pending(a) == [PeerLost("b", crashed=True)]
        with pytest.raises(UnknownRecipient):
            await a.send("bw", 1)


async def test_link_cancelled_is_not_crashed(autojump_clock: trio.testing.MockClock) -> None:
    """A link left by cancellation is a clean goodbye (crashed=False)."""
    transport = MemoryTransport()
    async with transport.connect("a") as a:
        with trio.CancelScope() as scope:
            async with transport.connect("b"):
                scope.cancel()
                await trio.lowlevel.checkpoint()
        assert await _pending(a) == [PeerLost("b", crashed=False)]


async def test_receive_on_closed_link_ends() -> None:
    """receive on a link whose block has ended raises EndOfChannel, as TransportLink documents."""
    transport = MemoryTransport()
    async with transport.connect("a") as a:
        pass
    with pytest.raises(trio.EndOfChannel):
        await a.receive()


async def test_claim_through_a_closed_link_does_not_hold_the_name() -> None:
    """A claim made through a closed link leaves the name free for live systems."""
    transport = MemoryTransport()
    async with transport.connect("a") as a:
        pass
    with contextlib.suppress(Exception):
        await a.claim("x")
    async with transport.connect("b") as b:
        await b.claim("x")


async def test_peer_lost_reaches_a_peer_with_a_full_inbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A system whose inbox is full still learns that a peer left, after what was queued."""
    transport = MemoryTransport(inbox_size=1)
    async with transport.connect("a") as a, transport.connect("b") as b:
        await a.claim("w")
        await b.send("w", 1)
        async with transport.connect("c"):
            pass
        assert await _pending(a) == [Delivery("w", 1), PeerLost("c", crashed=False)]


async def test_strict_links_need_bytes() -> None:
    """strict=True makes links report carries_objects False; the default carries objects."""
    async with _pair(MemoryTransport(strict=True)) as (a, b):
        assert a.carries_objects is False
        assert b.carries_objects is False
    async with _pair(MemoryTransport()) as (a, b):
        assert a.carries_objects is True
    assert MemoryTransport(strict=True).strict is True


async def test_duplicate_system_name() -> None:
    """Connecting a second system under a connected name raises SystemNameTaken."""
    transport = MemoryTransport()
    async with transport.connect("a") as a:
        with pytest.raises(
            SystemNameTaken,
            match=r"^a system named 'a' is already connected to this transport$",
        ) as info:
            async with transport.connect("a"):
                pass  # pragma: no cover
        assert info.value.system == "a"
        assert a.system == "a"
        await a.claim("still-mine")  # the original link is untouched
    async with transport.connect("a"):
        pass


async def test_full_window_makes_send_wait() -> None:
    """With inbox_size=1 a second send to a name waits until the first is acknowledged."""
    async with _pair(MemoryTransport(inbox_size=1)) as (a, b):
        await b.claim("w")
        await a.send("w", 1)
        sent = trio.Event()

        async def second() -> None:
            await a.send("w", 2)
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()
            first = await b.receive()
            assert first == Delivery("w", 1)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()  # received is not enough: the window frees on ack
            assert isinstance(first, Delivery)
            await b.ack(first)
            await b.ack(first)  # a second ack of the same delivery frees nothing more
            await trio.testing.wait_all_tasks_blocked()
            assert sent.is_set()
        assert await b.receive() == Delivery("w", 2)


async def test_full_window_for_one_name_does_not_block_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A full window for one name slows only senders to that name; control skips it."""
    async with _pair(MemoryTransport(inbox_size=1)) as (a, b):
        await b.claim("slow")
        await b.claim("fast")
        await a.send("slow", 1)
        with trio.move_on_after(1) as blocked:
            await a.send("slow", 2)
        assert blocked.cancelled_caught
        await a.send("fast", 3)
        await a.send("slow", 4, control=True)
        received = [await b.receive() for _ in range(3)]
        assert received == [Delivery("slow", 1), Delivery("fast", 3), Delivery("slow", 4)]


async def test_send_waiting_on_a_full_inbox_fails_when_the_peer_leaves() -> None:
    """A sender blocked on a full inbox gets UnknownRecipient when that system leaves."""
    transport = MemoryTransport(inbox_size=1)
    b_leave = trio.Event()

    async def run_b(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with transport.connect("b") as b:
            await b.claim("w")
            task_status.started()
            await b_leave.wait()

    async def leave_once_blocked() -> None:
        await trio.testing.wait_all_tasks_blocked()
        b_leave.set()

    async with transport.connect("a") as a, trio.open_nursery() as nursery:
        await nursery.start(run_b)
        await a.send("w", 1)
        nursery.start_soon(leave_once_blocked)
        with pytest.raises(
            UnknownRecipient, match=r"^no system reachable through this transport holds 'w'$"
        ):
            await a.send("w", 2)
        assert b_leave.is_set()


def test_inbox_size_must_be_positive() -> None:
    """MemoryTransport refuses an inbox_size that is not positive."""
    with pytest.raises(ValueError, match=r"^inbox_size must be > 0, got 0$"):
        MemoryTransport(inbox_size=0)


async def test_max_packet_size_measures_bytes_only() -> None:
    """A bytes packet over max_packet_size is refused; an object carried as it is is not."""
    with pytest.raises(ValueError, match=r"^max_packet_size must be > 0, got 0$"):
        MemoryTransport(max_packet_size=0)
    transport = MemoryTransport(max_packet_size=4)
    async with transport.connect("a") as a, transport.connect("b") as b:
        await b.claim("x")
        with pytest.raises(PacketTooLarge, match=r"^packet of 5 bytes exceeds"):
            await a.send("x", b"12345")
        packet = ["not", "measured", "at", "all"]
        await a.send("x", packet)
        delivery = await b.receive()
        assert isinstance(delivery, Delivery) and delivery.packet is packet
