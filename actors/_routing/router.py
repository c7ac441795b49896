"""The router: who lives where, and how an envelope gets there.

Theory of operation
-------------------
A `Router` belongs to one actor system. It owns the table of local endpoints (name ->
`Endpoint`: a mailbox plus the callbacks that take control traffic on delivery), the link to
the transport, the ids it stamps on envelopes, and the acknowledgements the link is owed.

Rule 1: control first. Job answers, cancels and credits (`CONTROL_TYPES`) never enter a
mailbox: they are handed to the endpoint's `on_control` at delivery, synchronously, so a full
mailbox never holds them up, and they cross links as control packets, which skip the per-name
window (see `transports.TransportLink`).

Rule 2: backpressure per actor. A local sender waits for room in the recipient's mailbox.
Envelopes that arrive from the link never make the inbound loop wait: when the mailbox is full
they wait in that endpoint's backlog, pushed by a task of its own, so only that actor's senders
slow down (the link stops handing over more for that name once its window is full).

Rule 3: every delivery from the link is acknowledged exactly once, after it was handled: here,
in `settle`, which is idempotent. A job request is settled by its answer (atomically with it on
links that can), anything else when its handler returned, crashed or was drained.

Rule 4: synchronous code never blocks on I/O. `post` and `post_broadcast` deliver locally at
once when they can and otherwise queue, to be sent by the router's own tasks in batches.

Local delivery may round-trip through the codec (strict mode), so that local equals remote.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import msgspec
import trio

from transports import Delivery, NameClaimed, TransportLink, UnknownRecipient

from .._exceptions import ActorNotFound, ActorStateError, EncodeError, NameTaken
from .._wire.codec import EnvelopeCodec
from .._wire.envelope import CONTROL_TYPES, Envelope, JobRequestMessage
from .mailbox import Mailbox
from .registry import Registry

logger = logging.getLogger(__name__)

BACKLOG_LIMIT = 100_000
"""Most envelopes waiting in one endpoint's backlog.

Honest traffic stays far below it: a link hands over at most its per-name window of ordinary
packets. Only a peer flooding an actor with what skips the window (broadcasts, or ordinary
messages it passes off as control packets) reaches it; past it, envelopes are dropped and
counted as hostile (issue 8: every per-peer structure is bounded).
"""

DEFAULT_SLOW_SEND_WARNING = 5.0
"""Default seconds a send waits for room in a full mailbox before a warning names both actors."""


def _never(envelope: Envelope) -> bool:
    return False


@attrs.define(eq=False)
class Endpoint:
    """Where envelopes for one local name go."""

    name: str
    """The name it is registered under."""
    mailbox: Mailbox[Envelope] | None
    """Its mailbox (None for an endpoint that only takes control traffic)."""
    on_control: Callable[[Envelope], None]
    """Takes control traffic on delivery; must not block."""
    on_request: Callable[[Envelope], bool] = _never
    """Optionally starts a job request at once; returns False to queue it instead."""
    backlog: deque[Envelope] = attrs.field(factory=deque)
    """Envelopes from the link waiting for room in the mailbox, in arrival order."""
    pumping: bool = False
    """Whether a task is pushing the backlog into the mailbox."""
    dropping: bool = False
    """Whether the backlog was full when the last envelope came (see `Router.join_backlog`)."""


@attrs.define(eq=False)
class RouterCounters:
    """What the router counted; the system's statistics report them."""

    decode_errors: int = 0
    undeliverable: int = 0
    duplicates: int = 0
    hostile: int = 0
    dead_letters: int = 0


class Router:
    """Routes envelopes for one actor system: local endpoints, the link, acknowledgements.

    Args:
        system: the system's name.
        codec: the codec envelopes cross processes with.
        registry: the system's registry (local and remote actors).
    """

    def __init__(self, system: str, codec: EnvelopeCodec, registry: Registry) -> None:
        self.system = system
        self.codec = codec
        self.registry = registry
        self.address = f"system:{system}"
        self.link: TransportLink | None = None
        self.routes: dict[str, TransportLink] = {}
        """Names reached through a link of their own (a WebSocket link's imported actors),
        consulted before the primary `link`. Set by whoever attaches the link."""
        self.strict = False
        self.slow_send_warning = DEFAULT_SLOW_SEND_WARNING
        """Seconds a send may wait for room in a local mailbox before a warning is logged."""
        self.backlog_limit = BACKLOG_LIMIT
        """Most envelopes one endpoint's backlog holds (see `BACKLOG_LIMIT`)."""
        self.endpoints: dict[str, Endpoint] = {}
        self.counters = RouterCounters()
        self.lost_handler: Callable[[Envelope], None] | None = None
        """Takes an envelope that waited in a backlog for an actor that then ended, so that a
        job request in it is answered (or waits for a restart) rather than dropped; it counts
        what it drops. Set by the system."""
        self._nursery: trio.Nursery | None = None
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4) + "-"
        self._job_prefix = secrets.token_hex(8) + "-"
        self._job_ids = itertools.count(1)
        self._unacked: dict[str, Delivery] = {}
        self._acks: list[Delivery] = []
        self._outbox: deque[tuple[Envelope, bool]] = deque()
        self._wake_flusher = trio.Event()

    def __repr__(self) -> str:
        return (
            f"<Router [{self.system!r}, endpoints: {len(self.endpoints)}, "
            f"unacked: {len(self._unacked)}, outbox: {len(self._outbox)}]>"
        )

    # --- ids --------------------------------------------------------------------------------

    def next_id(self) -> str:
        """A message id unique across systems (a random prefix and a counter)."""
        return f"{self._id_prefix}{next(self._ids):x}"

    def next_job_id(self) -> str:
        """A job id unique across systems."""
        return f"{self._job_prefix}{next(self._job_ids):x}"

    def envelope(
        self,
        sender: str,
        recipient: str | None,
        body: Any,
        *,
        job_id: str | None = None,
        urgent: bool = False,
        deadline: float | None = None,
    ) -> Envelope:
        """Stamp a new envelope."""
        return Envelope(
            id=self.next_id(),
            sender=sender,
            recipient=recipient,
            body=body,
            job_id=job_id,
            urgent=urgent,
            deadline=deadline,
        )

    # --- the session ------------------------------------------------------------------------

    async def serve(
        self, link: TransportLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the router's own tasks (acks, outbox, backlogs) until cancelled."""
        self.link = link
        self.strict = not link.carries_objects
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._flush, link)
            task_status.started()
            await trio.sleep_forever()

    def require_link(self) -> TransportLink:
        """The link, while the system runs.

        Raises:
            ActorStateError: once the system has closed.
        """
        if self.link is None:
            raise ActorStateError(f"actor system {self.system!r} is not running")
        return self.link

    # --- sending ----------------------------------------------------------------------------

    async def send(
        self,
        envelope: Envelope,
        *,
        missing_ok: bool = False,
        eager: bool = False,
        settles: str | None = None,
    ) -> None:
        """Deliver `envelope`: to a local mailbox (waiting for room) or through the link.

        Args:
            missing_ok: drop it silently if nobody holds the recipient's name.
            eager: skip the checkpoint when it was delivered at once (the caller has one).
            settles: the id of a delivery this send answers; it is acknowledged with it.

        Raises:
            ActorNotFound: if nobody holds the recipient's name (unless `missing_ok`).
            EncodeError: if the envelope cannot cross a process boundary (strict or remote).
        """
        recipient = envelope.recipient
        assert recipient is not None
        try:
            endpoint = self.endpoints.get(recipient)
            if endpoint is not None:
                pending = self.deliver_nowait(endpoint, envelope)
                if pending is not None:
                    await self._wait_for_room(endpoint, pending)
                elif not eager:
                    await trio.lowlevel.checkpoint()
                if settles is not None:
                    self.settle(settles)
                return
            route = self.routes.get(recipient)
            link = route if route is not None else self.require_link()
            packet = envelope if link.carries_objects else self.codec.encode(envelope)
            ack = self._unacked.pop(settles, None) if settles is not None else None
            if route is not None and ack is not None:
                # Deliveries to acknowledge come from the primary link: settle it there.
                self._acks.append(ack)
                self._wake_flusher.set()
                ack = None
            try:
                await link.send(
                    recipient, packet, control=type(envelope.body) in CONTROL_TYPES, ack=ack
                )
            except UnknownRecipient:
                if ack is not None:
                    self._acks.append(ack)
                    self._wake_flusher.set()
                raise ActorNotFound(recipient, self.registry.names()) from None
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                # The link is closing (the system is being cancelled): nobody is reachable.
                raise ActorNotFound(
                    recipient, self.registry.names(), reason="the transport link is closed"
                ) from None
        except ActorNotFound:
            if not missing_ok:
                raise

    def deliver_nowait(
        self, endpoint: Endpoint, envelope: Envelope, *, decoded: bool = False
    ) -> Envelope | None:
        """Deliver to a local endpoint if that needs no waiting; else return what must wait.

        The returned envelope has already been through the codec in strict mode.

        Args:
            decoded: the envelope was just decoded from the link (no round trip needed).

        Raises:
            ActorNotFound: if the endpoint's mailbox is closed.
            EncodeError: in strict mode, if the envelope cannot cross a process boundary.
        """
        if self.strict and not decoded:
            envelope = self.codec.roundtrip(envelope)
        body_type = type(envelope.body)
        if body_type in CONTROL_TYPES:
            endpoint.on_control(envelope)
            return None
        if body_type is JobRequestMessage and endpoint.on_request(envelope):
            return None
        mailbox = endpoint.mailbox
        if mailbox is None:
            raise ActorNotFound(endpoint.name, self.registry.names())
        try:
            mailbox.send_nowait(envelope, urgent=envelope.urgent)
        except trio.WouldBlock:
            return envelope
        except trio.ClosedResourceError:
            raise ActorNotFound(endpoint.name, self.registry.names()) from None
        return None

    async def _wait_for_room(self, endpoint: Endpoint, envelope: Envelope) -> None:
        mailbox = endpoint.mailbox
        assert mailbox is not None
        try:
            with trio.move_on_after(self.slow_send_warning):
                await mailbox.send(envelope, urgent=envelope.urgent)
                return
            # Still no room. Bounded mailboxes allow two actors that send into each other's
            # full mailboxes to wait for ever (issue 8): say who waits for whom, then go on
            # waiting (a cancelled `Mailbox.send` has not queued the envelope).
            logger.warning(
                "system %r: %r has waited %ss to send a %s to %r, whose mailbox is full "
                "(%d queued); if %r is itself waiting to send to %r, they are deadlocked",
                self.system,
                envelope.sender,
                self.slow_send_warning,
                type(envelope.body).__name__,
                endpoint.name,
                mailbox.statistics().queued,
                endpoint.name,
                envelope.sender,
            )
            await mailbox.send(envelope, urgent=envelope.urgent)
        except trio.ClosedResourceError:
            raise ActorNotFound(endpoint.name, self.registry.names()) from None

    def post(self, envelope: Envelope) -> None:
        """Deliver `envelope` from synchronous code; never blocks, never raises.

        A local recipient gets it at once or through its backlog (in order); a remote one
        through the outbox, which the router's flusher sends in batches.
        """
        recipient = envelope.recipient or ""
        endpoint = self.endpoints.get(recipient)
        if endpoint is None:
            if self.link is not None and self._nursery is not None:
                self._outbox.append((envelope, False))
                self._wake_flusher.set()
            return
        if endpoint.backlog and type(envelope.body) not in CONTROL_TYPES:
            # Behind what already waits for this actor (arrival order); control traffic is
            # taken on delivery and never waits (Rule 1).
            self.join_backlog(endpoint, envelope)
            return
        try:
            pending = self.deliver_nowait(endpoint, envelope)
        except (ActorNotFound, EncodeError) as exc:
            logger.debug(
                "system %r dropped a posted envelope for %r: %s", self.system, recipient, exc
            )
            return
        if pending is not None:
            self.queue_backlog(endpoint, pending)

    def post_broadcast(self, envelope: Envelope) -> None:
        """Broadcast `envelope` to every peer system from synchronous code (queued)."""
        if self.link is not None and self._nursery is not None:
            self._outbox.append((envelope, True))
            self._wake_flusher.set()

    async def broadcast(self, envelope: Envelope) -> None:
        """Broadcast `envelope` to every peer system now."""
        link = self.link
        if link is None:
            await trio.lowlevel.checkpoint()
            return
        packet = envelope if link.carries_objects else self.codec.encode(envelope)
        await link.broadcast(packet)

    def join_backlog(self, endpoint: Endpoint, envelope: Envelope) -> bool:
        """Queue `envelope` behind a backlog that is being pushed already.

        Returns:
            False if the backlog is at `backlog_limit`: the envelope was dropped (counted as
            hostile, logged, settled); the caller answers it if an answer is owed.
        """
        if len(endpoint.backlog) < self.backlog_limit:
            endpoint.backlog.append(envelope)
            endpoint.dropping = False
            return True
        self.counters.hostile += 1
        self.settle(envelope.id)
        if not endpoint.dropping:
            # Once per flood, not once per envelope dropped.
            endpoint.dropping = True
            logger.warning(
                "system %r drops envelopes for %r (the first a %s from %r): %d already wait "
                "for its mailbox",
                self.system,
                endpoint.name,
                type(envelope.body).__name__,
                envelope.sender,
                len(endpoint.backlog),
            )
        return False

    def queue_backlog(self, endpoint: Endpoint, envelope: Envelope) -> None:
        """Queue `envelope` behind the endpoint's backlog, pushed by a task of its own."""
        endpoint.backlog.append(envelope)
        if not endpoint.pumping and self._nursery is not None:
            endpoint.pumping = True
            self._nursery.start_soon(self._pump, endpoint, name=f"backlog of {endpoint.name}")

    async def _pump(self, endpoint: Endpoint) -> None:
        try:
            while endpoint.backlog:
                envelope = endpoint.backlog[0]
                try:
                    await self._wait_for_room(endpoint, envelope)
                except ActorNotFound:
                    # The actor finished while this waited: nothing of its backlog can land.
                    for lost in endpoint.backlog:
                        self.on_undeliverable(lost)
                    endpoint.backlog.clear()
                    return
                endpoint.backlog.popleft()
        finally:
            endpoint.pumping = False

    # --- acknowledgements -------------------------------------------------------------------

    def expect_ack(self, envelope: Envelope, delivery: Delivery) -> None:
        """Remember that `envelope` came as `delivery`, which the link must be told about."""
        if delivery.token is not None:
            self._unacked[envelope.id] = delivery

    def ack_now(self, delivery: Delivery) -> None:
        """Acknowledge a delivery that was handled without becoming an envelope for an actor."""
        if delivery.token is not None:
            self._acks.append(delivery)
            self._wake_flusher.set()

    def settle(self, envelope_id: str) -> None:
        """`envelope_id` was handled: acknowledge its delivery (once; later calls do nothing)."""
        if not self._unacked:
            return
        delivery = self._unacked.pop(envelope_id, None)
        if delivery is not None:
            self._acks.append(delivery)
            self._wake_flusher.set()

    @property
    def unacknowledged(self) -> int:
        """Deliveries handed to actors and not yet settled."""
        return len(self._unacked)

    @property
    def blocked_senders(self) -> int:
        """Tasks waiting for room in a local mailbox (senders, and backlogs from the link)."""
        return sum(
            endpoint.mailbox.statistics().senders_waiting
            for endpoint in self.endpoints.values()
            if endpoint.mailbox is not None
        )

    def on_undeliverable(self, envelope: Envelope) -> None:
        """Hand over (or count) and settle an envelope no local actor could take."""
        if self.lost_handler is not None:
            self.lost_handler(envelope)
        else:
            self.counters.undeliverable += 1
        self.settle(envelope.id)
        logger.debug(
            "system %r: no live actor %r for a %s; dropped",
            self.system,
            envelope.recipient,
            type(envelope.body).__name__,
        )

    async def _flush(self, link: TransportLink) -> None:
        """Send the outbox and the acknowledgements, batching whatever is ready together."""
        while True:
            await self._wake_flusher.wait()
            self._wake_flusher = trio.Event()
            acks, self._acks = self._acks, []
            for delivery in acks:
                try:
                    await link.ack(delivery)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
            while self._outbox:
                batch: list[tuple[str, object]] = []
                control = None
                while self._outbox and len(batch) < 256:
                    envelope, is_broadcast = self._outbox[0]
                    route = None if is_broadcast else self.routes.get(envelope.recipient or "")
                    if route is not None:
                        if batch:
                            break
                        self._outbox.popleft()
                        await self._send_routed(route, envelope)
                        continue
                    if is_broadcast:
                        if batch:
                            break
                        self._outbox.popleft()
                        await self._send_broadcast(link, envelope)
                        continue
                    is_control = type(envelope.body) in CONTROL_TYPES
                    if control is not None and is_control != control:
                        break
                    control = is_control
                    self._outbox.popleft()
                    packet = self._packet(link, envelope)
                    if packet is not None:
                        batch.append((envelope.recipient or "", packet))
                if batch:
                    await self._send_batch(link, batch, control=bool(control))

    def _packet(self, link: TransportLink, envelope: Envelope) -> object | None:
        if link.carries_objects:
            return envelope
        try:
            return self.codec.encode(envelope)
        except EncodeError as exc:
            logger.warning(
                "system %r could not send a %s: %s", self.system, type(envelope.body).__name__, exc
            )
            return None

    async def _send_batch(
        self, link: TransportLink, batch: list[tuple[str, object]], *, control: bool
    ) -> None:
        while batch:
            try:
                await link.send_batch(batch, control=control)
                return
            except UnknownRecipient as exc:
                # Items before the unknown one were sent; skip it and go on with the rest.
                names = [recipient for recipient, _ in batch]
                index = names.index(exc.name) if exc.name in names else len(batch) - 1
                batch = batch[index + 1 :]
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return

    async def _send_routed(self, route: TransportLink, envelope: Envelope) -> None:
        packet = self._packet(route, envelope)
        if packet is None:
            return
        with contextlib.suppress(
            UnknownRecipient, trio.ClosedResourceError, trio.BrokenResourceError
        ):
            await route.send(
                envelope.recipient or "", packet, control=type(envelope.body) in CONTROL_TYPES
            )

    async def _send_broadcast(self, link: TransportLink, envelope: Envelope) -> None:
        packet = self._packet(link, envelope)
        if packet is None:
            return
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await link.broadcast(packet)

    # --- names ------------------------------------------------------------------------------

    async def claim(self, endpoint: Endpoint) -> None:
        """Register `endpoint` under its name, unique across every system on the transport.

        Raises:
            NameTaken: if a live actor (here or on a peer) holds the name.
            ActorStateError: if the system is not running.
        """
        name = endpoint.name
        if name in self.endpoints:
            raise NameTaken(name, self.system)
        try:
            await self.require_link().claim(name)
        except NameClaimed as exc:
            raise NameTaken(name, exc.owner) from None
        if name in self.endpoints:
            # Claimed twice locally while the link's claim was in flight.
            raise NameTaken(name, self.system)
        self.endpoints[name] = endpoint

    async def release(self, endpoint: Endpoint) -> None:
        """Unregister `endpoint` and give up its name (a no-op if another holds it now)."""
        if self.endpoints.get(endpoint.name) is not endpoint:
            await trio.lowlevel.checkpoint()
            return
        del self.endpoints[endpoint.name]
        link = self.link
        if link is None:
            await trio.lowlevel.checkpoint()
            return
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await link.release(endpoint.name)

    def is_local(self, name: str) -> bool:
        """Whether a local endpoint holds `name`."""
        return name in self.endpoints

    def relabel(self, envelope: Envelope, recipient: str) -> Envelope:
        """A copy of a broadcast `envelope` addressed to one local `recipient`."""
        return msgspec.structs.replace(envelope, recipient=recipient)
