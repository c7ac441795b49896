"""MemoryTransport: actor systems in one process, the embedded default.

One `MemoryTransport` is a hub: every system that connects to it gets a link with an inbox,
and names are claimed in one table, so several systems in one Trio run behave like separate
processes on a shared bus. In strict mode the link carries bytes only, and the actor system
round-trips every envelope (local ones too) through its codec.

An inbox is one FIFO queue, so what a peer sent arrives in the order it was sent (a worker's
answer is never overtaken by the notice that the worker is gone). Addressed packets count
against the inbox bound, and a full inbox makes their senders wait; broadcasts and peer notices
never wait and are never dropped: they are small and rare, and losing one would leave a
registry stale or a job waiting forever.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from ._abc import Delivery, PeerLost, Transport, TransportLink
from ._exceptions import NameClaimed, PacketTooLarge, SystemNameTaken, UnknownRecipient

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class _Ticket:
    """A delivery's ack token: frees one place in its name's window, once."""

    name: str
    acked: bool = False


@attrs.define(eq=False)
class _Inbox:
    """A FIFO queue with a window per recipient name (see `transports._abc`).

    Ordinary addressed packets count against their name's window until acknowledged; control
    packets, broadcasts and peer notices never wait.
    """

    window: int
    _items: deque[Delivery | PeerLost] = attrs.field(factory=deque)
    _unacked: dict[str, int] = attrs.field(factory=dict)
    _closed: bool = False
    _receivers: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _senders: dict[str, trio.lowlevel.ParkingLot] = attrs.field(factory=dict)

    async def send(self, recipient: str, packet: object) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._closed and self._unacked.get(recipient, 0) >= self.window:
            lot = self._senders.setdefault(recipient, trio.lowlevel.ParkingLot())
            await lot.park()
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        self._unacked[recipient] = self._unacked.get(recipient, 0) + 1
        self._items.append(Delivery(recipient, packet, token=_Ticket(recipient)))
        self._receivers.unpark()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_control(self, item: Delivery | PeerLost) -> None:
        if not self._closed:
            self._items.append(item)
            self._receivers.unpark()

    def ack(self, ticket: _Ticket) -> None:
        if ticket.acked:
            return
        ticket.acked = True
        left = self._unacked.get(ticket.name, 0) - 1
        if left > 0:
            self._unacked[ticket.name] = left
        else:
            self._unacked.pop(ticket.name, None)
        lot = self._senders.get(ticket.name)
        if lot is not None:
            lot.unpark()
            if not lot:
                del self._senders[ticket.name]

    def unacked(self, name: str) -> int:
        return self._unacked.get(name, 0)

    async def receive(self) -> Delivery | PeerLost:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._items:
                item = self._items.popleft()
            elif self._closed:
                raise trio.EndOfChannel
            else:
                await self._receivers.park()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._unacked.clear()
        self._receivers.unpark_all()
        for lot in self._senders.values():
            lot.unpark_all()
        self._senders.clear()


@attrs.define(eq=False)
class _MemoryLink(TransportLink):
    system: str
    carries_objects: bool
    window: int
    _hub: MemoryTransport
    _inbox: _Inbox

    def __repr__(self) -> str:
        return f"<MemoryLink [{self.system!r}, names: {len(self._hub._names_of(self.system))}]>"

    def _check_open(self) -> None:
        if self._hub._links.get(self.system) is not self:
            raise trio.ClosedResourceError(f"link of system {self.system!r} is closed")

    async def claim(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        owner = self._hub._owners.get(name)
        if owner is not None:
            raise NameClaimed(name, owner)
        self._hub._owners[name] = self.system

    async def release(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        if self._hub._owners.get(name) == self.system:
            del self._hub._owners[name]

    async def send(
        self,
        recipient: str,
        packet: object,
        *,
        control: bool = False,
        ack: Delivery | None = None,
    ) -> None:
        self._check_open()
        self._hub._check_size(packet)
        owner = self._hub._owners.get(recipient)
        link = self._hub._links.get(owner) if owner is not None else None
        if link is None:
            await trio.lowlevel.checkpoint()
            raise UnknownRecipient(recipient)
        if control:
            await trio.lowlevel.checkpoint()
            link._inbox.send_control(Delivery(recipient, packet))
        else:
            try:
                await link._inbox.send(recipient, packet)
            except trio.ClosedResourceError:
                raise UnknownRecipient(recipient) from None
        if ack is not None:
            await self.ack(ack)

    async def ack(self, delivery: Delivery) -> None:
        if isinstance(delivery.token, _Ticket):
            self._inbox.ack(delivery.token)
        await trio.lowlevel.checkpoint()

    async def broadcast(self, packet: object) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._hub._check_size(packet)
        for link in list(self._hub._links.values()):
            if link is not self:
                link._inbox.send_control(Delivery(None, packet))

    async def receive(self) -> Delivery | PeerLost:
        return await self._inbox.receive()


class MemoryTransport(Transport):
    """Connects actor systems that run in one process (one Trio run).

    Args:
        strict: carry only bytes, so that every envelope, local ones included, round-trips
            through the codec and a payload that could not cross a process fails at send time.
        inbox_size: the window per recipient name: most ordinary packets delivered to one
            name and not yet acknowledged; past it, senders to that name wait.
        max_packet_size: the largest `bytes` packet accepted (None: no limit); a larger one
            raises `PacketTooLarge`, as it would on a transport between processes. Objects
            carried as they are (not strict) are not measured.

    Raises:
        ValueError: if `inbox_size` or `max_packet_size` is not positive.
    """

    def __init__(
        self, *, strict: bool = False, inbox_size: int = 10_000, max_packet_size: int | None = None
    ) -> None:
        if inbox_size <= 0:
            raise ValueError(f"inbox_size must be > 0, got {inbox_size!r}")
        if max_packet_size is not None and max_packet_size <= 0:
            raise ValueError(f"max_packet_size must be > 0, got {max_packet_size!r}")
        self.strict = strict
        """True when links carry bytes only (every envelope round-trips through the codec)."""
        self.inbox_size = inbox_size
        """The window per recipient name (most unacknowledged ordinary packets)."""
        self.max_packet_size = max_packet_size
        """The largest `bytes` packet accepted, or None for no limit."""
        self._links: dict[str, _MemoryLink] = {}
        self._owners: dict[str, str] = {}

    def __repr__(self) -> str:
        return (
            f"<MemoryTransport [strict={self.strict}, systems: {len(self._links)}, "
            f"names: {len(self._owners)}]>"
        )

    def _check_size(self, packet: object) -> None:
        limit = self.max_packet_size
        if limit is not None and isinstance(packet, bytes | bytearray) and len(packet) > limit:
            raise PacketTooLarge(len(packet), limit)

    def _names_of(self, system: str) -> list[str]:
        return [name for name, owner in self._owners.items() if owner == system]

    @asynccontextmanager
    async def connect(self, system: str) -> AsyncIterator[TransportLink]:
        """Open `system`'s link to this hub.

        Raises:
            SystemNameTaken: if a system of that name is already connected.
        """
        if system in self._links:
            raise SystemNameTaken(system)
        link = _MemoryLink(
            system, not self.strict, self.inbox_size, self, _Inbox(self.inbox_size)
        )
        self._links[system] = link
        crashed = False
        try:
            yield link
        except trio.Cancelled:
            raise
        except BaseException:
            crashed = True
            raise
        finally:
            del self._links[system]
            for name in self._names_of(system):
                del self._owners[name]
            link._inbox.close()
            for peer in list(self._links.values()):
                peer._inbox.send_control(PeerLost(system, crashed))
            logger.debug("system %r left the memory transport (crashed: %s)", system, crashed)
