"""One open WebSocket to a peer actor system, as a `TransportLink` (see `_websocket`).

`serve_websocket_link` and `open_websocket_link` make a `WebSocketLink` once the hellos were
exchanged; it sends and receives framed packets (`_websocket_protocol.frame_packet`), counts
what it refuses, and pings its peer to find out when it hangs.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import final

import attrs
import trio
import trio_websocket

from . import _websocket_protocol as protocol
from ._abc import Delivery, PeerLost, TransportLink
from ._exceptions import PacketTooLarge
from ._websocket_protocol import MalformedFrame, Verdict

logger = logging.getLogger(__name__)

CLOSE_GRACE = 2.0
"""Seconds a closing handshake may take before the connection is closed regardless."""

OUTGOING_QUEUE = 32
"""Frames a link queues for its writer before senders wait for the socket."""

_LOGGED_REFUSALS = 10
"""Refused messages logged one by one per link; after that, one in a thousand."""


@attrs.frozen
class LinkRequest:
    """A client's handshake request, as `authenticate` and a session factory see it."""

    path: str
    """The request's path (``/ws``), query string included."""
    headers: tuple[tuple[str, str], ...]
    """The request's headers, names lowercased."""
    remote_address: str
    """The client's address (``host:port``)."""
    session_id: str
    """A name unique to this connection on this server (``s1``, ``s2``, ...)."""

    def header(self, name: str) -> str | None:
        """The value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def scoped(self, name: str) -> str:
        """The local name of this session's actor `name` (``s1/assistant``)."""
        return f"{self.session_id}/{name}"


@attrs.frozen
class WebSocketLinkStatistics:
    """Counters of one WebSocket link."""

    sent: int
    """Packets sent."""
    received: int
    """Packets received and handed over."""
    text_refused: int
    """Text messages refused."""
    oversized_refused: int
    """Binary messages over the limit refused."""
    malformed_refused: int
    """Binary messages without a valid link header refused."""


@final
class WebSocketLink(TransportLink):
    """One open WebSocket to a peer system, after the hellos; made by the serve/open functions.

    `claim` and `release` do nothing (the link holds no names). `send` and `broadcast` go to
    the peer; `receive` returns its packets and, once the connection ends, one `PeerLost`.
    """

    carries_objects = False
    """Always False: a WebSocket link carries `bytes` packets."""
    window = 1000
    """Unused: the link has no per-name window; TCP and the bounded message queue are its
    backpressure."""

    def __init__(
        self,
        connection: trio_websocket.WebSocketConnection,
        *,
        system: str,
        peer: protocol.Hello,
        max_message_size: int,
    ) -> None:
        self.system = system
        """This side's system name."""
        self.peer_system: str = peer.system
        """The peer system's name, from its hello."""
        self.peer_exports: tuple[str, ...] = peer.exports
        """The names the peer exports, from its hello."""
        self.max_message_size = max_message_size
        """Largest packet, in bytes, sent or accepted."""
        self._connection = connection
        self._outgoing_send, self._outgoing = trio.open_memory_channel[bytes](OUTGOING_QUEUE)
        self._incoming: deque[bytes] = deque()
        self._queued = 0
        """Frames handed to the writer and not yet written."""
        self._write_lock = trio.Lock()
        self._lost_reason: str | None = None
        self._notice_given = False
        self._closed = trio.Event()
        self._sent = 0
        self._received = 0
        self._text = 0
        self._oversized = 0
        self._malformed = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open"
        return (
            f"<WebSocketLink [{self.system!r} <-> {self.peer_system!r}, {state}, "
            f"sent: {self._sent}, received: {self._received}]>"
        )

    def statistics(self) -> WebSocketLinkStatistics:
        """Return the link's counters."""
        return WebSocketLinkStatistics(
            sent=self._sent,
            received=self._received,
            text_refused=self._text,
            oversized_refused=self._oversized,
            malformed_refused=self._malformed,
        )

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until the connection has ended."""
        await self._closed.wait()

    async def claim(self, name: str) -> None:
        """Do nothing: names belong to the systems, not to a point-to-point link."""
        await trio.lowlevel.checkpoint()

    async def release(self, name: str) -> None:
        """Do nothing (see `claim`)."""
        await trio.lowlevel.checkpoint()

    async def send(
        self,
        recipient: str,
        packet: object,
        *,
        control: bool = False,
        ack: Delivery | None = None,
    ) -> None:
        """Send `packet` to the peer, addressed to `recipient`, waiting for the socket.

        Raises:
            PacketTooLarge: if it is over `max_message_size`.
            trio.BrokenResourceError: if the connection has ended.
        """
        await self._send(protocol.frame_packet(recipient, _bytes(packet, self), control=control))

    async def broadcast(self, packet: object) -> None:
        """Send `packet` to the peer as a broadcast."""
        await self._send(protocol.frame_packet(None, _bytes(packet, self)))

    async def _send(self, frame: bytes) -> None:
        if self._queued == 0 and not self._write_lock.locked():
            # Nothing waits to be written: write at once, without a hop through the writer
            # task (one job at a time pays no extra scheduling round).
            self._write_lock.acquire_nowait()
            try:
                await self._connection.send_message(frame)
            except trio_websocket.ConnectionClosed as exc:
                raise trio.BrokenResourceError(f"link to {self.peer_system!r} is closed") from exc
            finally:
                self._write_lock.release()
            self._sent += 1
            return
        # Behind what waits already (order is kept): the writer sends it, batched.
        self._queued += 1
        try:
            await self._outgoing_send.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._queued -= 1
            raise trio.BrokenResourceError(f"link to {self.peer_system!r} is closed") from None
        except BaseException:
            self._queued -= 1  # cancelled before it was queued
            raise
        self._sent += 1

    async def write_frames(self) -> None:
        """Send queued frames until the connection ends; run by the link's owner.

        A frame is written at once by its sender while nothing else waits; behind a write in
        progress, frames queue for this task, and those that wait together go in one message
        (up to `MAX_BATCH_BYTES`), so many jobs in flight cost one write, not one each. The
        queue is bounded (`OUTGOING_QUEUE`): past it, senders wait for the socket.
        """
        carried: bytes | None = None
        try:
            while True:
                frame = carried if carried is not None else await self._outgoing.receive()
                carried = None
                batch, size = [frame], len(frame)
                while size < protocol.MAX_BATCH_BYTES:
                    try:
                        following = self._outgoing.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if size + 4 + len(following) > protocol.MAX_BATCH_BYTES:
                        carried = following
                        break
                    batch.append(following)
                    size += 4 + len(following)
                message = batch[0] if len(batch) == 1 else protocol.frame_batch(batch)
                try:
                    async with self._write_lock:
                        await self._connection.send_message(message)
                except trio_websocket.ConnectionClosed:
                    return
                self._queued -= len(batch)
        finally:
            # Senders waiting for room learn that the link is gone.
            self._outgoing.close()

    async def receive(self) -> Delivery | PeerLost:
        """The next packet from the peer; once the connection ends, one `PeerLost`.

        Text, oversized and malformed messages are counted, logged and skipped.

        Raises:
            trio.EndOfChannel: after the `PeerLost` notice was returned.
        """
        if self._notice_given:
            raise trio.EndOfChannel
        while True:
            if self._incoming:
                message: str | bytes = self._incoming.popleft()
            else:
                try:
                    message = await self._connection.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    return self._peer_lost(exc.reason)
            if isinstance(message, str):
                verdict = Verdict.TEXT
            else:
                try:
                    frames = protocol.unpack(message)
                    if len(frames) > 1:
                        self._incoming.extend(frames[1:])
                    recipient, _, packet = protocol.parse_frame(frames[0])
                except MalformedFrame as exc:
                    self._malformed += 1
                    self._log_refusal(str(exc))
                    continue
                verdict = protocol.classify(packet, self.max_message_size)
                if verdict is Verdict.PACKET:
                    self._received += 1
                    return Delivery(recipient, packet)
            if verdict is Verdict.TEXT:
                self._text += 1
            else:
                self._oversized += 1
            self._log_refusal(f"a {verdict.value} message")

    def _log_refusal(self, what: str) -> None:
        # A hostile peer must not flood the log: the first few, then one in a thousand.
        refused = self._text + self._oversized + self._malformed
        if refused <= _LOGGED_REFUSALS or refused % 1000 == 0:
            logger.warning(
                "link %s <- %s refused %s (%d refused so far)",
                self.system,
                self.peer_system,
                what,
                refused,
            )

    def _peer_lost(self, reason: trio_websocket.CloseReason | None) -> PeerLost:
        self._notice_given = True
        self._closed.set()
        if self._lost_reason is not None:
            return PeerLost(self.peer_system, crashed=True, reason=self._lost_reason)
        if reason is not None and reason.code in (1000, 1001):
            return PeerLost(self.peer_system, crashed=False, reason=reason.reason)
        text = f"connection lost ({reason.code} {reason.name})" if reason else "connection lost"
        return PeerLost(self.peer_system, crashed=True, reason=text)

    async def aclose(self) -> None:
        """Say goodbye and close the connection (bounded by a short grace)."""
        with trio.move_on_after(CLOSE_GRACE):
            await self._connection.aclose(protocol.CLOSE_NORMAL, "goodbye")
        self._closed.set()

    async def keep_alive(self, interval: float) -> None:
        """Ping the peer every `interval` seconds; close the connection if a pong is late."""
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(interval) as waited:
                try:
                    await self._connection.ping()
                except trio_websocket.ConnectionClosed:
                    return
            if waited.cancelled_caught:
                self._lost_reason = f"peer {self.peer_system!r} answered no ping within {interval}s"
                logger.warning("link %s: %s", self.system, self._lost_reason)
                with trio.move_on_after(CLOSE_GRACE):
                    await self._connection.aclose(protocol.CLOSE_DEAD_PEER, "no pong")
                return


def _bytes(packet: object, link: WebSocketLink) -> bytes:
    if not isinstance(packet, bytes | bytearray | memoryview):
        raise TypeError(f"a WebSocket link carries bytes, got {type(packet).__name__!r}")
    data = bytes(packet)
    if len(data) > link.max_message_size:
        raise PacketTooLarge(len(data), link.max_message_size)
    return data
