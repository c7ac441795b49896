"""The client's link: one connection at a time to the server, its readiness and its traffic.

Theory of operation
-------------------
A `Client` is the smallest peer `serve_websocket_link` accepts: an actor system with no actors
of its own. Its hello exports nothing, and everything it sends comes from its system address
(``system:<name>``), which the server's gate always accepts from its peer; the server answers
jobs to that address. So the client can run jobs on the server's exported actors, cancel them,
grant them credit and send them messages, and the server's filtering rules hold unchanged.

A `ClientLink` owns the connection: `keep_connected` (a task of `open_client`'s task group)
runs one connection at a time, each with one reader, one writer and one pinger. It keeps the
server's announced actors, queues what the client sends, and hands what arrives to the
client's `ClientRequester` (answers, a worker gone, the link lost).

Rule 1: readiness comes from the server. The gate announces each exported actor (`AgentReady`)
when the link opens and as they change (`AgentGone`); the client keeps these entries, so jobs,
`wait_ready` and `watch` wait for the server's actors as they would for local ones.

Rule 2: a dropped link ends the jobs in flight at once. The server's entries are forgotten, and
every member that was sent (or was ready) settles FAILED (CANCELLED when the server said
goodbye); the queued outbound traffic is dropped. The keeper reconnects with backoff and
jitter (`transports.ReconnectBackoff`) and sends its hello again; the server announces its
actors again, and waiting jobs go on.

Rule 3: bounded traffic. Requests and messages wait for room in the outbox (`OUTBOX_LIMIT`);
control traffic (cancels, credits) is posted without waiting, so a cancellation can never be
held up. One writer sends the outbox in order, so a cancel never overtakes its request; frames
that wait together go in one message (a batch of the link protocol).
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections import deque
from collections.abc import Sequence
from itertools import count
from typing import Any, Final, final

import anyio
import anyio.abc
import msgspec

from transports import LinkHandshakeError, ReconnectBackoff
from transports import _websocket_protocol as protocol

from .._exceptions import DecodeError
from .._wire.codec import EnvelopeCodec
from .._wire.envelope import (
    REPLY_TYPES,
    AgentActivation,
    AgentGone,
    AgentInfo,
    AgentReady,
    Envelope,
    JobRequestMessage,
    JobResponseMessage,
    JobStatus,
    SystemMessage,
)
from ._hooks import ClientWatch, WatchCallback
from ._requester import ClientRequester
from ._websocket import ConnectionClosed, WebSocket, exchange_hellos, open_websocket

logger = logging.getLogger(__name__)

OUTBOX_LIMIT: Final = 1000
"""Most requests and messages queued for the writer before senders wait."""

_HARD_LIMIT_FACTOR: Final = 4
_LOGGED_REFUSALS: Final = 10
_SYSTEM: Final = "system:"


@final
class ClientLink:
    """The connection of a `Client` to its server (see the module docstring); made by
    `open_client`, which sets `requester` before the first connection."""

    def __init__(
        self,
        url: str,
        *,
        system: str,
        headers: Sequence[tuple[str, str]],
        ssl_context: ssl.SSLContext | None,
        ping_interval: float,
        max_message_size: int,
        backoff: ReconnectBackoff,
    ) -> None:
        self.url = url
        """The server's URL."""
        self.system = system
        """This client's system name (sent in its hello)."""
        self.peer_system: str | None = None
        """The server system's name, from its hello (None before the first connection)."""
        self.requester: ClientRequester | None = None
        """The client's requester, which takes what arrives about jobs."""
        self._headers = tuple(headers)
        self._ssl_context = ssl_context
        self._ping_interval = ping_interval
        self._max_message_size = max_message_size
        self._backoff = backoff
        self._codec = EnvelopeCodec(max_size=max_message_size)
        self._agents: dict[str, AgentInfo] = {}
        self._watches: dict[str, list[ClientWatch]] = {}
        self._registry_changed = anyio.Event()
        self._socket: WebSocket | None = None
        self._connected = anyio.Event()
        self._outbox: deque[bytes] = deque()
        self._outbox_changed = anyio.Event()
        self._room = anyio.Event()
        self._leaving = False
        self._ids = count(1)
        self._id_prefix = secrets.token_hex(4) + "-"
        self.connections = 0
        """How many times it has connected."""
        self.sent = 0
        """Packets sent."""
        self.received = 0
        """Packets received and taken."""
        self.refused = 0
        """Messages refused: text, oversized, malformed or undecodable."""
        self.hostile = 0
        """Envelopes dropped for what they claimed (a wrong recipient or system)."""
        self.dropped = 0
        """Control traffic dropped because the link was down."""

    def __repr__(self) -> str:
        state = "connected" if self.connected else "reconnecting"
        return f"<ClientLink [{self.system!r} -> {self.url!r}, {state}]>"

    @property
    def _jobs(self) -> ClientRequester:
        assert self.requester is not None, "open_client sets the requester first"
        return self.requester

    @property
    def address(self) -> str:
        """The name the server's workers answer to (``system:<name>``)."""
        return _SYSTEM + self.system

    @property
    def connected(self) -> bool:
        """Whether a link is up now."""
        return self._socket is not None

    @property
    def agents(self) -> dict[str, AgentInfo]:
        """The server's exported actors that are ready now, by name."""
        return dict(self._agents)

    async def wait_connected(self) -> None:
        """Wait until a link is up (a checkpoint even when it already is)."""
        while self._socket is None:
            await self._connected.wait()
        await anyio.lowlevel.checkpoint()

    async def wait_ready(self, name: str) -> AgentInfo:
        """Wait until the server announces actor `name` as ready; return its entry.

        Bound it with the host loop's timeout (``asyncio.timeout``, ``anyio.fail_after``).
        """
        while True:
            info = self._agents.get(name)
            if info is not None:
                await anyio.lowlevel.checkpoint()
                return info
            await self._registry_changed.wait()

    def watch(self, name: str, callback: WatchCallback) -> ClientWatch:
        """Call `callback(info)` each time actor `name` becomes ready, at once if it is.

        Returns:
            The `ClientWatch`; `cancel` it, or use it as a ``with`` block, to release it.
        """
        watch = ClientWatch(name, callback, self._release_watch)
        self._watches.setdefault(name, []).append(watch)
        info = self._agents.get(name)
        if info is not None:
            callback(info)
        return watch

    def _release_watch(self, watch: ClientWatch) -> None:
        watches = self._watches.get(watch.name, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.name, None)

    # --- the requester API ------------------------------------------------------------------

    # --- the wire (what the requester uses) -------------------------------------------------

    def envelope(
        self,
        recipient: str,
        body: Any,
        *,
        job_id: str | None = None,
        urgent: bool = False,
        deadline: float | None = None,
    ) -> Envelope:
        """Stamp a new envelope from the client's address."""
        return Envelope(
            id=f"{self._id_prefix}{next(self._ids):x}",
            sender=self.address,
            recipient=recipient,
            body=body,
            job_id=job_id,
            urgent=urgent,
            deadline=deadline,
        )

    def _frame(self, envelope: Envelope) -> bytes:
        control = type(envelope.body) in REPLY_TYPES or envelope.urgent
        return protocol.frame_packet(
            envelope.recipient, self._codec.encode(envelope), control=control
        )

    def post(self, envelope: Envelope) -> None:
        """Queue control traffic without waiting; dropped (and counted) while disconnected."""
        if self._socket is None:
            self.dropped += 1
            return
        self._outbox.append(self._frame(envelope))
        self._outbox_changed.set()

    async def send(self, envelope: Envelope) -> bool:
        """Queue `envelope` for the writer, waiting for room; False if the link is down.

        Raises:
            EncodeError: if it cannot be encoded (at the call, before anything is queued).
        """
        frame = self._frame(envelope)
        while self._socket is not None and len(self._outbox) >= OUTBOX_LIMIT:
            await self._room.wait()
        if self._socket is None:
            await anyio.lowlevel.checkpoint()
            return False
        self._outbox.append(frame)
        self._outbox_changed.set()
        await anyio.lowlevel.checkpoint()
        return True

    def is_ready(self, name: str) -> bool:
        """Whether the server announced `name` as ready."""
        return name in self._agents

    def describe_unready(self, name: str) -> str:
        """Why `name` is not ready (for a `JobTimeout`)."""
        if self._socket is None:
            return "was not reachable (the link was down)"
        return "was never announced by the server (not exported, or not ready)"

    # --- inbound ----------------------------------------------------------------------------

    def _take(self, message: bytes | str, peer: str) -> None:
        verdict = protocol.classify(message, self._max_message_size + 3 + 0xFFFF)
        if verdict is not protocol.Verdict.PACKET:
            self._refuse(f"a {verdict.value} message")
            return
        assert isinstance(message, bytes)
        try:
            # One message may carry several frames (the server batches what waits together).
            frames = protocol.unpack(message)
        except protocol.MalformedFrame as exc:
            self._refuse(str(exc))
            return
        for frame in frames:
            self._take_frame(frame, peer)

    def _take_frame(self, frame: bytes, peer: str) -> None:
        try:
            recipient, _, packet = protocol.parse_frame(frame)
            envelope = self._codec.decode(packet)
        except (protocol.MalformedFrame, DecodeError) as exc:
            self._refuse(str(exc))
            return
        self.received += 1
        if recipient is None:
            self._take_broadcast(envelope, peer)
        elif recipient != self.address or envelope.recipient != recipient:
            self._drop(envelope, f"addressed to {envelope.recipient!r}, not to this client")
        else:
            self._take_addressed(envelope)

    def _take_broadcast(self, envelope: Envelope, peer: str) -> None:
        body = envelope.body
        if envelope.recipient is not None:
            self._drop(envelope, "a broadcast frame carrying an addressed envelope")
        elif isinstance(body, AgentReady):
            if body.info.system != peer:
                self._drop(envelope, f"announces an actor of system {body.info.system!r}")
                return
            info = body.info
            old = self._agents.get(info.name)
            self._agents[info.name] = info
            self._registry_did_change()
            if old is None or old.incarnation != info.incarnation:
                for watch in list(self._watches.get(info.name, ())):
                    watch.callback(info)
        elif isinstance(body, AgentGone):
            if body.system != peer:
                self._drop(envelope, f"speaks for system {body.system!r}")
                return
            if self._agents.pop(body.name, None) is not None:
                self._registry_did_change()
            if not body.restarting:
                self._jobs.worker_gone(body.name, crashed=body.crashed)
        elif isinstance(body, AgentActivation):
            entry = self._agents.get(body.name)
            if entry is not None:
                self._agents[body.name] = msgspec.structs.replace(entry, active=body.active)
        # Other broadcasts (registry queries, say) mean nothing to a client.

    def _take_addressed(self, envelope: Envelope) -> None:
        body = envelope.body
        if type(body) in REPLY_TYPES:
            self._jobs.take_reply(envelope)
        elif isinstance(body, JobRequestMessage):
            # A client runs no jobs; the requester gets an answer rather than a wait.
            if envelope.job_id:
                answer = JobResponseMessage(
                    status=JobStatus.ERROR, error=f"client {self.system!r} runs no jobs"
                )
                self.post(self.envelope(envelope.sender, answer, job_id=envelope.job_id))
        elif isinstance(body, SystemMessage):
            logger.debug("client %r ignored a %s", self.system, type(body).__name__)
        else:
            self._jobs.queue_message(envelope)

    def _refuse(self, why: str) -> None:
        self.refused += 1
        if _worth_logging(self.refused):
            logger.warning(
                "client %r refused a message from the server (%d so far): %s",
                self.system,
                self.refused,
                why,
            )

    def _drop(self, envelope: Envelope, why: str) -> None:
        self.hostile += 1
        if not _worth_logging(self.hostile):
            return
        logger.warning(
            "client %r dropped a %s from %r: %s",
            self.system,
            type(envelope.body).__name__,
            envelope.sender,
            why,
        )

    def _registry_did_change(self) -> None:
        self._registry_changed.set()
        self._registry_changed = anyio.Event()
        self._jobs.wake_waiting()

    # --- the connection ---------------------------------------------------------------------

    async def keep_connected(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect (raising if the first attempt fails), then reconnect with backoff forever."""
        await self._connect_once(task_status)
        while not self._leaving:
            delay = self._backoff.next_delay()
            logger.info(
                "client %r: link to %s dropped; reconnecting in %.2fs", self.system, self.url, delay
            )
            await anyio.sleep(delay)
            try:
                await self._connect_once(None)
            except (OSError, LinkHandshakeError, ConnectionClosed) as exc:
                logger.info("client %r: reconnect to %s failed: %r", self.system, self.url, exc)

    async def _connect_once(self, task_status: anyio.abc.TaskStatus[None] | None) -> None:
        async with open_websocket(
            self.url,
            headers=self._headers,
            ssl_context=self._ssl_context,
            max_message_size=self._max_message_size * _HARD_LIMIT_FACTOR + 0x10000,
        ) as socket:
            peer = await exchange_hellos(socket, self.system, ())
            self._up(socket, peer.system)
            if task_status is not None:
                task_status.started()
            closed: ConnectionClosed | None = None
            try:
                async with anyio.create_task_group() as connection:
                    connection.start_soon(self._write, socket, connection.cancel_scope)
                    connection.start_soon(self._keep_alive, socket, connection.cancel_scope)
                    socket.reader_running = True
                    try:
                        closed = await self._read(socket, peer.system)
                    finally:
                        socket.reader_running = False
                    connection.cancel_scope.cancel()
            finally:
                self._down(closed)

    def _up(self, socket: WebSocket, peer: str) -> None:
        self._socket = socket
        self.peer_system = peer
        self.connections += 1
        self._backoff.reset()
        self._connected.set()
        logger.info("client %r linked to %r at %s", self.system, peer, self.url)

    def _down(self, closed: ConnectionClosed | None) -> None:
        """The link ended: forget the server's actors and end what was in flight (Rule 2)."""
        if self._socket is None:
            return
        self._socket = None
        self._connected = anyio.Event()
        crashed = closed is None or not closed.clean
        known = set(self._agents)
        self._agents.clear()
        self._outbox.clear()
        self._room.set()
        self._room = anyio.Event()
        self._jobs.link_lost(known, crashed=crashed)
        self._registry_did_change()
        logger.info(
            "client %r lost its link to %r (%s)",
            self.system,
            self.peer_system,
            closed if closed is not None else "connection lost",
        )

    async def _read(self, socket: WebSocket, peer: str) -> ConnectionClosed:
        while True:
            try:
                message = await socket.receive_message()
            except ConnectionClosed as closed:
                return closed
            self._take(message, peer)

    async def _write(self, socket: WebSocket, connection: anyio.CancelScope) -> None:
        while True:
            while self._outbox and self._socket is socket:
                frames = self._next_batch()
                message = frames[0] if len(frames) == 1 else protocol.frame_batch(frames)
                try:
                    await socket.send_message(message)
                except ConnectionClosed:
                    connection.cancel()
                    return
                for _ in frames:
                    if self._outbox:
                        self._outbox.popleft()
                self.sent += len(frames)
                if len(self._outbox) < OUTBOX_LIMIT:
                    self._room.set()
                    self._room = anyio.Event()
            self._outbox_changed = anyio.Event()
            await self._outbox_changed.wait()

    def _next_batch(self) -> list[bytes]:
        """The frames at the head of the outbox that go in the next message.

        Frames waiting together travel in one batch message (the link protocol's
        `frame_batch`, at most `MAX_BATCH_BYTES`), so many jobs in flight cost one write.
        """
        frames: list[bytes] = []
        size = 3
        for frame in self._outbox:
            size += 4 + len(frame)
            if frames and size > protocol.MAX_BATCH_BYTES:
                break
            frames.append(frame)
        return frames

    async def _keep_alive(self, socket: WebSocket, connection: anyio.CancelScope) -> None:
        interval = self._ping_interval
        while True:
            await anyio.sleep(interval)
            try:
                answered = await socket.ping(secrets.token_bytes(8))
            except ConnectionClosed:
                return
            with anyio.move_on_after(interval) as waited:
                await answered.wait()
            if waited.cancelled_caught:
                logger.warning(
                    "client %r: server %r answered no ping within %ss",
                    self.system,
                    self.peer_system,
                    interval,
                )
                socket.abandon(f"no pong within {interval}s")
                connection.cancel()
                return

    async def leave(self) -> None:
        """Abandon every job (its cancels go out first), then say goodbye to the server."""
        self._leaving = True
        self._jobs.close("the client closed")
        socket = self._socket
        if socket is None:
            return
        with anyio.move_on_after(2.0):
            while self._outbox and self._socket is socket:
                await self._room.wait()
        if self._socket is socket:
            await socket.aclose(protocol.CLOSE_NORMAL, "goodbye")


def _worth_logging(count: int) -> bool:
    """Log the first refusals one by one, then one in a thousand: a flood stays readable."""
    return count <= _LOGGED_REFUSALS or count % 1000 == 0
