"""MemoryTransport: actor systems in one process, the embedded default.

One `MemoryTransport` is a hub: every system that connects to it gets a link with a bounded
inbound channel, and names are claimed in one table, so several systems in one Trio run behave
like separate processes on a shared bus. In strict mode the link carries bytes only, and the
actor system round-trips every envelope (local ones too) through its codec.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from ._abc import Delivery, PeerLost, Transport, TransportLink
from ._exceptions import NameClaimed, SystemNameTaken, UnknownRecipient

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class _MemoryLink(TransportLink):
    system: str
    carries_objects: bool
    _hub: MemoryTransport
    _inbound_send: trio.MemorySendChannel[Delivery | PeerLost]
    _inbound_receive: trio.MemoryReceiveChannel[Delivery | PeerLost]

    def __repr__(self) -> str:
        return f"<MemoryLink [{self.system!r}, names: {len(self._hub._names_of(self.system))}]>"

    async def claim(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        owner = self._hub._owners.get(name)
        if owner is not None:
            raise NameClaimed(name, owner)
        self._hub._owners[name] = self.system

    async def release(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        if self._hub._owners.get(name) == self.system:
            del self._hub._owners[name]

    async def send(self, recipient: str, packet: object) -> None:
        owner = self._hub._owners.get(recipient)
        link = self._hub._links.get(owner) if owner is not None else None
        if link is None:
            await trio.lowlevel.checkpoint()
            raise UnknownRecipient(recipient)
        try:
            await link._inbound_send.send(Delivery(recipient, packet))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise UnknownRecipient(recipient) from None

    async def broadcast(self, packet: object) -> None:
        await trio.lowlevel.checkpoint()
        for link in list(self._hub._links.values()):
            if link is not self:
                link._deliver_nowait(Delivery(None, packet))

    async def receive(self) -> Delivery | PeerLost:
        return await self._inbound_receive.receive()

    def _deliver_nowait(self, item: Delivery | PeerLost) -> None:
        # Broadcasts and peer notices are small and rare; dropping one would leave a
        # registry stale, so a full inbox is reported rather than silently skipped.
        try:
            self._inbound_send.send_nowait(item)
        except trio.WouldBlock:
            logger.warning("system %r inbox is full; dropped broadcast %r", self.system, item)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass


class MemoryTransport(Transport):
    """Connects actor systems that run in one process (one Trio run).

    Args:
        strict: carry only bytes, so that every envelope, local ones included, round-trips
            through the codec and a payload that could not cross a process fails at send time.
        inbox_size: bound of each system's inbound queue; a full one makes senders wait.

    Raises:
        ValueError: if `inbox_size` is not positive.
    """

    def __init__(self, *, strict: bool = False, inbox_size: int = 10_000) -> None:
        if inbox_size <= 0:
            raise ValueError(f"inbox_size must be > 0, got {inbox_size!r}")
        self.strict = strict
        self.inbox_size = inbox_size
        self._links: dict[str, _MemoryLink] = {}
        self._owners: dict[str, str] = {}

    def __repr__(self) -> str:
        return (
            f"<MemoryTransport [strict={self.strict}, systems: {len(self._links)}, "
            f"names: {len(self._owners)}]>"
        )

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
        send, receive = trio.open_memory_channel[Delivery | PeerLost](self.inbox_size)
        link = _MemoryLink(system, not self.strict, self, send, receive)
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
            send.close()
            receive.close()
            for peer in list(self._links.values()):
                peer._deliver_nowait(PeerLost(system, crashed))
