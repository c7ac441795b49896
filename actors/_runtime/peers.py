"""PeerNews: what a system does with news from outside and with actors that go.

Theory of operation
-------------------
The inbound path (`actors._routing.inbound`) hands over what the router cannot route by itself:
broadcasts from peers, notices that a peer system is lost, and envelopes nobody here can take.
`PeerNews` is that handler for one actor system, and it owns the state this needs: which local
actors have jobs that a departure may touch (`job_parties`), and when the registry was last
announced in answer to a query.

Rule 1: a system is the only authority on its own actors. A peer's registry news about actors
it does not own (or that live here) is ignored, counted and logged.

Rule 2: nothing waits for a departed actor. When an actor goes (local or remote, or with its
whole system), every local requester with a job on it settles that member at once, and every
local worker cancels what it asked; only the actors that have jobs are visited.

Rule 3: a job request is never silently dropped. One that arrives for nobody is answered
FAILED; one for an actor between two instances waits for the next (within its deadline).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import msgspec
import trio

from transports import PeerLost

from .._exceptions import ActorNotFound
from .._jobs.requester import Requester
from .._routing.router import Router
from .._wire.envelope import (
    AgentActivation,
    AgentGone,
    AgentReady,
    Envelope,
    JobRequestMessage,
    JobResponseMessage,
    JobStatus,
    RegistryQuery,
    SystemGone,
    SystemMessage,
)
from .actor import Actor

logger = logging.getLogger("actors._runtime.system")

MAX_ACTORS_PER_PEER = 100_000
"""Most actors one peer system may have in our registry; what it announces beyond is ignored."""

_QUERY_INTERVAL = 1.0
"""Seconds between two answers to one peer's registry queries."""


class PeerNews:
    """The system's handler of inbound news (an `InboundHandler`) and of departures.

    Args:
        name: the system's name.
        router: the system's router.
        requester: the system's own requester (it has jobs too).
        actors: the system's live local actors by name (read, never changed here).
        nursery: returns the system's nursery, where waits for restarts run.
        broadcast_locally: hands a user broadcast from a peer to every local actor.
    """

    def __init__(
        self,
        name: str,
        router: Router,
        requester: Requester,
        actors: dict[str, Actor],
        *,
        nursery: Callable[[], trio.Nursery | None],
        broadcast_locally: Callable[[Envelope], None],
    ) -> None:
        self._name = name
        self._router = router
        self.registry = router.registry
        self._requester = requester
        self._actors = actors
        self._nursery_of = nursery
        self._broadcast_locally = broadcast_locally
        self.job_parties: set[Actor] = set()
        """Local actors that requested or held jobs since last found idle (see
        `_parties_with_jobs`); each adds itself through its components' `on_busy`."""
        self._registry_answer_at = -math.inf
        self._registry_answer_due = False

    def __repr__(self) -> str:
        return f"<PeerNews [{self._name!r}, parties: {len(self.job_parties)}]>"

    @property
    def _nursery(self) -> trio.Nursery | None:
        return self._nursery_of()

    def on_broadcast(self, envelope: Envelope) -> None:
        """A broadcast from a peer arrived (see `actors._routing.inbound`)."""
        body = envelope.body
        peer = envelope.sender
        registry_news = isinstance(body, AgentReady | AgentGone | AgentActivation | SystemGone)
        if registry_news and not self._from_authority(peer, body):
            return
        if isinstance(body, AgentReady):
            info = body.info
            if info.name not in self.registry and (
                self.registry.count_on(peer) >= MAX_ACTORS_PER_PEER
            ):
                # Bounded per peer (issue 8, item 12): a peer cannot fill our memory by
                # announcing actors without end.
                self._router.counters.hostile += 1
                logger.warning(
                    "system %r ignored actor %r announced by %r: it already announced %d",
                    self._name,
                    info.name,
                    peer,
                    MAX_ACTORS_PER_PEER,
                )
                return
            self.registry.add(info)
        elif isinstance(body, AgentGone):
            if self.registry.remove(body.name, system=body.system) is not None:
                self.on_agent_gone(body.name, crashed=body.crashed, restarting=body.restarting)
        elif isinstance(body, AgentActivation):
            self.registry.set_active(body.name, body.active)
        elif isinstance(body, RegistryQuery):
            self._answer_registry_query(peer)
        elif isinstance(body, SystemGone):
            self._on_peer_lost(body.system, crashed=body.crashed, reason=None)
        elif isinstance(body, SystemMessage):
            self._router.counters.hostile += 1
            logger.warning(
                "system %r ignored a broadcast %s from %r", self._name, type(body).__name__, peer
            )
        else:
            self._broadcast_locally(envelope)

    def _from_authority(self, peer: str, body: Any) -> bool:
        """A system is the only authority on its own actors: a peer may speak for its own."""
        if isinstance(body, AgentReady):
            owner: str | None = body.info.system
        elif isinstance(body, AgentGone | SystemGone):
            owner = body.system
        else:
            info = self.registry.get(body.name)
            owner = info.system if info is not None else peer
        # A peer announcing a name one of our live actors holds is lying (names are unique
        # across the transport): accepting it would move our actor's entry to the peer.
        name = body.info.name if isinstance(body, AgentReady) else getattr(body, "name", None)
        if owner == peer and owner != self._name and not self._router.is_local(name or ""):
            return True
        self._router.counters.hostile += 1
        logger.warning(
            "system %r ignored %s from %r about %r: a system speaks only for its own actors",
            self._name,
            type(body).__name__,
            peer,
            owner,
        )
        return False

    def _answer_registry_query(self, peer: str) -> None:
        """Announce every ready local actor, at most once per `_QUERY_INTERVAL`.

        The answer is a broadcast, so it serves every peer at once: queries that arrive within
        an interval share one answer at its end (a peer that joined after the last answer
        still hears of everyone). A flood of queries, whatever sender names it forges, costs
        one broadcast per interval and no state per peer.
        """
        now = trio.current_time()
        if now >= self._registry_answer_at:
            self._registry_answer_at = now + _QUERY_INTERVAL
            self._announce_local_actors()
        elif not self._registry_answer_due and self._nursery is not None:
            self._registry_answer_due = True
            self._nursery.start_soon(self._answer_registry_later)

    async def _answer_registry_later(self) -> None:
        await trio.sleep_until(self._registry_answer_at)
        self._registry_answer_due = False
        self._registry_answer_at = trio.current_time() + _QUERY_INTERVAL
        self._announce_local_actors()

    def _announce_local_actors(self) -> None:
        for actor in list(self._actors.values()):
            if actor._ready:
                self._router.post_broadcast(
                    self._router.envelope(self._name, None, AgentReady(info=actor.info))
                )

    def on_peer_lost(self, notice: PeerLost) -> None:
        """The transport says a peer system ended or vanished."""
        self._on_peer_lost(notice.system, crashed=notice.crashed, reason=notice.reason)

    def on_undeliverable(self, envelope: Envelope, *, reclaimed: bool) -> None:
        """Answer what arrived for nobody: a job request is answered FAILED, never dropped.

        A request for one of our actors that is between two instances waits for the next one
        instead (see `hold_for_restart`).
        """
        body = envelope.body
        recipient = envelope.recipient
        if (
            isinstance(body, JobRequestMessage)
            and not reclaimed
            and recipient is not None
            and self.registry.restarting(recipient)
        ):
            self.hold_for_restart(recipient, [envelope])
            return
        self._router.counters.undeliverable += 1
        if isinstance(body, JobRequestMessage) and envelope.job_id:
            if reclaimed:
                self._router.counters.dead_letters += 1
                logger.warning(
                    "system %r dead-lettered job %s for %r: its worker's system died holding it",
                    self._name,
                    envelope.job_id,
                    envelope.recipient,
                )
            text = (
                f"worker {envelope.recipient!r} died holding the request"
                if reclaimed
                else f"worker {envelope.recipient!r} is gone"
            )
            self._answer_failed(envelope, text)

    def hold_for_restart(self, name: str, requests: list[Envelope]) -> None:
        """Keep job requests that actor `name` never started until its next instance is ready.

        They were queued at an instance that ended, or arrived while it ended, and its
        supervisor may start it again: jobs sent during a restart wait for the new instance
        within their deadline (DESIGN 5), instead of failing because of when they came. If no
        new instance comes (the supervisor gave up), each is answered FAILED with the reason.
        """
        if self._nursery is None:
            for envelope in requests:
                self._answer_failed(envelope, f"worker {name!r} is gone")
            return
        self._nursery.start_soon(
            self._deliver_after_restart,
            name,
            requests,
            trio.current_time(),
            name=f"requests waiting for {name!r} to restart",
        )

    async def _deliver_after_restart(
        self, name: str, requests: list[Envelope], since: float
    ) -> None:
        pending = list(requests)
        while pending:
            try:
                await self.registry.wait_ready(name)
            except ActorNotFound as exc:
                for envelope in pending:
                    self._answer_failed(envelope, f"worker {name!r} is gone ({exc.reason})")
                return
            envelope = pending[0]
            if envelope.deadline is not None:
                # The budget a request carries is relative: the time it waited here is spent.
                left = max(0.0, envelope.deadline - (trio.current_time() - since))
                envelope = msgspec.structs.replace(envelope, deadline=left)
            try:
                await self._router.send(envelope)
            except ActorNotFound:
                if not self.registry.restarting(name):
                    self._answer_failed(envelope, f"worker {name!r} is gone")
                    pending.pop(0)
                continue
            pending.pop(0)

    def _answer_failed(self, envelope: Envelope, text: str) -> None:
        """Answer a job request that will never run FAILED, and settle its delivery."""
        self._router.settle(envelope.id)
        self._router.post(
            self._router.envelope(
                envelope.recipient or self._name,
                envelope.sender,
                JobResponseMessage(status=JobStatus.FAILED, error=text),
                job_id=envelope.job_id,
            )
        )

    def _on_peer_lost(self, system: str, *, crashed: bool, reason: str | None) -> None:
        if system == self._name:
            # The transport lost what we had announced (see `transports.PeerLost`): announce
            # our actors again and ask the peers for theirs.
            logger.warning(
                "system %r announces its actors again: %s", self._name, reason or "asked to"
            )
            self._announce_local_actors()
            self._router.post_broadcast(
                self._router.envelope(self._name, None, RegistryQuery(system=self._name))
            )
            return
        for info in self.registry.on_system(system):
            self.registry.remove(info.name, system=system)
            self.on_agent_gone(info.name, crashed=crashed)
        # The lost system was a requester too: work it asked of our actors is orphaned.
        for actor in self._parties_with_jobs():
            if actor._worker is not None and actor._worker.busy:
                actor._worker.requester_gone(f"system:{system}")
        logger.info(
            "system %r lost peer %r (crashed: %s%s)",
            self._name,
            system,
            crashed,
            f", {reason}" if reason else "",
        )

    def on_agent_gone(self, name: str, *, crashed: bool, restarting: bool = False) -> None:
        """An actor (local or remote) is gone: end what local requesters wait on it for,
        and cancel what it asked of local workers.

        An actor that its supervisor may restart (`restarting`) owes nothing through this
        notice: the jobs it ran answered for themselves as they were cut off, and the requests
        it never started wait for its next instance (`hold_for_restart`, on its own system).
        """
        if not restarting:
            self._requester.worker_gone(name, crashed=crashed)
        for actor in self._parties_with_jobs():
            requester = actor._requester
            if requester is not None and requester.jobs and not restarting:
                requester.worker_gone(name, crashed=crashed)
            worker = actor._worker
            if worker is not None and worker.busy:
                worker.requester_gone(name)

    def _parties_with_jobs(self) -> list[Actor]:
        """Local actors that have requested or hold jobs: only they can be affected when
        another actor goes. Visiting every actor instead would make ending n actors cost n
        squared. Actors found idle leave the set."""
        parties = []
        for actor in list(self.job_parties):
            requester, worker = actor._requester, actor._worker
            if (requester is not None and requester.jobs) or (worker is not None and worker.busy):
                parties.append(actor)
            else:
                self.job_parties.discard(actor)
        return parties
