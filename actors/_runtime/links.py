"""Attaching a point-to-point link (the WebSocket link) to an actor system.

Theory of operation
-------------------
A point-to-point link joins this system to one peer system without a shared bus. Each side
declares the local names it *exports* (the peer may address them) and the peer's names it
*imports* (this side may address them). `attach_link` puts a `_Gate` between the link and the
system's router, and everything that crosses goes through it.

Rule 1: only addressed traffic between an exported and an imported name crosses. Outbound,
the router sends to a name through the gate only if it is an imported name (or the peer
system's own address, for its jobs' answers: `Router.routes`), and the gate refuses it unless
its sender is an exported name or this system. Inbound, the gate accepts an envelope only if it
is addressed to an exported name (or this system's address) and its sender is a name the
peer's hello exported (or the peer system's address); anything else is dropped, counted as
hostile and logged. A forged sender never reaches an actor.

Rule 2: broadcasts never cross. This system's broadcasts (registry, lifecycle, user
broadcasts) go to its primary transport only. The gate itself announces the exported actors to
the peer (`AgentReady`/`AgentGone`, when attached and as they change), and accepts from the
peer only such announcements about names it exports and this side imports; they enter the
registry with the peer system as their owner, so `watch_agent`, `on_agent_ready` and jobs work
as for local actors.

Rule 3: a peer can stop nothing of ours but the jobs it requested: a cancel from another
sender than the job's requester is dropped by the worker (`Worker.take_control`), and no
message a peer can send ends an actor or the system.

Rule 4: when the link ends, the peer system is lost: its imported actors are reported gone
(crashed unless the peer said goodbye), so every job in flight across the link ends at once,
and the work it asked of our actors is cancelled.

Rule 5 (sessions): with a `scope` (a server connection's session id), the exported and
imported names are local names under ``<scope>/`` (``s1/assistant``, bridge ``bridge:s1/voice``),
and the peer system goes by ``<scope>/<peer>``; on the wire they are the plain names, rewritten
in both directions. Two sessions can each have an ``assistant``, and neither sees the other's
actors. When the block ends, the session's root actors are cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import msgspec
import trio

from transports import Delivery, PeerLost, TransportLink, UnknownRecipient

from .._exceptions import ActorStateError
from .._routing.inbound import serve_inbound
from .._routing.router import Router
from .._wire.envelope import (
    AgentActivation,
    AgentGone,
    AgentInfo,
    AgentReady,
    BridgeAck,
    BridgeFrame,
    Envelope,
)

if TYPE_CHECKING:
    from .system import ActorSystem

logger = logging.getLogger(__name__)

_BRIDGE = "bridge:"
_SYSTEM = "system:"
_LOGGED_REFUSALS = 10
"""Refused envelopes logged one by one per link; after that, one in a thousand."""
_SESSION_EXIT_BOUND = 5.0
"""Seconds a session's actors get to end once their connection has closed."""


def _scoped(prefix: str, name: str) -> str:
    if not prefix:
        return name
    if name.startswith(_BRIDGE):
        return _BRIDGE + prefix + name[len(_BRIDGE) :]
    return prefix + name


def _unscoped(prefix: str, name: str) -> str | None:
    """The wire name of local `name`, or None if it is not under `prefix`."""
    if not prefix:
        return name
    if name.startswith(_BRIDGE):
        rest = name[len(_BRIDGE) :]
        return _BRIDGE + rest[len(prefix) :] if rest.startswith(prefix) else None
    return name[len(prefix) :] if name.startswith(prefix) else None


@attrs.frozen
class _Names:
    """Who may speak to whom across one link, and how names map between local and wire."""

    system: str
    prefix: str
    peer: str
    peer_alias: str
    exports: frozenset[str]
    imports: frozenset[str]
    peer_exports: frozenset[str]

    @property
    def own_address(self) -> str:
        return _SYSTEM + self.system

    @property
    def peer_address(self) -> str:
        return _SYSTEM + self.peer_alias

    def routed(self) -> list[str]:
        """Local names the router sends through this link."""
        return [_scoped(self.prefix, name) for name in self.imports] + [self.peer_address]

    def inbound(self, envelope: Envelope) -> Envelope | str:
        """The local form of a peer's addressed envelope, or why it is refused."""
        recipient, sender = envelope.recipient or "", envelope.sender
        if recipient == self.own_address:
            local_recipient = recipient
        elif recipient in self.exports:
            local_recipient = _scoped(self.prefix, recipient)
        else:
            return f"addressed to {recipient!r}, which this side does not export"
        if sender == _SYSTEM + self.peer:
            local_sender = self.peer_address
        elif sender in self.peer_exports:
            local_sender = _scoped(self.prefix, sender)
        else:
            return f"from {sender!r}, which the peer does not export"
        body = envelope.body
        if isinstance(body, BridgeFrame | BridgeAck) and self.prefix:
            body = msgspec.structs.replace(body, bridge=self.prefix + body.bridge)
        return msgspec.structs.replace(
            envelope, recipient=local_recipient, sender=local_sender, body=body
        )

    def outbound(self, envelope: Envelope) -> Envelope | str:
        """The wire form of a local envelope for the peer, or why it may not cross."""
        recipient = envelope.recipient or ""
        if recipient == self.peer_address:
            wire_recipient: str | None = _SYSTEM + self.peer
        else:
            wire_recipient = _unscoped(self.prefix, recipient)
            if wire_recipient not in self.imports:
                return f"{recipient!r} is not imported"
        sender = envelope.sender
        if sender == self.own_address:
            wire_sender: str | None = sender
        else:
            wire_sender = _unscoped(self.prefix, sender)
            if wire_sender not in self.exports:
                return f"its sender {sender!r} is not exported"
        body = envelope.body
        if isinstance(body, BridgeFrame | BridgeAck) and self.prefix:
            bridge = body.bridge
            if bridge.startswith(self.prefix):
                body = msgspec.structs.replace(body, bridge=bridge[len(self.prefix) :])
        assert wire_sender is not None
        return msgspec.structs.replace(
            envelope, recipient=wire_recipient, sender=wire_sender, body=body
        )

    def announcement(self, body: Any) -> Any | str:
        """The local form of a peer's registry broadcast, or why it is refused."""
        if isinstance(body, AgentReady):
            info = body.info
            verdict = self._about(info.name, info.system)
            if verdict is not None:
                return verdict
            bridged = info.bridged
            if bridged and self.prefix:
                bridged = tuple(self.prefix + bridge for bridge in bridged)
            return AgentReady(
                info=msgspec.structs.replace(
                    info,
                    name=_scoped(self.prefix, info.name),
                    system=self.peer_alias,
                    parent=None,
                    bridged=bridged,
                )
            )
        if isinstance(body, AgentGone):
            verdict = self._about(body.name, body.system)
            if verdict is not None:
                return verdict
            return msgspec.structs.replace(
                body, name=_scoped(self.prefix, body.name), system=self.peer_alias
            )
        if isinstance(body, AgentActivation):
            verdict = self._about(body.name, self.peer)
            if verdict is not None:
                return verdict
            return msgspec.structs.replace(body, name=_scoped(self.prefix, body.name))
        return f"a broadcast {type(body).__name__} may not cross a link"

    def _about(self, name: str, system: str) -> str | None:
        if system != self.peer:
            return f"the peer {self.peer!r} spoke for system {system!r}"
        if name not in self.peer_exports:
            return f"the peer announced {name!r}, which it does not export"
        if name not in self.imports:
            return ""  # not imported here: ignored, and not hostile
        return None

    def announce(self, info: AgentInfo) -> AgentReady | None:
        """The wire form of one of our exported actors' registry entry."""
        wire = _unscoped(self.prefix, info.name)
        if wire is None:
            return None
        bridged = info.bridged
        if bridged and self.prefix:
            bridged = tuple(
                b[len(self.prefix) :] if b.startswith(self.prefix) else b for b in bridged
            )
        return AgentReady(
            info=msgspec.structs.replace(info, name=wire, parent=None, bridged=bridged)
        )


class _Gate(TransportLink):
    """The system's view of a point-to-point link: filters and rewrites (Rules 1 and 2)."""

    carries_objects = True

    def __init__(self, link: TransportLink, names: _Names, router: Router) -> None:
        self.system = link.system
        self._link = link
        self._names = names
        self._router = router
        self._refused = 0

    def __repr__(self) -> str:
        return f"<_Gate [{self._names.system!r} <-> {self._names.peer_alias!r}]>"

    async def claim(self, name: str) -> None:
        await trio.lowlevel.checkpoint()

    async def release(self, name: str) -> None:
        await trio.lowlevel.checkpoint()

    async def send(
        self,
        recipient: str,
        packet: object,
        *,
        control: bool = False,
        ack: Delivery | None = None,
    ) -> None:
        assert isinstance(packet, Envelope)
        wire = self._names.outbound(packet)
        if isinstance(wire, str):
            self._router.counters.undeliverable += 1
            logger.warning(
                "system %r did not send a %s to %r across its link: %s",
                self._names.system,
                type(packet.body).__name__,
                recipient,
                wire,
            )
            raise UnknownRecipient(recipient)
        data = self._router.codec.encode(wire)
        try:
            await self._link.send(wire.recipient or "", data, control=control)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise UnknownRecipient(recipient) from None

    def announcement(self, body: Any) -> Envelope:
        """A broadcast envelope from this system carrying `body`."""
        return self._router.envelope(self._names.system, None, body)

    async def broadcast(self, packet: object) -> None:
        assert isinstance(packet, Envelope)
        data = self._router.codec.encode(packet)
        try:
            await self._link.broadcast(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.lowlevel.checkpoint()

    async def receive(self) -> Delivery | PeerLost:
        while True:
            item = await self._link.receive()
            if isinstance(item, PeerLost):
                return PeerLost(self._names.peer_alias, crashed=item.crashed, reason=item.reason)
            envelope = self._decode(item)
            if envelope is None:
                continue
            if envelope.recipient is None:
                body = self._names.announcement(envelope.body)
                if isinstance(body, str):
                    if body:
                        self._refuse(envelope, body)
                    continue
                local = msgspec.structs.replace(envelope, sender=self._names.peer_alias, body=body)
                return Delivery(None, local)
            if item.recipient != envelope.recipient:
                self._refuse(envelope, f"framed for {item.recipient!r}")
                continue
            accepted = self._names.inbound(envelope)
            if isinstance(accepted, str):
                self._refuse(envelope, accepted)
                continue
            return Delivery(accepted.recipient, accepted)

    def _decode(self, item: Delivery) -> Envelope | None:
        packet = item.packet
        try:
            assert isinstance(packet, bytes)
            return self._router.codec.decode(packet)
        except Exception as exc:
            self._router.counters.decode_errors += 1
            self._refused += 1
            if self._refused > _LOGGED_REFUSALS and self._refused % 1000:
                return None
            logger.warning(
                "system %r dropped an undecodable packet from %r: %s",
                self._names.system,
                self._names.peer_alias,
                exc,
            )
            return None

    def _refuse(self, envelope: Envelope, why: str) -> None:
        self._router.counters.hostile += 1
        self._refused += 1
        if self._refused > _LOGGED_REFUSALS and self._refused % 1000:
            return  # a hostile peer must not flood the log: the first few, then one in 1000
        logger.warning(
            "system %r dropped a %s from peer %r (sender %r, recipient %r): %s",
            self._names.system,
            type(envelope.body).__name__,
            self._names.peer_alias,
            envelope.sender,
            envelope.recipient,
            why,
        )


@attrs.define(eq=False)
class _Handler:
    """What the inbound path hands over from the gate (see `serve_inbound`)."""

    system: ActorSystem
    lost: bool = False

    def on_broadcast(self, envelope: Envelope) -> None:
        self.system.on_broadcast(envelope)

    def on_peer_lost(self, notice: PeerLost) -> None:
        self.lost = True
        self.system.on_peer_lost(notice)

    def on_undeliverable(self, envelope: Envelope, *, reclaimed: bool) -> None:
        self.system.on_undeliverable(envelope, reclaimed=reclaimed)


async def _announce_exports(system: ActorSystem, gate: _Gate, names: _Names) -> None:
    """Tell the peer about our exported actors: at once, and each time they change."""
    registry = system.registry
    announced: dict[str, AgentInfo] = {}
    while True:
        version = registry.version
        current: dict[str, AgentInfo] = {}
        for wire in names.exports:
            info = registry.get(_scoped(names.prefix, wire))
            if info is not None and info.system == system.name:
                current[wire] = info
        for wire, info in current.items():
            if announced.get(wire) != info:
                ready = names.announce(info)
                if ready is not None:
                    await gate.broadcast(gate.announcement(ready))
        for wire in announced.keys() - current.keys():
            await gate.broadcast(gate.announcement(AgentGone(name=wire, system=system.name)))
        announced = current
        await registry.wait_changed(version)


@asynccontextmanager
async def attach_link(
    system: ActorSystem,
    router: Router,
    link: TransportLink,
    *,
    exports: Sequence[str],
    imports: Sequence[str],
    scope: str | None = None,
) -> AsyncIterator[None]:
    """Route traffic between `system` and the peer at the other end of `link` (see the module
    docstring); the implementation of `ActorSystem.attach_link`."""
    peer = getattr(link, "peer_system", None)
    if not isinstance(peer, str) or not peer:
        raise TypeError(f"a point-to-point link must name its peer_system, got {peer!r}")
    prefix = f"{scope}/" if scope else ""
    names = _Names(
        system=system.name,
        prefix=prefix,
        peer=peer,
        peer_alias=prefix + peer,
        exports=frozenset(exports),
        imports=frozenset(imports),
        peer_exports=frozenset(getattr(link, "peer_exports", ())),
    )
    if names.peer_alias == system.name:
        raise ActorStateError(f"the peer of a link has this system's own name {peer!r}")
    routed = names.routed()
    taken = [name for name in routed if name in router.routes]
    if taken:
        raise ActorStateError(
            f"names {', '.join(map(repr, taken))} are already imported through another link"
        )
    gate = _Gate(link, names, router)
    handler = _Handler(system)
    for name in routed:
        router.routes[name] = gate
    logger.info("system %r linked to %r", system.name, names.peer_alias)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_inbound, router, gate, handler)
            nursery.start_soon(_announce_exports, system, gate, names)
            yield
            nursery.cancel_scope.cancel(reason="link detached")
    finally:
        for name in routed:
            if router.routes.get(name) is gate:
                del router.routes[name]
        if not handler.lost:
            system.on_peer_lost(PeerLost(names.peer_alias, crashed=True, reason="link detached"))
        if prefix:
            with trio.CancelScope(shield=True), trio.move_on_after(_SESSION_EXIT_BOUND):
                await _end_session(system, prefix)


async def _end_session(system: ActorSystem, prefix: str) -> None:
    """Cancel the session's root actors (those named under `prefix`) and wait for them."""
    session = [
        actor
        for name, actor in system.actors.items()
        if name.startswith(prefix) and actor.parent is None
    ]
    finished = [actor.cancel() for actor in session]
    for done in finished:
        await done
    await trio.lowlevel.checkpoint()
