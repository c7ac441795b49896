"""The inbound path: everything that arrives from the transport link, in one loop.

Theory of operation
-------------------
`serve_inbound` is the only reader of `TransportLink.receive`. For each item it

1. hands a `PeerLost` notice to the system (`InboundHandler.on_peer_lost`);
2. decodes the packet; bytes that do not decode are counted, logged, acknowledged and dropped
   (the loop never dies of a bad packet);
3. drops a duplicate (a message id seen within the dedupe window) and acknowledges it;
4. hands a broadcast to the system (registry and lifecycle events, user broadcasts);
5. delivers an addressed envelope through the router: control traffic at once, anything else
   into the recipient's mailbox, or its backlog when the mailbox is full. The loop itself never
   waits for an actor, so one full mailbox stalls nobody else.

What cannot be delivered (nobody holds the name any more; a job request the transport
reclaimed from a dead system) goes to the system's handler, which answers it where an answer
is owed. Acknowledgement is the router's business (`Router.settle`): exactly once, after
handling.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from transports import Delivery, PeerLost, TransportLink

from .._exceptions import ActorNotFound, EncodeError
from .._wire.envelope import CONTROL_TYPES, Envelope, JobRequestMessage
from .dedupe import DedupeWindow
from .router import Router

logger = logging.getLogger(__name__)


class InboundHandler(Protocol):
    """What the actor system does with inbound traffic the router cannot route by itself."""

    def on_broadcast(self, envelope: Envelope) -> None:
        """A broadcast from a peer system arrived."""

    def on_peer_lost(self, notice: PeerLost) -> None:
        """A peer system ended or vanished."""

    def on_undeliverable(self, envelope: Envelope, *, reclaimed: bool) -> None:
        """An addressed envelope that no local actor can take (or must not run again)."""


async def serve_inbound(
    router: Router,
    link: TransportLink,
    handler: InboundHandler,
    *,
    dedupe: DedupeWindow | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read `link` until it closes, routing everything that arrives (see the module docstring).

    Cancellation: cancelling it stops reading; nothing that was read is left unrouted.
    """
    window = dedupe if dedupe is not None else DedupeWindow()
    task_status.started()
    while True:
        try:
            item = await link.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError):
            return
        if isinstance(item, PeerLost):
            handler.on_peer_lost(item)
            continue
        envelope = _decode(router, link, item)
        if envelope is None:
            router.ack_now(item)
            continue
        if window.seen(envelope.id, trio.current_time()):
            router.counters.duplicates += 1
            router.ack_now(item)
            logger.debug("system %r dropped a duplicate of message %s", router.system, envelope.id)
            continue
        if envelope.recipient is None:
            handler.on_broadcast(envelope)
            router.ack_now(item)
            continue
        route(router, handler, envelope, item)


def route(router: Router, handler: InboundHandler, envelope: Envelope, item: Delivery) -> None:
    """Deliver one decoded, addressed envelope that came from the link."""
    recipient = envelope.recipient or ""
    endpoint = router.endpoints.get(recipient)
    router.expect_ack(envelope, item)
    body_type = type(envelope.body)
    if endpoint is None or (item.reclaimed and body_type is JobRequestMessage):
        # A reclaimed request may already have run on the system that died: never run it
        # twice. The handler answers it FAILED (and it is dead-lettered).
        handler.on_undeliverable(envelope, reclaimed=item.reclaimed)
        router.settle(envelope.id)
        return
    if endpoint.backlog and body_type not in CONTROL_TYPES:
        # Arrival order: nothing overtakes what already waits for this actor, except control
        # traffic, which is taken on delivery and never waits behind a full mailbox (Rule 1 of
        # the router).
        if not router.join_backlog(endpoint, envelope):
            handler.on_undeliverable(envelope, reclaimed=False)
        return
    try:
        pending = router.deliver_nowait(endpoint, envelope, decoded=True)
    except (ActorNotFound, EncodeError):
        handler.on_undeliverable(envelope, reclaimed=False)
        router.settle(envelope.id)
        return
    if pending is not None:
        router.queue_backlog(endpoint, pending)
    elif body_type in CONTROL_TYPES:
        router.settle(envelope.id)


def _decode(router: Router, link: TransportLink, item: Delivery) -> Envelope | None:
    packet = item.packet
    if link.carries_objects and isinstance(packet, Envelope):
        return packet
    try:
        if not isinstance(packet, bytes | bytearray | memoryview):
            raise TypeError(f"expected bytes from the transport, got {type(packet).__name__!r}")
        return router.codec.decode(packet)
    except Exception as exc:
        router.counters.decode_errors += 1
        logger.warning("system %r dropped an undecodable packet: %s", router.system, exc)
        return None
