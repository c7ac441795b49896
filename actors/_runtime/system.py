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
import functools
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar, overload

import msgspec
import trio

from supervision import Restart, open_supervisor
from transports import MemoryTransport, PeerLost, Transport, TransportLink

from .._bridges.endpoint import Bridge, serve_bridge
from .._exceptions import ActorStateError
from .._jobs.facade import JobRequesterAPI
from .._jobs.requester import Requester
from .._routing.inbound import serve_inbound
from .._routing.mailbox import Mailbox
from .._routing.registry import Registry
from .._routing.router import DEFAULT_SLOW_SEND_WARNING, Endpoint, Router
from .._wire.codec import EnvelopeCodec
from .._wire.envelope import (
    REPLY_TYPES,
    Activate,
    AgentError,
    AgentGone,
    AgentReady,
    Deactivate,
    Envelope,
    RegistryQuery,
    SystemMessage,
)
from .actor import Actor
from .finished import DEFAULT_GRACE, Finished
from .instance import (
    ActorSpec,
    actor_name_of,
    child_spec,
    exit_reporter,
    start_child,
    start_supervised,
)
from .links import attach_link
from .outcome import unwrapped_errors
from .peers import PeerNews
from .statistics import SystemStatistics

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=Actor)


class ActorSystem(JobRequesterAPI):
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
        self._router = Router(name, codec, self.registry)
        self._requester = Requester(self._router, self._router.address, self)
        self._actors: dict[str, Actor] = {}
        self._peers = PeerNews(
            name,
            self._router,
            self._requester,
            self._actors,
            nursery=lambda: self._nursery,
            broadcast_locally=self._broadcast_local_nowait,
        )
        self._router.lost_handler = functools.partial(self._peers.on_undeliverable, reclaimed=False)
        self._endpoints: dict[str, Endpoint] = {}
        self._roots_announced: set[str] = set()
        self._root_actors: dict[str, Actor] = {}
        """Live root actors by name, in start order (kept so no walk of every actor is needed)."""
        self._root_listeners: dict[str, Actor] = {}
        """Root actors that override `on_agent_ready`: only they hear of other roots."""
        self._root_supervisor: Any = None
        self._spawning = 0
        self._roots_done = trio.Event()
        self._roots_done.set()
        self._ending = False
        self._closed = False
        self._nursery: trio.Nursery | None = None

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

    @property
    def slow_send_warning(self) -> float:
        """Seconds a send waits for room in a full local mailbox before a warning is logged."""
        return self._router.slow_send_warning

    @property
    def strict(self) -> bool:
        """Whether every envelope, local ones included, round-trips through the codec."""
        return self._router.strict

    def _job_requester(self) -> Requester:
        return self._requester

    @property
    def actors(self) -> dict[str, Actor]:
        """The live local actors by name."""
        return dict(self._actors)

    def statistics(self) -> SystemStatistics:
        """Return the system's counters."""
        counters = self._router.counters
        requesters = [self._requester] + [
            actor._requester for actor in self._actors.values() if actor._requester is not None
        ]
        workers = [actor._worker for actor in self._actors.values() if actor._worker is not None]
        # Tombstones expire with time, with or without traffic: count those alive now.
        now = trio.current_time()
        return SystemStatistics(
            local_actors=len(self._actors),
            known_actors=len(self.registry.names()),
            decode_errors=counters.decode_errors,
            undeliverable=counters.undeliverable,
            duplicates=counters.duplicates,
            hostile=counters.hostile + sum(worker.table.tombstones_refused for worker in workers),
            dead_letters=counters.dead_letters,
            jobs_requested=sum(len(requester.jobs) for requester in requesters),
            jobs_held=sum(len(worker.table.held) for worker in workers),
            tombstones=sum(worker.table.tombstones_at(now) for worker in workers),
            unacknowledged=self._router.unacknowledged,
            blocked_senders=self._router.blocked_senders,
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
        return list(self._root_actors.values())

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

    async def _close(self, grace: float) -> None:
        """Leave the system block: end (or, when cancelled from outside, cancel) every actor,
        bounded in time whatever the actors do."""
        self._requester.close(f"actor system {self._name!r} is closing")
        cancelled = False
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except trio.Cancelled:
            cancelled = True
        with trio.CancelScope(shield=True):
            if cancelled:
                self.cancel()
            else:
                self.end(f"actor system {self._name!r} closing", grace=grace)
            with trio.move_on_after(grace + _EXIT_BOUND):
                await self.wait()
            if not self._roots_done.is_set():
                logger.warning(
                    "actor system %r: actors did not end within %ss; cancelling them",
                    self._name,
                    grace + _EXIT_BOUND,
                )
                self.cancel()
                with trio.move_on_after(_EXIT_BOUND):
                    await self.wait()

    def _check_roots_done(self) -> None:
        """Set or clear the event `wait()` waits on, from what the root still looks after."""
        supervisor = self._root_supervisor
        looked_after = supervisor is not None and not supervisor.closed and supervisor.supervised
        if self._spawning or looked_after or self._root_actors:
            if self._roots_done.is_set():
                self._roots_done = trio.Event()
        else:
            self._roots_done.set()

    # --- activation ----------------------------------------------------------------------------

    async def activate_agent(self, name: str, *, args: Any = None, redeliver: bool = False) -> None:
        """Ask actor `name` (local or remote) to become active, as `Actor.activate_agent` does.

        Plain code (a test, a bridge's owner) can start a conversation without an actor.

        Raises:
            ActorNotFound: if no live actor has that name.
        """
        await self._send(self.address, name, Activate(args=args, redeliver=redeliver))

    async def deactivate_agent(self, name: str) -> None:
        """Ask actor `name` to become inactive (a no-op if it already is).

        Raises:
            ActorNotFound: if no live actor has that name.
        """
        await self._send(self.address, name, Deactivate())

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
        return serve_bridge(self._router, name, capacity)

    # --- point-to-point links ----------------------------------------------------------------

    def attach_link(
        self,
        link: TransportLink,
        *,
        exports: Sequence[str] = (),
        imports: Sequence[str] = (),
        scope: str | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Join this system to the peer at the other end of a point-to-point `link`.

        `transports.serve_websocket_link` and `transports.open_websocket_link` call it for
        each connection. While the block runs, `exports` (local names) may be addressed by
        the peer and `imports` (the peer's names) by this system; nothing else crosses, and
        broadcasts never do. See `actors._runtime.links` for the rules.

        Args:
            link: the link; it must name its `peer_system` and `peer_exports`.
            exports: local actor (or ``bridge:<name>``) names the peer may address.
            imports: the peer's names this system may address.
            scope: a session id: exported and imported names are then local names under
                ``<scope>/``, and the session's root actors end with the block.

        Cancellation: leaving reports the peer's actors gone (their jobs end FAILED).
        """
        return attach_link(self, self._router, link, exports=exports, imports=imports, scope=scope)

    # --- routing (the router does the work) ---------------------------------------------------

    def _next_id(self) -> str:
        return self._router.next_id()

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
    ) -> None:
        envelope = self._router.envelope(
            sender, recipient, body, job_id=job_id, urgent=urgent, deadline=deadline
        )
        await self._router.send(envelope, missing_ok=missing_ok)

    def _post(self, actor: Actor, body: SystemMessage) -> None:
        """Queue a local notice for `actor` from a synchronous callback; never blocks."""
        self._router.post(self._router.envelope(self._name, actor.name, body, urgent=True))

    async def _broadcast(self, body: Any, *, sender: str, urgent: bool = False) -> None:
        """Send `body` to every local actor (but the sender) and every peer system."""
        envelope = self._router.envelope(sender, None, body, urgent=urgent)
        if self._router.strict:
            envelope = self.codec.roundtrip(envelope)
        await self._broadcast_local(envelope)
        await self._router.broadcast(envelope)

    async def _broadcast_remote(self, body: SystemMessage) -> None:
        await self._router.broadcast(self._router.envelope(self._name, None, body))

    async def _broadcast_local(self, envelope: Envelope) -> None:
        urgent = envelope.urgent or isinstance(envelope.body, AgentError)
        for name, actor in list(self._actors.items()):
            if name == envelope.sender or actor._mailbox is None:
                continue
            with contextlib.suppress(trio.ClosedResourceError):
                await actor._mailbox.send(self._router.relabel(envelope, name), urgent=urgent)

    def _broadcast_local_nowait(self, envelope: Envelope) -> None:
        for name in list(self._actors):
            if name != envelope.sender:
                self._router.post(self._router.relabel(envelope, name))

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

    def _count_bad_frame(self) -> None:
        self._router.counters.hostile += 1

    # --- registration ------------------------------------------------------------------------

    async def _register_local(self, actor: Actor, mailbox: Mailbox[Envelope]) -> None:
        requester = actor._requester
        worker = actor._worker
        assert requester is not None and worker is not None

        def on_control(envelope: Envelope) -> None:
            if type(envelope.body) in REPLY_TYPES:
                requester.take_reply(envelope)
            else:
                worker.take_control(envelope)

        def on_request(envelope: Envelope) -> bool:
            return worker.start_at_once(envelope, idle=mailbox.receiver_waiting)

        endpoint = Endpoint(actor.name, mailbox, on_control, on_request)
        await self._router.claim(endpoint)
        self._endpoints[actor.name] = endpoint
        self._actors[actor.name] = actor
        if actor._parent is None:
            self._root_actors[actor.name] = actor
        logger.debug("actor %r spawned (system %r)", actor.name, self._name)

    async def _start_child(
        self, parent: Actor, actor: Actor | ActorSpec, restart: Restart | None
    ) -> Actor:
        return await start_child(parent, actor, restart)

    async def _announce_ready(self, actor: Actor) -> None:
        info = actor.info
        self.registry.add(info)
        if actor._parent is not None:
            self._post(actor._parent, AgentReady(info=info))
        elif actor.name not in self._roots_announced:
            # Root actors hear of each other, as pipecat's local root agents do. Only roots
            # that override on_agent_ready are told: the base hook does nothing, and telling
            # every root of every other would make spawning n roots cost n squared.
            self._roots_announced.add(actor.name)
            for listener in list(self._root_listeners.values()):
                if listener is not actor and listener._ready:
                    self._post(listener, AgentReady(info=info))
            if type(actor).on_agent_ready is not Actor.on_agent_ready:
                self._root_listeners[actor.name] = actor
                for other in self._roots():
                    if other is not actor and other._ready:
                        self._post(actor, AgentReady(info=other.info))
        await self._broadcast_remote(AgentReady(info=info))

    async def _unregister_local(self, actor: Actor, *, crashed: bool) -> None:
        name = actor.name
        if self._actors.get(name) is not actor:
            return
        del self._actors[name]
        self._peers.job_parties.discard(actor)
        self._root_actors.pop(name, None)
        self._root_listeners.pop(name, None)
        self._roots_announced.discard(name)
        endpoint = self._endpoints.pop(name)
        info = self.registry.remove(name, system=self._name)
        restarting = self.registry.restarting(name)
        self._peers.on_agent_gone(name, crashed=crashed, restarting=restarting)
        with trio.CancelScope(shield=True):
            await self._router.release(endpoint)
            if info is not None:
                with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                    await self._broadcast_remote(
                        AgentGone(
                            name=name, system=self._name, crashed=crashed, restarting=restarting
                        )
                    )
        if actor._parent is None:
            self._check_roots_done()

    # --- what the inbound path hands over (InboundHandler), kept by `PeerNews` ---------------

    def on_broadcast(self, envelope: Envelope) -> None:
        """A broadcast from a peer arrived (see `PeerNews.on_broadcast`)."""
        self._peers.on_broadcast(envelope)

    def on_peer_lost(self, notice: PeerLost) -> None:
        """The transport says a peer system ended or vanished."""
        self._peers.on_peer_lost(notice)

    def on_undeliverable(self, envelope: Envelope, *, reclaimed: bool) -> None:
        """Answer what arrived for nobody (see `PeerNews.on_undeliverable`)."""
        self._peers.on_undeliverable(envelope, reclaimed=reclaimed)

    def hold_for_restart(self, name: str, requests: list[Envelope]) -> None:
        """Keep requests an ended instance never started for its next instance."""
        self._peers.hold_for_restart(name, requests)


_EXIT_BOUND = 5.0
"""Seconds leaving the system block waits for actors beyond the grace period, then cancels."""


@asynccontextmanager
async def open_actor_system(
    name: str = "system",
    *,
    transport: Transport | None = None,
    max_message_size: int | None = None,
    max_message_items: int | None = None,
    grace: float = 0.0,
    slow_send_warning: float = DEFAULT_SLOW_SEND_WARNING,
) -> AsyncIterator[ActorSystem]:
    """Open an actor system: the root nursery that every actor of this process lives in.

    Args:
        name: the system's name, unique among the systems on the transport.
        transport: how envelopes reach other systems (default: a private strict
            `MemoryTransport`, so that local equals remote; pass ``MemoryTransport()`` with
            ``strict=False`` to share objects on measured hot paths).
        max_message_size: largest envelope in bytes the codec accepts (default 4 MiB).
        max_message_items: most msgpack values (arrays, maps, keys, scalars) one decoded
            envelope may hold (default 100,000), so that a small packet cannot decode into
            millions of objects.
        grace: seconds in-flight work gets when the block is left (default 0: cancel at once).
        slow_send_warning: seconds a send may wait for room in a full local mailbox before a
            warning names the sender and the recipient (two actors sending into each other's
            full mailboxes wait for ever; default 5).

    Raises:
        SystemNameTaken: if another system on the transport has this name.
        Exception: an exception raised in the block comes out as itself; errors of the
            runtime's own tasks too, or one flat `ExceptionGroup` when there are several.

    Cancellation: entering connects to the transport; leaving stops every actor in reverse
    start order (each answering its in-flight jobs CANCELLED) and disconnects. If the block is
    cancelled from outside, every actor is cancelled at once and the block is left promptly.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if isinstance(grace, bool) or not isinstance(grace, int | float):
        raise TypeError(f"grace must be a number of seconds, got {grace!r}")
    if grace < 0 or math.isnan(grace):
        raise ValueError(f"grace must be >= 0, got {grace!r}")
    if isinstance(slow_send_warning, bool) or not isinstance(slow_send_warning, int | float):
        raise TypeError(f"slow_send_warning must be a number of seconds, got {slow_send_warning!r}")
    if not slow_send_warning > 0:
        raise ValueError(f"slow_send_warning must be > 0, got {slow_send_warning!r}")
    transport = transport if transport is not None else MemoryTransport(strict=True)
    limits: dict[str, int] = {}
    if max_message_size is not None:
        limits["max_size"] = max_message_size
    if max_message_items is not None:
        limits["max_items"] = max_message_items
    codec = EnvelopeCodec(**limits)
    system = ActorSystem(name, transport, codec)
    router = system._router
    router.slow_send_warning = float(slow_send_warning)
    async with transport.connect(name) as link:
        try:
            async with unwrapped_errors(f"actor system {name!r}"), trio.open_nursery() as nursery:
                system._nursery = nursery
                system._requester.nursery = nursery
                await nursery.start(router.serve, link)
                await router.claim(
                    Endpoint(router.address, None, on_control=system._requester.take_reply)
                )
                await nursery.start(serve_inbound, router, link, system)
                await system._broadcast_remote(RegistryQuery(system=name))
                logger.debug("actor system %r open", name)
                async with open_supervisor(on_exit=exit_reporter(system, None)) as root:
                    system._root_supervisor = root
                    try:
                        yield system
                    finally:
                        await system._close(grace)
                system._root_supervisor = None
                nursery.cancel_scope.cancel(reason="actor system closed")
        finally:
            system._closed = True
            router.link = None
            logger.debug("actor system %r closed", name)
