"""The link of one node to a RedisTransport: its claims, sends, acks, heartbeats and reads.

`transports._redis` (the transport and its theory of operation) opens it; the Lua scripts it
runs and the key layout are in `transports._redis_scripts`, and the reading of its streams in
`transports._redis_reader`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import attrs
import trio
from redis import exceptions as redis_exceptions

from . import _redis_scripts as scripts
from ._abc import Delivery, PeerLost, TransportLink
from ._exceptions import (
    BrokerError,
    NameClaimed,
    PacketTooLarge,
    SystemNameTaken,
    UnknownRecipient,
)
from ._redis_connection import RedisClient
from ._redis_reader import EntryReader, ReadBatch
from ._resp import Command, CommandArg

logger = logging.getLogger(__name__)

# How long buffered acks wait for a command to carry them before they are written alone.
_ACK_DELAY: Final = 0.005
# Entry ids per ACK script call (Lua's unpack() has a stack limit of about 8,000 values).
_ACKS_PER_CALL: Final = 1000


@attrs.frozen
class LinkSettings:
    """What a link needs to know of its transport's configuration."""

    prefix: str
    """`{namespace}:`, the prefix of every key."""
    heartbeat: float
    """Seconds between heartbeats."""
    ttl_ms: int
    """The heartbeat key's TTL in milliseconds."""
    max_packet_size: int
    """The largest packet in bytes."""
    read_count: int
    """Entries read per stream in one XREADGROUP."""
    max_reclaim: int
    """Most pending entries taken over from dead consumers per claim."""


@attrs.frozen
class RedisLinkStatistics:
    """Counters of one Redis link."""

    names: int
    """Names the link holds."""
    peers: int
    """Other nodes seen alive at the last heartbeat."""
    dead_letters: int
    """Entries that could not be read and were moved to the dead-letter stream."""
    reclaimed: int
    """Entries this node took over from dead nodes when claiming names."""
    connects: int
    """Connections opened (both clients), reconnects included."""
    redis_restarts: int
    """Times Redis came back without this node's data (run id changed, data gone)."""


@attrs.define(eq=False)
class RedisLink(TransportLink):
    """One node's link to a RedisTransport; the rules it follows are in `transports._redis`.

    Opened by `RedisTransport.connect`, never directly. Beyond `TransportLink` it offers
    `statistics()`.
    """

    system: str
    """The name of the system that owns this link."""
    node: str
    """This incarnation's node id: `system` + ":" + random hex."""
    _settings: LinkSettings
    _client: RedisClient
    _reader_client: RedisClient
    _queue_in: trio.MemorySendChannel[Delivery | PeerLost]
    _queue_out: trio.MemoryReceiveChannel[Delivery | PeerLost]
    carries_objects: bool = False
    window: int = 1000
    _names: set[str] = attrs.field(factory=set)
    _outstanding: dict[str, set[bytes]] = attrs.field(factory=dict)
    _ack_buffer: dict[str, list[bytes]] = attrs.field(factory=dict)
    _acks_waiting: trio.Event = attrs.field(factory=trio.Event)
    _peers: dict[str, str] = attrs.field(factory=dict)
    _run_id: str = ""
    _closed: bool = False
    _halted: bool = False
    _reclaimed: int = 0
    _redis_restarts: int = 0
    _reader: EntryReader | None = None
    _tasks: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _background: trio.Nursery | None = None
    _coming_back: trio.Lock = attrs.field(factory=trio.Lock)
    _recoveries: int = 0

    def __repr__(self) -> str:
        state = "CLOSED" if self._closed else "OPEN"
        return f"<RedisLink [{self.node!r}, {state}, names: {len(self._names)}]>"

    @property
    def _prefix(self) -> str:
        return self._settings.prefix

    def statistics(self) -> RedisLinkStatistics:
        """Counters for monitoring and tests."""
        return RedisLinkStatistics(
            names=len(self._names),
            peers=len(self._peers),
            dead_letters=self._reader.dead_letters if self._reader is not None else 0,
            reclaimed=self._reclaimed,
            connects=self._client.connects + self._reader_client.connects,
            redis_restarts=self._redis_restarts,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError(f"link of system {self.system!r} is closed")

    def _check_packet(self, packet: object) -> bytes:
        if not isinstance(packet, bytes | bytearray | memoryview):
            raise TypeError(f"a redis link carries bytes, got {type(packet).__name__!r}")
        data = bytes(packet)
        if len(data) > self._settings.max_packet_size:
            raise PacketTooLarge(len(data), self._settings.max_packet_size)
        return data

    async def _run_scripts(
        self, calls: Sequence[tuple[scripts.Script, Sequence[CommandArg]]], *, retry: bool = True
    ) -> list[object]:
        """Run scripts in one round trip (loading them after NOSCRIPT); error replies raise.

        Buffered acks ride along in the same write, so they cost no round trip of their own.
        With `retry` False, a broken connection raises `trio.BrokenResourceError` instead of
        running the scripts again on a new one.
        """
        buffered, ack_calls = self._take_acks()
        every = [*ack_calls, *calls]
        commands: list[Command] = [
            ("EVALSHA", script.sha, 1, self._prefix + "nodes", self._prefix, *args)
            for script, args in every
        ]
        try:
            replies = await self._client.pipeline(commands, retry=retry)
            if any(isinstance(reply, redis_exceptions.NoScriptError) for reply in replies):
                # Redis restarted (or flushed its script cache): load them, run the rest again.
                await self._client.pipeline(
                    [("SCRIPT", "LOAD", script.source) for script in scripts.ALL_SCRIPTS]
                )
                again = [
                    index
                    for index, reply in enumerate(replies)
                    if isinstance(reply, redis_exceptions.NoScriptError)
                ]
                answers = await self._client.pipeline(
                    [commands[index] for index in again], retry=retry
                )
                for index, answer in zip(again, answers, strict=True):
                    replies[index] = answer
        except BaseException:
            self._restore_acks(buffered)
            raise
        for reply in replies[: len(ack_calls)]:
            if isinstance(reply, redis_exceptions.RedisError):
                logger.warning("node %r: acks not written: %s", self.node, reply)
        replies = replies[len(ack_calls) :]
        for (script, _), reply in zip(calls, replies, strict=True):
            if isinstance(reply, redis_exceptions.RedisError):
                raise BrokerError(f"EVALSHA {script.name}", str(reply)) from reply
        return replies

    async def goodbye(
        self, *, crashed: bool, reason: str, client: RedisClient | None = None
    ) -> None:
        """Write the buffered acks and tell the peers this node is leaving.

        Args:
            client: used instead of the link's own client, which cannot reconnect once the
                link's nursery was cancelled from outside.
        """
        if client is not None:
            self._client = client
        await self._flush_acks()
        await self._run_script(scripts.GOODBYE, self.node, "1" if crashed else "0", reason)

    async def _run_script(self, script: scripts.Script, *args: CommandArg) -> object:
        (reply,) = await self._run_scripts([(script, args)])
        return reply

    async def _register(self) -> None:
        reply = await self._run_script(
            scripts.REGISTER, self.node, self.system, self._settings.ttl_ms
        )
        if isinstance(reply, list) and reply and reply[0] == b"taken":
            raise SystemNameTaken(self.system)
        self._run_id = self._client.run_id

    async def claim(self, name: str) -> None:
        """Take `name`; see `TransportLink.claim`."""
        self._check_open()
        await self._claim(name)

    async def _claim(self, name: str, *, recover: bool = True) -> bool:
        """Claim `name`; False if our node is not registered and `recover` is False."""
        while True:
            reply = await self._run_script(
                scripts.CLAIM, self.node, name, self._settings.max_reclaim
            )
            assert isinstance(reply, list) and reply
            if reply[0] == b"ok":
                self._names.add(name)
                self._reclaimed += int(reply[1])
                return True
            if reply[0] == b"taken":
                raise NameClaimed(name, bytes(reply[1]).decode())
            # b"gone": our node was buried (Redis lost its data, or we were too slow).
            if not recover:
                return False
            await self._come_back("this node was not registered when it claimed a name")

    async def release(self, name: str) -> None:
        """Give up `name`; see `TransportLink.release` (a no-op once the link is closed)."""
        self._names.discard(name)
        # Its window starts afresh if the name is claimed again; late acks still count.
        self._outstanding.pop(name, None)
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        # Acks written first, so that an inbox left empty is seen empty and deleted.
        await self._flush_acks()
        await self._run_script(scripts.RELEASE, self.node, name)

    async def send(
        self,
        recipient: str,
        packet: object,
        *,
        control: bool = False,
        ack: Delivery | None = None,
    ) -> None:
        """Send to `recipient`'s stream; with `ack`, settle that delivery in the same step.

        Control packets go to the holder's box, which is always read (never behind a full
        inbox). A sent `ack` is settled atomically with the send; if the recipient is unknown,
        neither happens.
        """
        self._check_open()
        data = self._check_packet(packet)
        args: list[CommandArg] = [recipient, self.system, data, "1" if control else "0"]
        if ack is not None and ack.token is not None:
            stream, entry_id = _token(ack)
            args += [stream, entry_id]
        if await self._run_script(scripts.SEND, *args) != 1:
            raise UnknownRecipient(recipient)
        if ack is not None and ack.token is not None and self._settled(ack):
            await self._wake_reader()

    async def send_batch(
        self, items: Sequence[tuple[str, object]], *, control: bool = False
    ) -> None:
        """Send the items in order, in one round trip and one atomic step.

        Raises:
            UnknownRecipient: for the first recipient nobody holds; the items before it were
                sent, it and the items after it were not.
        """
        self._check_open()
        args: list[CommandArg] = [self.system, "1" if control else "0"]
        for recipient, packet in items:
            args += [recipient, self._check_packet(packet)]
        if not items:
            await trio.lowlevel.checkpoint()
            return
        stopped_at = await self._run_script(scripts.SEND_BATCH, *args)
        if isinstance(stopped_at, int) and stopped_at > 0:
            raise UnknownRecipient(items[stopped_at - 1][0])

    async def broadcast(self, packet: object) -> None:
        """Append `packet` to every other node's box."""
        self._check_open()
        data = self._check_packet(packet)
        await self._run_script(scripts.BROADCAST, self.node, self.system, data)

    async def receive(self) -> Delivery | PeerLost:
        """Wait for the next delivery or peer notice; see `TransportLink.receive`."""
        try:
            return await self._queue_out.receive()
        except trio.ClosedResourceError:
            raise trio.EndOfChannel from None

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge and delete `delivery`'s entry (a no-op for deliveries without token)."""
        if delivery.token is None or self._closed:
            # After close the entry stays pending: it goes to the name's next holder, marked
            # reclaimed, once this node's heartbeat is gone.
            await trio.lowlevel.checkpoint()
            return
        stream, entry_id = _token(delivery)
        # Acknowledgements are written in batches (one ACK script call per stream, with the
        # next command or by `_flush_acks_loop`): a delivery whose ack was not written yet when
        # the node died is delivered again (at-least-once), which the receiver tolerates anyway.
        self._ack_buffer.setdefault(stream, []).append(entry_id)
        self._acks_waiting.set()
        if self._settled(delivery):
            await self._wake_reader()
        else:
            await trio.lowlevel.checkpoint()

    async def _flush_acks_loop(self) -> None:
        while True:
            await self._acks_waiting.wait()
            self._acks_waiting = trio.Event()
            # Give the next command a moment to carry them (see `_run_scripts`).
            await trio.sleep(_ACK_DELAY)
            await self._flush_acks()

    def _take_acks(
        self,
    ) -> tuple[dict[str, list[bytes]], list[tuple[scripts.Script, Sequence[CommandArg]]]]:
        """Empty the ack buffer: what it held, and the ACK script calls that write it."""
        buffered, self._ack_buffer = self._ack_buffer, {}
        calls: list[tuple[scripts.Script, Sequence[CommandArg]]] = []
        for stream, entry_ids in buffered.items():
            for start in range(0, len(entry_ids), _ACKS_PER_CALL):
                calls.append(
                    (scripts.ACK, (stream, *entry_ids[start : start + _ACKS_PER_CALL]))
                )
        return buffered, calls

    def _restore_acks(self, buffered: dict[str, list[bytes]]) -> None:
        """Put back acks that were not written (cancelled while closing, say)."""
        for stream, entry_ids in buffered.items():
            self._ack_buffer.setdefault(stream, [])[:0] = entry_ids
        if self._ack_buffer:
            self._acks_waiting.set()

    async def _flush_acks(self) -> None:
        """Write every buffered acknowledgement (XACK then XDEL, atomically per stream)."""
        if self._ack_buffer:
            await self._run_scripts([])

    async def _wake_reader(self) -> None:
        """End the reader's blocking read, so that it reads a name whose window reopened."""
        await self._client.execute("XADD", self._prefix + "box:" + self.node, "*", "kind", "wake")

    def _settled(self, delivery: Delivery) -> bool:
        """Free `delivery`'s place in its name's window; True if that reopened a full window."""
        stream, entry_id = _token(delivery)
        if delivery.recipient is None or stream != self._prefix + "inbox:" + delivery.recipient:
            return False
        outstanding = self._outstanding.get(delivery.recipient)
        if outstanding is None or entry_id not in outstanding:
            return False
        was_full = len(outstanding) >= self.window
        outstanding.discard(entry_id)
        if not outstanding:
            del self._outstanding[delivery.recipient]
        return was_full

    async def _heartbeat_loop(self) -> None:
        period = self._settings.heartbeat / 2
        grace = 2 * self._settings.ttl_ms / 1000
        while True:
            # After a reconnect, sweep only over a connection older than two TTLs, so that
            # peers had the time to reconnect (with backoff) and refresh their heartbeats
            # after an outage: theirs may have expired meanwhile.
            age = trio.current_time() - self._client.connected_at  # -inf while disconnected
            settled = age >= grace or (self._client.connects <= 1 and age >= 0)
            beat = (self.node, self._settings.ttl_ms, "1" if settled else "0")
            try:
                # Not retried: the sweep decision above belongs to this connection (one that
                # broke unnoticed must not sweep from its replacement, just after an outage).
                (reply,) = await self._run_scripts([(scripts.HEARTBEAT, beat)], retry=False)
            except trio.BrokenResourceError:
                continue
            assert isinstance(reply, list) and reply
            if reply[0] != 1:
                # Keep the peers we knew: if Redis lost its data they are the ones to report.
                await self._come_back("this node's registration was gone at its heartbeat")
                continue
            self._peers = {
                bytes(reply[i]).decode(): bytes(reply[i + 1]).decode()
                for i in range(1, len(reply), 2)
            }
            await trio.sleep(period)

    async def _come_back(self, why: str) -> None:
        """Register again after our node's records vanished; report peers if Redis lost data."""
        recoveries = self._recoveries
        async with self._coming_back:
            if self._recoveries != recoveries:
                # Another task (heartbeat or claim) brought us back while this one waited.
                return
            self._recoveries += 1
            run_id = self._client.run_id
            # An unknown run id (INFO refused to the ACL user) counts as lost data: failing
            # jobs in flight is better than leaving them waiting for answers that never come.
            lost_data = run_id != self._run_id or not run_id
            if lost_data:
                self._redis_restarts += 1
                reason = (
                    f"redis restarted without persistence (run id {self._run_id} -> {run_id}); "
                    "what was in flight through it is lost"
                )
                logger.warning("node %r: %s", self.node, reason)
                # The entries these refer to are gone with Redis's data.
                self._outstanding.clear()
                self._ack_buffer.clear()
            else:
                logger.warning("node %r: %s (paused longer than its TTL?)", self.node, why)
            # Our own names first, so that peers told below can reach us again soon.
            await self._register()
            for name in sorted(self._names):
                try:
                    # Buried again meanwhile: the next heartbeat brings us back once more.
                    if not await self._claim(name, recover=False):
                        break
                except NameClaimed as exc:  # someone took it while we were away
                    logger.warning("node %r could not take %r back: %s", self.node, name, exc)
                    self._names.discard(name)
            if lost_data:
                notices = [
                    PeerLost(system, crashed=True, reason=reason)
                    for system in sorted(set(self._peers.values()))
                ]
                # Last, a notice naming this very system: what it had announced is gone with
                # Redis's data, so it must announce its actors again (see `PeerLost`).
                notices.append(PeerLost(self.system, crashed=False, reason=reason))
                self._peers.clear()
                # Handed over by a task of their own: the heartbeat must never wait for the
                # receiver (a late heartbeat would get this node buried).
                assert self._background is not None
                self._background.start_soon(self._hand_over, notices)

    async def _hand_over(self, notices: list[PeerLost]) -> None:
        for notice in notices:
            await self._queue_in.send(notice)

    def _plan_read(self) -> tuple[list[str], int]:
        """The streams to read next, and how many entries per stream at most.

        A name whose window is full is left out: its entries wait in Redis, and the ack that
        frees room wakes the read.
        """
        room = {
            name: self.window - len(self._outstanding.get(name, ())) for name in sorted(self._names)
        }
        open_names = [name for name, free in room.items() if free > 0]
        inbox_prefix = self._prefix + "inbox:"
        streams = [self._prefix + "box:" + self.node] + [inbox_prefix + n for n in open_names]
        return streams, min([self._settings.read_count, *(room[n] for n in open_names)])

    async def _read_loop(self) -> None:
        assert self._reader is not None
        inbox_prefix = self._prefix + "inbox:"
        while True:
            batch: ReadBatch = await self._reader.read(self._plan_read)
            for item in batch.items:
                if isinstance(item, Delivery) and item.recipient is not None:
                    stream, entry_id = _token(item)
                    if stream == inbox_prefix + item.recipient:
                        self._outstanding.setdefault(item.recipient, set()).add(entry_id)
                try:
                    # Without a scheduling round per entry while there is room; the next read
                    # is this task's checkpoint.
                    self._queue_in.send_nowait(item)
                except trio.WouldBlock:
                    await self._queue_in.send(item)
            if batch.internal_acks:
                await self._run_scripts([(scripts.ACK, token) for token in batch.internal_acks])

    async def _run_background(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Heartbeats, reading and the ack writer, until the link closes."""
        with self._tasks:
            async with trio.open_nursery() as nursery:
                self._background = nursery
                nursery.start_soon(self._heartbeat_loop)
                nursery.start_soon(self._read_loop)
                nursery.start_soon(self._flush_acks_loop)
                task_status.started()

    def _halt(self) -> None:
        """Stop heartbeats and reading and skip the goodbye, as if the process was killed.

        For tests of crash detection: peers see this node's heartbeat lapse.
        """
        self._halted = True
        self._tasks.cancel()


def _token(delivery: Delivery) -> tuple[str, bytes]:
    token = delivery.token
    if (
        not isinstance(token, tuple)
        or len(token) != 2
        or not isinstance(token[0], str)
        or not isinstance(token[1], bytes)
    ):
        raise ValueError(f"not a delivery of a redis link: {delivery!r}")
    return token[0], token[1]
