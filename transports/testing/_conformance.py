"""A conformance suite for `TransportLink`s, like trio's `check_two_way_stream`.

Each check is an async function taking `connect`, a callable that opens a linked
`TransportLink` for a system name (usually `transport.connect`), and runs its scenario with
system names of its own; callers bound it with `trio.fail_after`. `check_transport` runs them
all.

Packets are `bytes`, so every transport can carry them. Items a check does not expect (notices
about other systems, for example) are skipped; every delivery it receives is acknowledged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio

from .._abc import Delivery, PeerLost, TransportLink
from .._exceptions import NameClaimed, PacketTooLarge, UnknownRecipient

LinkFactory = Callable[[str], AbstractAsyncContextManager[TransportLink]]
"""Opens the link of the named system: `transport.connect` fits."""


class _Crash(Exception):
    """Raised inside a link's block to end it by an error, without a clean goodbye."""


def _unique(label: str) -> str:
    return f"{label}-{secrets.token_hex(3)}"


def _data(delivery: Delivery) -> bytes:
    assert isinstance(delivery.packet, bytes), delivery
    return delivery.packet


async def _next_delivery(link: TransportLink) -> Delivery:
    """The next delivery (acknowledged), skipping peer notices."""
    while True:
        item = await link.receive()
        if isinstance(item, Delivery):
            await link.ack(item)
            return item


async def _next_peer_lost(link: TransportLink, system: str) -> PeerLost:
    """The next notice about `system`, acknowledging deliveries on the way."""
    while True:
        item = await link.receive()
        if isinstance(item, PeerLost):
            if item.system == system:
                return item
        else:
            await link.ack(item)


async def _nothing_more(link: TransportLink, wait: float) -> list[Delivery]:
    """Deliveries that arrive within `wait` seconds (acknowledged)."""
    found: list[Delivery] = []
    with trio.move_on_after(wait):
        while True:
            item = await link.receive()
            if isinstance(item, Delivery):
                await link.ack(item)
                found.append(item)
    return found


async def check_unique_names(connect: LinkFactory) -> None:
    """A name held by one live system is refused to another, and free again once released."""
    name = _unique("name")
    async with connect(_unique("a")) as first, connect(_unique("b")) as second:
        await first.claim(name)
        try:
            await second.claim(name)
        except NameClaimed as exc:
            assert exc.name == name, exc
            assert exc.owner == first.system, exc
        else:
            raise AssertionError("a name held by a live system was claimed again")
        await first.release(name)
        await second.claim(name)


async def check_addressed_delivery(connect: LinkFactory) -> None:
    """An addressed packet reaches the holder of the name only; unknown names are refused, and
    a batch stops at its first unknown recipient."""
    name = _unique("worker")
    async with connect(_unique("a")) as sender, connect(_unique("b")) as holder:
        await holder.claim(name)
        await sender.send(name, b"hello")
        delivery = await _next_delivery(holder)
        assert (delivery.recipient, _data(delivery)) == (name, b"hello"), delivery
        assert not delivery.reclaimed, delivery
        assert await _nothing_more(sender, 0.1) == []
        try:
            await sender.send(_unique("nobody"), b"lost")
        except UnknownRecipient:
            pass
        else:
            raise AssertionError("a packet to a name nobody holds was accepted")
        # A batch stops at its first unknown recipient: what came before it was sent.
        nobody = _unique("nobody")
        try:
            await sender.send_batch([(name, b"before"), (nobody, b"lost"), (name, b"after")])
        except UnknownRecipient as exc:
            assert exc.name == nobody, exc
        else:
            raise AssertionError("a batch to a name nobody holds was accepted")
        assert _data(await _next_delivery(holder)) == b"before"
        assert await _nothing_more(holder, 0.1) == []


async def check_broadcast(connect: LinkFactory) -> None:
    """A broadcast reaches every other system once, and not the sender."""
    async with (
        connect(_unique("a")) as sender,
        connect(_unique("b")) as first,
        connect(_unique("c")) as second,
    ):
        await sender.broadcast(b"news")
        for receiver in (first, second):
            delivery = await _next_delivery(receiver)
            assert delivery.recipient is None, delivery
            assert _data(delivery) == b"news", delivery
        assert await _nothing_more(sender, 0.1) == []
        assert await _nothing_more(first, 0.1) == []


async def check_order(connect: LinkFactory, *, count: int = 200) -> None:
    """Packets from one sender to one name arrive in the order sent, batched or not."""
    name = _unique("sink")
    async with connect(_unique("a")) as sender, connect(_unique("b")) as holder:
        await holder.claim(name)
        half = count // 2
        for index in range(half):
            await sender.send(name, str(index).encode())
        await sender.send_batch([(name, str(i).encode()) for i in range(half, count)])
        received: list[bytes] = []
        for _ in range(count):
            delivery = await _next_delivery(holder)
            received.append(_data(delivery))
        assert received == [str(i).encode() for i in range(count)], received


async def check_redelivery(connect: LinkFactory) -> None:
    """At-least-once: what a system received but never acknowledged before it crashed goes to
    the name's next holder, marked `reclaimed`; what it acknowledged does not."""
    name = _unique("job")
    async with connect(_unique("a")) as sender:
        try:
            async with connect(_unique("b")) as holder:
                await holder.claim(name)
                await sender.send(name, b"done")
                await sender.send(name, b"unfinished")
                first = await holder.receive()
                assert isinstance(first, Delivery), first
                await holder.ack(first)
                second = await holder.receive()
                assert isinstance(second, Delivery), second
                raise _Crash
        except _Crash:
            pass
        async with connect(_unique("c")) as heir:
            await heir.claim(name)
            delivery = await _next_delivery(heir)
            assert _data(delivery) == b"unfinished", delivery
            assert delivery.reclaimed, delivery
            assert await _nothing_more(heir, 0.2) == []


async def check_peer_lost(connect: LinkFactory) -> None:
    """A clean close is reported `crashed=False`; a link ended by an error `crashed=True`."""
    async with connect(_unique("observer")) as observer:
        clean = _unique("clean")
        async with connect(clean):
            pass
        notice = await _next_peer_lost(observer, clean)
        assert notice.crashed is False, notice
        crashing = _unique("crashing")
        try:
            async with connect(crashing):
                raise _Crash
        except _Crash:
            pass
        notice = await _next_peer_lost(observer, crashing)
        assert notice.crashed is True, notice


async def check_close_releases_names(connect: LinkFactory) -> None:
    """Names of a closed link are free: sends to them are refused, others may claim them."""
    name = _unique("leaving")
    async with connect(_unique("a")) as stayer:
        async with connect(_unique("b")) as leaver:
            await leaver.claim(name)
        try:
            await stayer.send(name, b"late")
        except UnknownRecipient:
            pass
        else:
            raise AssertionError("a packet to a closed link's name was accepted")
        await stayer.claim(name)


async def check_oversized_packet(connect: LinkFactory, *, max_packet_size: int) -> None:
    """A packet over the transport's limit is refused with `PacketTooLarge`, nothing sent."""
    name = _unique("small")
    async with connect(_unique("a")) as sender, connect(_unique("b")) as holder:
        await holder.claim(name)
        oversized = bytes(max_packet_size + 1)
        for broadcast in (False, True):
            try:
                if broadcast:
                    await sender.broadcast(oversized)
                else:
                    await sender.send(name, oversized)
            except PacketTooLarge as exc:
                assert (exc.size, exc.limit) == (max_packet_size + 1, max_packet_size)
            else:
                raise AssertionError("an oversized packet was accepted")
        await sender.send(name, bytes(max_packet_size))
        delivery = await _next_delivery(holder)
        assert len(_data(delivery)) == max_packet_size


async def check_transport(
    connect: LinkFactory,
    *,
    at_least_once: bool,
    max_packet_size: int | None = None,
) -> None:
    """Run every check against the links `connect` opens.

    Args:
        connect: opens a system's link (for example `transport.connect`).
        at_least_once: the transport redelivers unacknowledged packets (`check_redelivery`).
        max_packet_size: the transport's packet limit, if it has one (`check_oversized_packet`).
    """
    await check_unique_names(connect)
    await check_addressed_delivery(connect)
    await check_broadcast(connect)
    await check_order(connect)
    await check_peer_lost(connect)
    await check_close_releases_names(connect)
    if at_least_once:
        await check_redelivery(connect)
    if max_packet_size is not None:
        await check_oversized_packet(connect, max_packet_size=max_packet_size)
