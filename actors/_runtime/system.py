"""The actor system: root nursery, registry, routing and the link to a transport.

Theory of operation
-------------------
Delivery is by name. A message for an actor of this system goes straight into its mailbox
(through the codec first in strict mode, so local equals remote); anything else goes to the
transport link, which knows which system holds the name. Broadcasts (registry and lifecycle
events, `send_message(None, ...)`) reach every local mailbox that wants them and every peer.

One task reads the link: it decodes each packet (a `DecodeError` is logged, counted and
survived), updates the registry from broadcasts, and puts addressed envelopes into mailboxes.
A peer that is lost takes its actors out of the registry, which ends the jobs they held.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar, overload

import attrs
import msgspec
import trio

from supervision import Restart, open_supervisor
from transports import (
    Delivery,
    MemoryTransport,
    NameClaimed,
    PeerLost,
    Transport,
    TransportLink,
    UnknownRecipient,
)

from .._runtime.actor import DEFAULT_GRACE, Actor, Finished
from .._bridges.endpoint import Bridge, serve_bridge
from .._wire.codec import EnvelopeCodec
from .._wire.envelope import (
    AgentActivation,
    AgentError,
    AgentGone,
    AgentReady,
    Envelope,
    JobCancel,
    JobCredit,
    JobRequestMessage,
    RegistryQuery,
    SystemGone,
    SystemMessage,
)
from .._exceptions import ActorNotFound, ActorStateError, NameTaken
from .._runtime.instance import ActorSpec, actor_name_of, child_spec, exit_reporter, start_supervised
from .._routing.mailbox import Mailbox
from .._routing.registry import Registry
from .._jobs.requester import REPLY_TYPES, JobRequesterMixin

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=Actor)


@attrs.frozen
class SystemStatistics:
    """Counters of an actor system, for tests and monitoring."""

    local_actors: int
    """Actors of this system that are registered now."""
    known_actors: int
    """Actors in the registry, local and remote."""
    decode_errors: int
    """Packets from the transport that could not be decoded (each logged and dropped)."""
    undeliverable: int
    """Envelopes that arrived for a name no local actor holds (dropped)."""


class ActorSystem(JobRequesterMixin):
    """The root of an actor tree, and a requester in its own right.

    Made by `open_actor_system`; use it only inside that ``async with`` block.
    """

    def __init__(self, name: str, transport: Transport, codec: EnvelopeCodec) -> None:
        self._name = name
        self._transport = transport
        self.codec = codec
        """The codec envelopes cross processes with."""
        self.registry = Registry()
        """Every live actor this system knows of, local or remote."""
        self._link: TransportLink | None = None
        self._strict = False
        self._mailboxes: dict[str, Mailbox[Envelope]] = {}
        self._actors: dict[str, Actor] = {}
        self._pending_acks: dict[str, Delivery] = {}
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4) + "-"
        self._job_prefix = secrets.token_hex(8) + "-"
        self._job_ids = itertools.count(1)
        self._root_supervisor: Any = None
        self._spawning = 0
        self._roots_done = trio.Event()
        self._roots_done.set()
        self._ending = False
        self._ended = trio.Event()
        self._decode_errors = 0
        self._undeliverable = 0
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._job_parties: set[Actor] = set()
        """Local actors that have requested or hold jobs (see `_parties_with_jobs`)."""
        self._init_jobs()

    def __repr__(self) -> str:
        return (
            f"<ActorSystem [{self._name!r}, actors: {len(self._actors)}, "
            f"known: {len(self.registry.names())}]>"
        )

    @property
    def name(self) -> str:
        """This system's name; unique among the systems on one transport."""
        return self._name

    @property
    def system(self) -> ActorSystem:
        """The system itself, so that code written for actors works on it too."""
        return self

    @property
    def address(self) -> str:
        """The name workers answer this system's own jobs to."""
        return f"system:{self._name}"

    def requester_address(self, requester: object) -> str:
        """Return the name a requester (an actor, or this system) receives answers at."""
        if requester is self:
            return self.address
        name = getattr(requester, "name", None)
        assert isinstance(name, str)
        return name

    @property
    def strict(self) -> bool:
        """Whether every envelope, local ones included, round-trips through the codec."""
        return self._strict

    @property
    def actors(self) -> dict[str, Actor]:
        """The live local actors by name."""
        return dict(self._actors)

    def statistics(self) -> SystemStatistics:
        """Return the system's counters."""
        return SystemStatistics(
            local_actors=len(self._actors),
            known_actors=len(self.registry.names()),
            decode_errors=self._decode_errors,
            undeliverable=self._undeliverable,
        )

    # --- the session -------------------------------------------------------------------------

    @overload
    async def spawn(self, actor: A, *, restart: Restart | None = None) -> A: ...
    @overload
    async def spawn(self, actor: ActorSpec, *, restart: Restart | None = None) -> Actor: ...

    async def spawn(self, actor: Actor | ActorSpec, *, restart: Restart | None = None) -> Actor:
        """Start a root actor; return it once it is ready.

        Args:
            actor: an unstarted instance, or an `ActorSpec` for restartable actors.
            restart: when the system restarts it after it exits (default: never).

        Raises:
            NameTaken: if a live actor already has its name.
            ActorStateError: if the system is ending.
            Exception: whatever the actor's `on_ready` raised.
        """
        if self._ending or self._root_supervisor is None:
            raise ActorStateError(f"actor system {self._name!r} is closed to new actors")
        _, spec = child_spec(self, None, actor, restart)
        self._spawning += 1
        self._check_roots_done()
        try:
            return await start_supervised(self._root_supervisor, spec)
        finally:
            self._spawning -= 1
            self._check_roots_done()

    async def wait(self) -> None:
        """Wait until every root actor has ended (one restarting has not ended)."""
        await self._roots_done.wait()

    def end(self, reason: str | None = None, *, grace: float = DEFAULT_GRACE) -> Finished:
        """End every root actor (and so every actor) gracefully, in reverse start order.

        Each root actor ends after the one started after it has finished, and none is
        restarted, whatever its restart type; all of them share one grace period, after which
        whatever is left is cancelled.

        Returns:
            An awaitable that completes when every root actor has ended.
        """
        if grace < 0 or math.isnan(grace):
            raise ValueError(f"grace must be >= 0, got {grace!r}")
        self._ending = True
        deadline = trio.current_time() + grace
        if self._nursery is not None:
            self._nursery.start_soon(self._end_roots, reason, deadline)
        return Finished(self._roots_done)

    async def _end_roots(self, reason: str | None, deadline: float) -> None:
        supervisor = self._root_supervisor
        if supervisor is None:
            return
        for key in reversed(supervisor.supervised):
            actor = self._actors.get(actor_name_of(key))
            if actor is not None and actor._parent is None:
                actor.end(reason, grace=max(0.0, deadline - trio.current_time()))
            # Stopping through the supervisor, so that no root is restarted.
            with contextlib.suppress(KeyError):
                await supervisor.stop_child(key)
        self._check_roots_done()

    def _roots(self) -> list[Actor]:
        return [actor for actor in self._actors.values() if actor._parent is None]

    def cancel(self) -> Finished:
        """Stop every actor at once; none is restarted.

        Returns:
            An awaitable that completes when every root actor has ended.
        """
        self._ending = True
        if self._root_supervisor is not None:
            self._root_supervisor.cancel()
        for actor in reversed(self._roots()):
            actor.cancel()
        return Finished(self._roots_done)

    def _check_roots_done(self) -> None:
        """Set or clear the event `wait()` waits on, from what the root still looks after."""
        supervisor = self._root_supervisor
        looked_after = supervisor is not None and not supervisor.closed and supervisor.supervised
        if self._spawning or looked_after or self._roots():
            if self._roots_done.is_set():
                self._roots_done = trio.Event()
        else:
            self._roots_done.set()

    # --- bridges -----------------------------------------------------------------------------

    def open_bridge(
        self, name: str, *, capacity: int = 1024
    ) -> AbstractAsyncContextManager[Bridge]:
        """Open bridge `name`: a frame stream that follows the active bridged actor.

        ``async with system.open_bridge("voice") as bridge:`` then ``await bridge.send(frame)``
        and ``await bridge.receive()``.

        Args:
            name: the bridge's name; unique across the systems on the transport.
            capacity: most inbound frames queued before `Bridge.send` waits.

        Raises:
            NameTaken: if the bridge is already open somewhere on the transport.
            ValueError: if `capacity` is not positive.

        Cancellation: entering and leaving are checkpoints; leaving closes the bridge.
        """
        return serve_bridge(self, name, capacity)

    # --- routing -----------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def _next_job_id(self) -> str:
        # Unique across systems: a random per-system prefix and a counter (cheaper than uuid4).
        return f"{self._job_prefix}{next(self._job_ids):x}"

    async def _send(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        job_id: str | None = None,
        urgent: bool = False,
        deadline: float | None = None,
        missing_ok: bool = False,
        eager: bool = False,
    ) -> None:
        envelope = Envelope(
            id=self._next_id(),
            sender=sender,
            recipient=recipient,
            body=body,
            job_id=job_id,
            urgent=urgent,
            deadline=deadline,
        )
        roundtripped = False
        if eager:
            pending = self._deliver_nowait(envelope)
            if pending is None:
                return
            envelope, roundtripped = pending, pending is not envelope
        try:
            await self._deliver(envelope, roundtripped=roundtripped)
        except ActorNotFound:
            if not missing_ok:
                raise

    def _deliver_nowait(self, envelope: Envelope) -> Envelope | None:
        """Deliver to a local recipient at once if that needs no waiting.

        Returns None when delivered, else the envelope to deliver the waiting way (already
        through the codec in strict mode, so it is not encoded twice). The runtime's own job
        traffic uses it (``eager=True``) so that a request or an answer costs no extra trip
        through the scheduler; the caller checkpoints elsewhere.
        """
        recipient = envelope.recipient
        mailbox = self._mailboxes.get(recipient or "")
        if mailbox is None and recipient != self.address:
            return envelope
        if self._strict:
            envelope = self.codec.roundtrip(envelope)
        body_type = type(envelope.body)
        if body_type in _INTERCEPTED and self._intercept(envelope):
            return None
        if mailbox is None:
            return envelope
        if body_type is JobRequestMessage and self._start_job_at_once(envelope):
            return None
        try:
            mailbox.send_nowait(envelope, urgent=envelope.urgent)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return envelope
        return None

    async def _deliver(self, envelope: Envelope, *, roundtripped: bool = False) -> None:
        recipient = envelope.recipient
        assert recipient is not None
        mailbox = self._mailboxes.get(recipient)
        if mailbox is not None or recipient == self.address:
            if self._strict and not roundtripped:
                envelope = self.codec.roundtrip(envelope)
            if type(envelope.body) in _INTERCEPTED and self._intercept(envelope):
                await trio.lowlevel.checkpoint()
                return
            if mailbox is None:
                raise ActorNotFound(recipient, self.registry.names())
            if type(envelope.body) is JobRequestMessage and self._start_job_at_once(envelope):
                await trio.lowlevel.checkpoint()
                return
            try:
                await mailbox.send(envelope, urgent=envelope.urgent)
            except trio.ClosedResourceError:
                raise ActorNotFound(recipient, self.registry.names()) from None
            return
        link = self._require_link()
        packet = envelope if link.carries_objects else self.codec.encode(envelope)
        try:
            await link.send(recipient, packet)
        except UnknownRecipient:
            raise ActorNotFound(recipient, self.registry.names()) from None

    def _intercept(self, envelope: Envelope) -> bool:
        """Handle job answers and job control on delivery, ahead of mailboxes.

        Returns False when the envelope should go to the recipient's mailbox after all.
        """
        recipient = envelope.recipient
        if isinstance(envelope.body, REPLY_TYPES):
            requester: JobRequesterMixin | None = (
                self if recipient == self.address else self._actors.get(recipient or "")
            )
            return requester is None or requester._take_reply(envelope)
        worker = self._actors.get(recipient or "")
        if worker is not None:
            worker._take_control(envelope)
        return True

    def _start_job_at_once(self, envelope: Envelope) -> bool:
        worker = self._actors.get(envelope.recipient or "")
        return worker is not None and worker._start_job_at_once(envelope)

    def _post_control(self, sender: str, recipient: str, body: Any, job_id: str) -> None:
        """Send job control (credits) from synchronous code; never blocks the caller."""
        envelope = Envelope(
            id=self._next_id(), sender=sender, recipient=recipient, body=body, job_id=job_id
        )
        if recipient in self._actors:
            self._actors[recipient]._take_control(envelope)
        elif self._nursery is not None:
            self._nursery.start_soon(self._deliver_quietly, envelope)

    async def _deliver_quietly(self, envelope: Envelope) -> None:
        with contextlib.suppress(ActorNotFound):
            await self._deliver(envelope)

    def _post(self, actor: Actor, body: SystemMessage) -> None:
        """Queue a local notice for `actor` from a synchronous callback; never blocks."""
        envelope = Envelope(id=self._next_id(), sender=self._name, recipient=actor.name, body=body)
        self._post_envelope(actor, envelope)

    def _post_envelope(self, target: object, envelope: Envelope) -> None:
        """Queue `envelope` in local actor `target`'s mailbox without blocking."""
        if not isinstance(target, Actor):
            return
        actor = target
        mailbox = self._mailboxes.get(actor.name)
        if mailbox is None or mailbox.closed:
            return
        try:
            mailbox.send_nowait(envelope, urgent=True)
        except trio.WouldBlock:
            if actor._nursery is not None:
                actor._nursery.start_soon(self._post_later, mailbox, envelope)

    @staticmethod
    async def _post_later(mailbox: Mailbox[Envelope], envelope: Envelope) -> None:
        with contextlib.suppress(trio.ClosedResourceError):
            await mailbox.send(envelope, urgent=True)

    async def _broadcast(self, body: Any, *, sender: str, urgent: bool = False) -> None:
        """Send `body` to every local actor and every peer system."""
        envelope = Envelope(
            id=self._next_id(), sender=sender, recipient=None, body=body, urgent=urgent
        )
        if self._strict:
            envelope = self.codec.roundtrip(envelope)
        await self._broadcast_local(envelope)
        await self._broadcast_remote_envelope(envelope)

    async def _broadcast_remote(self, body: SystemMessage) -> None:
        envelope = Envelope(id=self._next_id(), sender=self._name, recipient=None, body=body)
        await self._broadcast_remote_envelope(envelope)

    async def _broadcast_remote_envelope(self, envelope: Envelope) -> None:
        link = self._link
        if link is None:
            return
        packet = envelope if link.carries_objects else self.codec.encode(envelope)
        await link.broadcast(packet)

    async def _broadcast_local(self, envelope: Envelope) -> None:
        urgent = envelope.urgent or isinstance(envelope.body, AgentError)
        for name in list(self._actors):
            mailbox = self._mailboxes.get(name)
            if name == envelope.sender or mailbox is None:
                continue
            with contextlib.suppress(trio.ClosedResourceError):
                await mailbox.send(msgspec.structs.replace(envelope, recipient=name), urgent=urgent)

    def _check_user_message(self, message: object) -> None:
        if not isinstance(message, msgspec.Struct) or isinstance(message, SystemMessage):
            raise TypeError(
                f"a message must be a user-defined msgspec.Struct, got {type(message).__name__!r}"
            )
        if not message.__struct_config__.frozen:
            raise TypeError(
                f"messages are immutable: declare {type(message).__name__} with "
                "msgspec.Struct(frozen=True)"
            )

    # --- registration ------------------------------------------------------------------------

    def _require_link(self) -> TransportLink:
        if self._link is None:
            raise ActorStateError(f"actor system {self._name!r} is not running")
        return self._link

    async def _claim(self, name: str) -> None:
        if name in self._mailboxes:
            raise NameTaken(name, self._name)
        try:
            await self._require_link().claim(name)
        except NameClaimed as exc:
            raise NameTaken(name, exc.owner) from None

    async def _release(self, name: str) -> None:
        if self._link is not None:
            await self._link.release(name)

    async def _register_local(self, actor: Actor, mailbox: Mailbox[Envelope]) -> None:
        await self._claim(actor.name)
        self._mailboxes[actor.name] = mailbox
        self._actors[actor.name] = actor

    async def _announce_ready(self, actor: Actor) -> None:
        info = actor.info
        self.registry.add(info)
        if actor._parent is not None:
            self._post(actor._parent, AgentReady(info=info))
        await self._broadcast_remote(AgentReady(info=info))

    async def _unregister_local(self, actor: Actor, *, crashed: bool) -> None:
        name = actor.name
        if self._actors.get(name) is not actor:
            return
        del self._actors[name]
        self._mailboxes.pop(name, None)
        self._job_parties.discard(actor)
        info = self.registry.remove(name, system=self._name)
        self._on_agent_gone(name, crashed=crashed)
        try:
            await self._release(name)
            if info is not None:
                await self._broadcast_remote(
                    AgentGone(name=name, system=self._name, crashed=crashed)
                )
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        if actor._parent is None:
            self._check_roots_done()

    # --- the transport side ------------------------------------------------------------------

    async def _receive_loop(self, link: TransportLink) -> None:
        while True:
            try:
                item = await link.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            if isinstance(item, PeerLost):
                self._on_peer_lost(item.system, crashed=item.crashed)
                continue
            try:
                envelope = (
                    item.packet
                    if link.carries_objects and isinstance(item.packet, Envelope)
                    else self.codec.decode(_as_bytes(item.packet))
                )
            except Exception as exc:
                self._decode_errors += 1
                logger.warning("system %r dropped an undecodable packet: %s", self._name, exc)
                await link.ack(item)
                continue
            if envelope.recipient is None:
                await self._on_broadcast(envelope)
                await link.ack(item)
                continue
            if (
                type(envelope.body) in _INTERCEPTED
                and (envelope.recipient == self.address or envelope.recipient in self._actors)
                and self._intercept(envelope)
            ):
                await link.ack(item)
                continue
            mailbox = self._mailboxes.get(envelope.recipient)
            if mailbox is None:
                self._undeliverable += 1
                await self._on_undeliverable(envelope)
                await link.ack(item)
                continue
            if item.token is not None:
                self._pending_acks[envelope.id] = item
            try:
                await mailbox.send(envelope, urgent=envelope.urgent)
            except trio.ClosedResourceError:
                self._undeliverable += 1
                await self._on_undeliverable(envelope)

    async def _ack(self, envelope: Envelope) -> None:
        delivery = self._pending_acks.pop(envelope.id, None)
        if delivery is not None and self._link is not None:
            await self._link.ack(delivery)

    async def _on_broadcast(self, envelope: Envelope) -> None:
        body = envelope.body
        if isinstance(body, AgentReady):
            if body.info.system != self._name:
                self.registry.add(body.info)
        elif isinstance(body, AgentGone):
            if self.registry.remove(body.name, system=body.system) is not None:
                self._on_agent_gone(body.name, crashed=body.crashed)
        elif isinstance(body, AgentActivation):
            self.registry.set_active(body.name, body.active)
        elif isinstance(body, RegistryQuery):
            for actor in list(self._actors.values()):
                if actor._ready:
                    await self._broadcast_remote(AgentReady(info=actor.info))
        elif isinstance(body, SystemGone):
            self._on_peer_lost(body.system, crashed=body.crashed)
        else:
            await self._broadcast_local(envelope)

    def _on_peer_lost(self, system: str, *, crashed: bool) -> None:
        for info in self.registry.on_system(system):
            self.registry.remove(info.name, system=system)
            self._on_agent_gone(info.name, crashed=crashed)
        # The lost system was a requester too: work it asked of our actors is orphaned.
        for actor in self._parties_with_jobs():
            actor._requester_gone_for_worker(f"system:{system}")
        logger.info("system %r lost peer %r (crashed: %s)", self._name, system, crashed)

    def _on_agent_gone(self, name: str, *, crashed: bool) -> None:
        """An actor (local or remote) is gone: end what every local requester waits on it for,
        and cancel what it asked of local workers."""
        self._worker_gone(name, crashed=crashed)
        for party in self._parties_with_jobs():
            party._worker_gone(name, crashed=crashed)

    def _parties_with_jobs(self) -> list[Actor]:
        # Only actors that requested or hold jobs can be affected when another actor goes;
        # visiting every actor instead would make a shutdown of n actors cost n squared.
        parties = []
        for actor in list(self._job_parties):
            if actor._requests or actor._held:
                parties.append(actor)
            else:
                self._job_parties.discard(actor)
        return parties

    async def _on_undeliverable(self, envelope: Envelope) -> None:
        logger.debug("system %r: no local actor %r; dropped", self._name, envelope.recipient)
        await self._answer_undeliverable(envelope)


_INTERCEPTED = frozenset({*REPLY_TYPES, JobCancel, JobCredit})


def _as_bytes(packet: object) -> bytes:
    if isinstance(packet, bytes | bytearray | memoryview):
        return bytes(packet)
    raise TypeError(f"expected bytes from the transport, got {type(packet).__name__!r}")


@asynccontextmanager
async def open_actor_system(
    name: str = "system",
    *,
    transport: Transport | None = None,
    max_message_size: int | None = None,
    grace: float = 0.0,
) -> AsyncIterator[ActorSystem]:
    """Open an actor system: the root nursery that every actor of this process lives in.

    Args:
        name: the system's name, unique among the systems on the transport.
        transport: how envelopes reach other systems (default: a private `MemoryTransport`).
        max_message_size: largest envelope in bytes the codec accepts (default 4 MiB).
        grace: seconds in-flight work gets when the block is left (default 0: cancel at once).

    Raises:
        SystemNameTaken: if another system on the transport has this name.
        ExceptionGroup: errors from the block and from the system's own tasks, as Trio's
            strict nurseries report them.

    Cancellation: entering connects to the transport; leaving stops every actor in reverse
    start order (each answering its in-flight jobs CANCELLED) and disconnects.
    """
    if grace < 0 or math.isnan(grace):
        raise ValueError(f"grace must be >= 0, got {grace!r}")
    transport = transport if transport is not None else MemoryTransport()
    codec = (
        EnvelopeCodec() if max_message_size is None else EnvelopeCodec(max_size=max_message_size)
    )
    system = ActorSystem(name, transport, codec)
    async with transport.connect(name) as link:
        system._link = link
        system._strict = not link.carries_objects
        try:
            await link.claim(system.address)
            async with trio.open_nursery() as nursery:
                system._nursery = nursery
                nursery.start_soon(system._receive_loop, link)
                await system._broadcast_remote(RegistryQuery(system=name))
                async with open_supervisor(on_exit=exit_reporter(system, None)) as root:
                    system._root_supervisor = root
                    try:
                        yield system
                    finally:
                        with trio.CancelScope(shield=True):
                            await system._cancel_requests("actor system closing")
                            system.end("actor system closing", grace=grace)
                            await system.wait()
                system._root_supervisor = None
                nursery.cancel_scope.cancel(reason="actor system closed")
        finally:
            system._link = None
            system._ended.set()
