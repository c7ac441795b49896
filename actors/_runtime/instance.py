"""How one actor instance runs: start, mailbox loop, graceful end, and the report of its exit.

Theory of operation
-------------------
An actor instance is one Trio task, started by a `supervision.Supervisor` (its parent's, or the
system's root one), shaped like this::

    claim name, open mailbox
    with CancelScope() as scope:                    # cancel() cancels it; end() sets a deadline
        async with nursery:                         # job tasks and helpers
            async with open_supervisor(...):        # children live here
                on_ready(); announce ready; started()
                mailbox loop                        # until end()
            # children have stopped, in reverse start order
            wait for in-flight jobs                 # under the deadline end() set
    finally (shielded): unregister, close mailbox, answer leftovers CANCELLED,
                        on_error(fatal) if it crashed, on_finished(), announce gone

Rule 1: hooks run in order: `on_ready` before any message, `on_finished` last, after children
and jobs are gone. Rule 2: an exception from a hook or message handler is a crash: it leaves
this function, the supervisor sees it, and the parent hears of it in `on_agent_error`.
Rule 3: when the instance is gone nothing of it is left: no task, no name, no mailbox, and
every job it held or had queued has been answered.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from supervision import Action, ChildExit, ChildSpec, Decision, Restart, open_supervisor

from .._bridges.inbox import FrameInbox
from .._exceptions import ActorStateError, NameTaken
from .._jobs.requester import Requester
from .._jobs.types import describe
from .._jobs.worker import Worker
from .._routing.mailbox import Mailbox, MailboxInterrupted
from .._runtime.actor import Actor
from .._wire.envelope import AgentError, BridgeFrame, Envelope, JobRequestMessage

if TYPE_CHECKING:
    from .._runtime.system import ActorSystem

logger = logging.getLogger(__name__)

FINISH_GRACE = 5.0
"""Seconds `on_finished` may take during shutdown before it is cancelled."""

_spawn_counter = itertools.count(1)


def actor_name_of(child_key: str) -> str:
    """Return the actor name inside a supervision child key (``name#n``)."""
    return child_key.rpartition("#")[0] or child_key


@attrs.frozen
class ActorSpec:
    """How to make a child actor afresh, for supervision that restarts it.

    A restart never reuses a crashed instance: it calls `factory` again.

    Args:
        factory: returns a new, unstarted actor instance (same name every time).
        restart: when the supervisor restarts it.
    """

    factory: Callable[[], Actor]
    """Makes a fresh instance."""
    restart: Restart = Restart.TEMPORARY
    """When the supervisor restarts it."""


def sole_error(error: BaseException) -> BaseException:
    """Return the one error inside nested single-error groups (or `error` itself)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def start_supervised(supervisor: Any, spec: ChildSpec) -> Actor:
    """Start an actor under `supervisor`; a failure to start raises the actor's own error.

    An actor's `on_ready` runs inside the nurseries that make up the actor, which wrap what
    it raises in exception groups; those groups are ours, not the caller's business.
    """
    try:
        started = await supervisor.start_child(spec)
    except BaseExceptionGroup as group:
        error = sole_error(group)
        if error is group:
            raise
        raise error from None
    assert isinstance(started, Actor)
    return started


def _factory_for(actor: Actor) -> Callable[[], Actor]:
    # The first start uses the instance the user passed; restarts rebuild one from the
    # constructor arguments recorded when the instance was made.
    recorded: tuple[tuple[Any, ...], dict[str, Any]] | None = getattr(actor, "_init_args", None)
    instances = [actor]

    def factory() -> Actor:
        if instances:
            return instances.pop()
        if recorded is None:
            raise ActorStateError(f"actor {actor.name!r} cannot be rebuilt for a restart")
        args, kwargs = recorded
        return type(actor)(*args, **kwargs)

    return factory


def child_spec(
    system: ActorSystem,
    parent: Actor | None,
    actor: Actor | ActorSpec,
    restart: Restart | None,
) -> tuple[str, ChildSpec]:
    """Build the supervision child spec that runs `actor` (or fresh instances from a spec).

    Raises:
        TypeError: if `actor` is neither an `Actor` nor an `ActorSpec`, or `restart` is not a
            `Restart`.
        ActorStateError: if the instance was started before (pass a new one).
        NameTaken: if a live actor holds the name.
    """
    if restart is not None and not isinstance(restart, Restart):
        raise TypeError(f"restart must be a supervision.Restart member, got {restart!r}")
    if not isinstance(actor, Actor | ActorSpec):
        raise TypeError(
            f"actor must be an Actor instance or an ActorSpec, got {actor!r}; "
            "construct the actor first: spawn(MyActor('name'))"
        )
    if isinstance(actor, Actor) and actor._system is not None:
        raise ActorStateError(
            f"actor {actor.name!r} was already started; pass a new instance (or an ActorSpec)"
        )
    if isinstance(actor, ActorSpec):
        factory = actor.factory
        restart = restart or actor.restart
        first = factory()
        pending = [first]

        def make() -> Actor:
            return pending.pop() if pending else factory()

        name = first.name
        grace = first.shutdown_grace
    else:
        make = _factory_for(actor)
        name = actor.name
        grace = actor.shutdown_grace
    if system._router.is_local(name) or name in system.registry:
        holder = system.registry.get(name)
        raise NameTaken(name, holder.system if holder is not None else system.name)
    restart = restart or Restart.TEMPORARY
    start = functools.partial(_run_instance, make, system, parent, restart)
    # Each spawn gets its own supervision key, so an actor's name can be taken again as soon
    # as it has finished, whenever its supervisor gets round to forgetting the old child.
    key = f"{name}#{next(_spawn_counter)}"
    # Logs name the actor, never the key (DESIGN 14).
    return name, ChildSpec(name=key, start=start, restart=restart, shutdown=grace, label=name)


async def start_child(parent: Actor, actor: Actor | ActorSpec, restart: Restart | None) -> Actor:
    """Start `actor` as a child of the running actor `parent`; return the ready instance."""
    supervisor = getattr(parent, "_supervisor", None)
    if supervisor is None or parent._ending:
        raise ActorStateError(f"actor {parent.name!r} is not running; cannot add a child")
    name, spec = child_spec(parent.system, parent, actor, restart)
    parent._child_keys[name] = spec.name
    return await start_supervised(supervisor, spec)


def exit_reporter(system: ActorSystem, parent: Actor | None) -> Any:
    """Return the supervisor callback that tells `parent` (or the log) about a child's exit."""

    async def on_exit(exit: ChildExit, decision: Decision) -> None:
        name = actor_name_of(exit.name)
        action = decision.action.name.lower()
        if action != "restart":
            # Jobs waiting for a new instance of it learn at once that none is coming.
            why = (
                "its supervisor gave up on it: restart intensity exceeded"
                if decision.action is Action.GIVE_UP
                else "its supervisor does not restart it"
            )
            system.registry.ended_for_good(name, why)
            if parent is not None and parent._child_keys.get(name) == exit.name:
                # Gone for good: the parent's table of children stays bounded by live ones.
                del parent._child_keys[name]
        else:
            logger.debug("actor %r restarting (system %r)", name, system.name)
        if parent is None:
            # The decision is taken: a root that stays down no longer counts for wait().
            system._check_roots_done()
        if exit.error is None:
            return
        text = describe(exit.error)
        if parent is None:
            logger.error("root actor %r crashed (%s); decision: %s", name, text, action)
            return
        message = AgentError(name=name, error=text, fatal=True, decision=action)
        await system._send(name, parent.name, message, urgent=True, missing_ok=True)
        logger.debug("actor %r crashed (%s); decision: %s", name, text, action)

    return on_exit


async def _run_instance(
    make: Callable[[], Actor],
    system: ActorSystem,
    parent: Actor | None,
    restart: Restart,
    stopping: trio.Event,
    *,
    task_status: trio.TaskStatus[Actor] = trio.TASK_STATUS_IGNORED,
) -> None:
    actor = make()
    if actor._system is not None:
        raise ActorStateError(f"actor {actor.name!r} was already started; pass a new instance")
    actor._system = system
    actor._parent = parent
    mailbox: Mailbox[Envelope] = Mailbox(actor.mailbox_size)
    actor._requester = Requester(system._router, actor.name, actor)
    actor._worker = Worker(system._router, actor, system.name)
    actor._frames = FrameInbox(actor.name, system._router, actor.bridged)
    actor._requester.on_busy = actor._worker.on_busy = functools.partial(
        system._peers.job_parties.add, actor
    )
    await system._register_local(actor, mailbox)
    if parent is not None:
        parent._children.append(actor)
    crash: BaseException | None = None
    try:
        with trio.CancelScope() as scope:
            actor._scope = scope
            if actor._cancel_requested:
                scope.cancel()
            async with trio.open_nursery() as nursery:
                actor._nursery = nursery
                actor._requester.nursery = nursery
                actor._worker.nursery = nursery
                nursery.start_soon(_follow_stopping, actor, stopping)
                async with open_supervisor(
                    strategy=actor.strategy,
                    intensity=actor.intensity,
                    backoff=actor.backoff,
                    on_exit=exit_reporter(system, actor),
                ) as supervisor:
                    actor._supervisor = supervisor
                    await actor.on_ready()
                    actor._started_at = time.time()
                    actor._ready = True
                    await system._announce_ready(actor)
                    logger.debug("actor %r ready (system %r)", actor.name, system.name)
                    task_status.started(actor)
                    if actor._active:
                        # Constructed active: activated once at start, as pipecat's agents are.
                        await actor.on_activated(None)
                    await _mailbox_loop(actor, mailbox)
                    actor._supervisor = None
                await actor._worker.wait_idle()
                nursery.cancel_scope.cancel(reason="actor finished")
    except BaseException as exc:
        if not isinstance(exc, trio.Cancelled):
            crash = exc
        raise
    finally:
        may_restart = restart is Restart.PERMANENT or (
            restart is Restart.TRANSIENT and crash is not None
        )
        if may_restart and not system._ending:
            # Until its supervisor decides, a job to this name waits for the new instance.
            system.registry.expect_restart(actor.name)
        with trio.CancelScope(shield=True):
            await _finish(actor, mailbox, crash)


async def _follow_stopping(actor: Actor, stopping: trio.Event) -> None:
    await stopping.wait()
    actor.end(actor._parent._end_reason if actor._parent else None, grace=actor.shutdown_grace)


async def _mailbox_loop(actor: Actor, mailbox: Mailbox[Envelope]) -> None:
    handlers = actor._handlers()
    router = actor.system._router
    worker = actor._worker
    assert worker is not None
    actor._mailbox = mailbox
    while not actor._ending:
        try:
            envelope = await mailbox.receive()
        except MailboxInterrupted:
            continue
        except trio.EndOfChannel:
            return
        body_type = type(envelope.body)
        if body_type is JobRequestMessage:
            # Settled by its answer (acknowledged together with it where the link can).
            worker.take_request(envelope)
            continue
        handler = handlers.get(body_type)
        try:
            if handler is not None:
                await handler(envelope)
            else:
                await actor.on_message(envelope)
        except Exception:
            # A crash: jobs this actor holds must end FAILED, not CANCELLED.
            worker.crashed = True
            if body_type is not BridgeFrame:
                # The message is acknowledged below and never delivered again, so a poison
                # message costs one crash per copy sent, never a crash-restart loop: it is a
                # dead letter. (A frame's bridge decides whether to send it again.)
                router.counters.dead_letters += 1
                logger.warning(
                    "actor %r (system %r) dead-lettered a %s message from %r: its handler raised",
                    actor.name,
                    router.system,
                    body_type.__name__,
                    envelope.sender,
                )
            raise
        finally:
            router.settle(envelope.id)


async def _finish(actor: Actor, mailbox: Mailbox[Envelope], crash: BaseException | None) -> None:
    system = actor.system
    actor._ending = True
    actor._supervisor = None
    mailbox.close()
    for watch in actor._watches:
        watch.cancel()
    actor._watches.clear()
    await system._unregister_local(actor, crashed=crash is not None)
    if actor._parent is not None and actor in actor._parent._children:
        actor._parent._children.remove(actor)
    leftovers = mailbox.drain()
    if system.registry.restarting(actor.name):
        # Requests this instance never started wait for the next one (it may restart).
        requests = [e for e in leftovers if type(e.body) is JobRequestMessage and e.job_id]
        if requests:
            system.hold_for_restart(actor.name, requests)
            leftovers = [e for e in leftovers if e not in requests]
    worker = actor._worker
    assert worker is not None and actor._requester is not None
    worker.accepting = False
    await worker.refuse_leftovers(leftovers, crashed=crash is not None)
    actor._requester.close(f"actor {actor.name!r} has ended")
    if actor._ready:
        with trio.move_on_after(FINISH_GRACE) as finish_scope:
            try:
                if crash is not None:
                    await actor.on_error(describe(crash), True)
                await actor.on_finished()
            except Exception:
                logger.exception("actor %r failed while finishing", actor.name)
        if finish_scope.cancelled_caught:
            logger.warning(
                "actor %r: on_finished did not return within %ss; cancelled it",
                actor.name,
                FINISH_GRACE,
            )
    actor._finished_event.set()
    logger.debug(
        "actor %r ended (system %r)%s", actor.name, system.name, " (crashed)" if crash else ""
    )
