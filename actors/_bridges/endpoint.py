"""Bridges: a stream of frames that follows whichever bridged actor is active.

Theory of operation
-------------------
A bridge is an endpoint named ``bridge:<name>`` with its own mailbox. Inbound frames
(`Bridge.send`) get a sequence number and wait in the bridge's queue; the `FrameRouter` (pure,
below) hands them to the *owner*, the active actor bridged to it, a window at a time. The owner
settles each frame with a `BridgeAck`: handled, or handed back because it was no longer active.

Rule 1: frames reach actors in sequence order, across handoffs. When the owner changes, or a
frame comes back, the router sends nothing more until every frame in flight has settled; the
handed-back ones go to the front of the queue, and a new *epoch* starts. An actor that handed
back a frame of some epoch hands back every later frame of it, so nothing overtakes.

Rule 2: nothing is lost. While no bridged actor is active frames wait in the queue, whose
bound makes `send` wait (backpressure); frames in flight to an actor that vanishes are queued
again (delivery is at-least-once across a crash).

Rule 3: no poison loop. An actor handles its frames in order, so when it vanishes the oldest
frame in flight to it is the one it was handling: that frame is charged an attempt. A frame
charged `MAX_FRAME_ATTEMPTS` times (its handler crashed that often: a poison frame) is
dead-lettered instead of queued again, so a restarted actor gets the next frame rather than the
same crash. An acknowledgement that arrives after its frame was presumed lost still settles it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import msgspec
import trio

from .._exceptions import ActorNotFound, DecodeError
from .._routing.mailbox import Mailbox
from .._routing.router import Endpoint, Router
from .._wire.envelope import AgentInfo, BridgeAck, BridgeFrame, Envelope

logger = logging.getLogger(__name__)

MAX_FRAME_ATTEMPTS = 2
"""Deliveries of one frame that may end with its actor vanishing before it is dead-lettered.

Two, not one: the first crash may have had another cause (delivery is at-least-once).
"""


@attrs.frozen
class _Item:
    seq: int
    frame_type: str
    data: msgspec.Raw


@attrs.define
class FrameRouter:
    """Decides which queued frame goes to which actor, and when. Pure: no I/O, no Trio."""

    bridge: str
    capacity: int = 1024
    window: int = 32
    owner: str | None = None
    epoch: int = 0
    _next_seq: int = 1
    _pending: deque[_Item] = attrs.field(factory=deque)
    _in_flight: dict[int, _Item] = attrs.field(factory=dict)
    _returned: list[_Item] = attrs.field(factory=list)
    _target: str | None = None
    _draining: bool = False
    _attempts: dict[int, int] = attrs.field(factory=dict)

    @property
    def queued(self) -> int:
        """Frames waiting to be sent."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet settled."""
        return len(self._in_flight)

    def has_room(self) -> bool:
        """Whether `push` may add another frame (the queue is below `capacity`)."""
        return len(self._pending) + len(self._returned) < self.capacity

    def push(self, frame_type: str, data: msgspec.Raw) -> int:
        """Queue a frame; return its sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        self._pending.append(_Item(seq, frame_type, data))
        return seq

    def set_owner(self, owner: str | None) -> None:
        """Record which actor should receive frames from now on (None: nobody)."""
        if owner != self.owner:
            self.owner = owner
            if self._in_flight:
                self._draining = True

    def settle(self, seq: int, returned: bool) -> None:
        """Record an actor's answer for frame `seq`."""
        item = self._in_flight.pop(seq, None)
        self._attempts.pop(seq, None)
        if item is None:
            if not returned:
                # Acknowledged after its actor was presumed lost: handled, so never send it again.
                self._returned = [i for i in self._returned if i.seq != seq]
                if any(i.seq == seq for i in self._pending):
                    self._pending = deque(i for i in self._pending if i.seq != seq)
            return
        if returned:
            self._returned.append(item)
            self._draining = True
        self._maybe_finish_drain()

    def lost(self, name: str) -> list[BridgeFrame]:
        """Actor `name` vanished: every frame in flight to it goes back to the queue.

        Returns:
            The frames dead-lettered instead (see Rule 3), for the caller to log and count.
        """
        if self._target != name or not self._in_flight:
            return []
        dead: list[BridgeFrame] = []
        oldest = min(self._in_flight)
        attempts = self._attempts.get(oldest, 0) + 1
        if attempts >= MAX_FRAME_ATTEMPTS:
            item = self._in_flight.pop(oldest)
            self._attempts.pop(oldest, None)
            dead.append(
                BridgeFrame(
                    bridge=self.bridge,
                    seq=item.seq,
                    epoch=self.epoch,
                    frame_type=item.frame_type,
                    data=item.data,
                )
            )
        else:
            self._attempts[oldest] = attempts
        self._returned.extend(self._in_flight.values())
        self._in_flight.clear()
        self._draining = True
        self._maybe_finish_drain()
        return dead

    def next_frames(self) -> list[tuple[str, BridgeFrame]]:
        """Return the frames to send now, each with its recipient, and mark them in flight."""
        if self._draining or self.owner is None:
            return []
        if self._target != self.owner:
            self._target = self.owner
            self.epoch += 1
        sends: list[tuple[str, BridgeFrame]] = []
        while self._pending and len(self._in_flight) < self.window:
            item = self._pending.popleft()
            self._in_flight[item.seq] = item
            frame = BridgeFrame(
                bridge=self.bridge,
                seq=item.seq,
                epoch=self.epoch,
                frame_type=item.frame_type,
                data=item.data,
            )
            sends.append((self.owner, frame))
        return sends

    def _maybe_finish_drain(self) -> None:
        if self._draining and not self._in_flight:
            self._pending.extendleft(sorted(self._returned, key=lambda i: i.seq, reverse=True))
            self._returned.clear()
            self._draining = False
            self._target = None


def active_bridged(bridge: str, agents: list[AgentInfo]) -> list[str]:
    """The active actors bridged to `bridge`, in registration order (normally one at most)."""
    return [
        info.name
        for info in agents
        if info.active and info.bridged is not None and (not info.bridged or bridge in info.bridged)
    ]


def choose_owner(bridge: str, agents: list[AgentInfo], current: str | None) -> str | None:
    """Pick the active actor bridged to `bridge`, keeping `current` while it qualifies."""
    candidates = active_bridged(bridge, agents)
    if current in candidates:
        return current
    return candidates[-1] if candidates else None


@attrs.define(eq=False)
class Bridge:
    """The outside end of a bridge: send frames in, receive what the agents answer.

    Made by `ActorSystem.open_bridge`; usable only inside its ``async with`` block.
    """

    name: str
    """The bridge's name."""
    _router: FrameRouter
    _outbound_send: trio.MemorySendChannel[Any]
    _outbound_receive: trio.MemoryReceiveChannel[Any]
    _room: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _work: trio.Event = attrs.field(factory=trio.Event)
    _encode: Any = None
    _closed: bool = False
    _bad_frames: int = 0
    _dead_letters: int = 0

    def __repr__(self) -> str:
        return (
            f"<Bridge [{self.name!r}, owner: {self._router.owner!r}, "
            f"queued: {self._router.queued}, in flight: {self._router.in_flight}]>"
        )

    @property
    def owner(self) -> str | None:
        """The actor frames currently go to, or None while no bridged actor is active."""
        return self._router.owner

    def send_nowait(self, frame: msgspec.Struct) -> None:
        """Queue an inbound frame for the active bridged actor without waiting.

        Raises:
            trio.WouldBlock: if the bridge's queue is full.
            trio.ClosedResourceError: if the bridge is closed.
            EncodeError: if `frame` is not a user-defined Struct that can be encoded.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"bridge {self.name!r} is closed")
        if not self._router.has_room():
            raise trio.WouldBlock
        frame_type, data = self._encode(frame)
        self._router.push(frame_type, data)
        self._work.set()

    async def send(self, frame: msgspec.Struct) -> None:
        """Queue an inbound frame, waiting while the bridge's queue is full.

        Frames reach the active bridged actor's `on_frame` in the order they were sent; a frame
        sent while no bridged actor is active waits for the next activation.

        Raises:
            trio.ClosedResourceError: if the bridge is closed.
            EncodeError: if `frame` is not a user-defined Struct that can be encoded.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self.send_nowait(frame)
            except trio.WouldBlock:
                await self._room.park()
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return

    async def receive(self) -> Any:
        """Wait for the next frame an actor sent out through this bridge.

        Raises:
            trio.EndOfChannel: once the bridge is closed.
        """
        return await self._outbound_receive.receive()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            try:
                yield await self._outbound_receive.receive()
            except trio.EndOfChannel:
                return

    def statistics(self) -> dict[str, Any]:
        """Return the bridge's owner and queue sizes."""
        return {
            "owner": self._router.owner,
            "queued": self._router.queued,
            "in_flight": self._router.in_flight,
            "capacity": self._router.capacity,
            "bad_frames": self._bad_frames,
            "dead_letters": self._dead_letters,
        }

    # --- driven by the system's bridge endpoint task ----------------------------------------

    def _on_envelope(self, envelope: Envelope, decode: Any) -> Any:
        body = envelope.body
        if isinstance(body, BridgeAck):
            self._router.settle(body.seq, body.returned)
            self._wake()
            return None
        if isinstance(body, BridgeFrame):
            return decode(body.frame_type, body.data)
        logger.warning("bridge %r ignored unexpected %s", self.name, type(body).__name__)
        return None

    def _wake(self) -> None:
        self._work.set()
        self._room.unpark_all()


def bridge_address(name: str) -> str:
    """Return the registry name of bridge `name`'s endpoint."""
    return f"bridge:{name}"


@asynccontextmanager
async def serve_bridge(router: Router, name: str, capacity: int) -> AsyncIterator[Bridge]:
    """Run bridge `name`'s endpoint in `system` for the duration of the block.

    Three tasks serve it: one reads the endpoint's mailbox (acks, and frames the agents send
    out), one sends queued frames to the owner as the router allows, and one follows the
    registry to know who the owner is.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be a positive int, got {capacity!r}")
    if capacity <= 0:
        raise ValueError(f"capacity must be > 0, got {capacity!r}")
    address = bridge_address(name)
    outbound_send, outbound_receive = trio.open_memory_channel[Any](capacity)
    bridge = Bridge(
        name,
        FrameRouter(name, capacity=capacity),
        outbound_send,
        outbound_receive,
        encode=router.codec.encode_value,
    )
    mailbox: Mailbox[Envelope] = Mailbox(capacity)
    endpoint = Endpoint(address, mailbox, on_control=_no_control)
    await router.claim(endpoint)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_endpoint, router, bridge, mailbox)
            nursery.start_soon(_pump_frames, router, bridge, address)
            nursery.start_soon(_follow_owner, router, bridge)
            yield bridge
            nursery.cancel_scope.cancel(reason="bridge closed")
    finally:
        bridge._closed = True
        bridge._room.unpark_all()
        outbound_send.close()
        mailbox.close()
        for leftover in mailbox.drain():
            router.settle(leftover.id)
        with trio.CancelScope(shield=True):
            await router.release(endpoint)


def _no_control(envelope: Envelope) -> None:
    logger.debug("bridge endpoint ignored a %s", type(envelope.body).__name__)


async def _read_endpoint(router: Router, bridge: Bridge, mailbox: Mailbox[Envelope]) -> None:
    while True:
        envelope = await mailbox.receive()
        try:
            frame = bridge._on_envelope(envelope, router.codec.decode_value)
        except DecodeError as exc:
            # An outbound frame nobody here can read: counted, logged and dropped.
            bridge._bad_frames += 1
            logger.warning("bridge %r dropped an undecodable frame: %s", bridge.name, exc)
            frame = None
        finally:
            router.settle(envelope.id)
        if frame is not None:
            await bridge._outbound_send.send(frame)


async def _pump_frames(router: Router, bridge: Bridge, address: str) -> None:
    while True:
        await bridge._work.wait()
        bridge._work = trio.Event()
        for recipient, frame in bridge._router.next_frames():
            try:
                await router.send(router.envelope(address, recipient, frame))
            except ActorNotFound:
                _dead_letter(router, bridge, recipient, bridge._router.lost(recipient))
                bridge._wake()
        bridge._room.unpark_all()


async def _follow_owner(router: Router, bridge: Bridge) -> None:
    registry = router.registry
    version = -1
    known: dict[str, str] = {}
    warned: list[str] = []
    while True:
        version = await registry.wait_changed(version)
        agents = registry.agents()
        incarnations = {info.name: info.incarnation for info in agents}
        for name, incarnation in known.items():
            # A restart under the same name is a new actor too: the old one's frames are lost.
            if incarnations.get(name) != incarnation:
                _dead_letter(router, bridge, name, bridge._router.lost(name))
        known = incarnations
        candidates = active_bridged(bridge.name, agents)
        if len(candidates) > 1 and candidates != warned:
            # Frames go to one of them only; two active agents on one conversation is almost
            # always a missing handoff (or a deactivate that never came). Warned once per set.
            logger.warning(
                "bridge %r has %d active bridged agents (%s); frames go to %r only",
                bridge.name,
                len(candidates),
                ", ".join(repr(name) for name in candidates),
                choose_owner(bridge.name, agents, bridge._router.owner),
            )
        warned = candidates if len(candidates) > 1 else []
        bridge._router.set_owner(choose_owner(bridge.name, agents, bridge._router.owner))
        bridge._wake()


def _dead_letter(router: Router, bridge: Bridge, actor: str, frames: list[BridgeFrame]) -> None:
    for frame in frames:
        bridge._dead_letters += 1
        router.counters.dead_letters += 1
        logger.warning(
            "bridge %r dead-lettered frame %d (%s): actor %r vanished while handling it, "
            "%d times",
            bridge.name,
            frame.seq,
            frame.frame_type,
            actor,
            MAX_FRAME_ATTEMPTS,
        )
