"""Actor: the base class users subclass, with its properties, hooks and messaging methods.

The machinery that runs an actor (its task, mailbox loop and shutdown) lives in `_lifecycle`;
jobs live in `_requester` and `_worker`. This module holds what a user reads: what an actor
is, what it can override, and what it can call.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import msgspec
import trio

from supervision import Backoff, Restart, RestartIntensity, Strategy

from .._bridges.endpoint import bridge_address
from .._bridges.inbox import FrameInbox
from .._exceptions import ActorNotFound, ActorStateError
from .._jobs.facade import JobRequesterAPI
from .._jobs.requester import Requester
from .._jobs.types import job_handlers
from .._jobs.worker import Worker
from .._jobs.worker_api import JobWorkerAPI
from .._routing.mailbox import Mailbox
from .._routing.registry import Watch
from .._wire.envelope import (
    Activate,
    AgentActivation,
    AgentError,
    AgentInfo,
    AgentReady,
    BridgeFrame,
    Deactivate,
    Envelope,
    JobUpdateRequest,
    SystemMessage,
)
from .definition import check_actor_class, check_bound
from .finished import DEFAULT_GRACE, Finished

if TYPE_CHECKING:
    from .._bridges.endpoint import Bridge
    from .._runtime.instance import ActorSpec
    from .._runtime.system import ActorSystem

logger = logging.getLogger(__name__)

_SEEN_READY_SLACK = 64
"""Entries of an actor's seen-ready table beyond twice the registry's size before it is pruned."""

A = TypeVar("A", bound="Actor")


class Actor(JobRequesterAPI, JobWorkerAPI):
    """An agent: a supervised Trio task with a mailbox, hooks, children and jobs.

    Subclass it, override hooks (calling ``await super().hook(...)`` first), and start it with
    `ActorSystem.spawn` or `Actor.add_child`. Messages to an actor are handled one at a time,
    in arrival order; job handlers run as their own tasks in the actor's nursery.

    Args:
        name: unique name within the actor system and every system joined to it.
        active: start active (the default) or inactive until `activate_agent` is called.
        bridged: the bridges whose frames reach `on_frame` while active: None (not bridged),
            () for every bridge, or names like ``("voice",)``.
        mailbox_size: bound of each mailbox lane; a full mailbox makes senders wait.
        max_concurrent_jobs: most job handlers running at once (None: no bound); excess
            requests wait in arrival order.

    Raises:
        ValueError: for an empty name or a non-positive bound.
    """

    shutdown_grace: ClassVar[float] = DEFAULT_GRACE
    """Seconds a stopping supervisor gives this actor before cancelling it."""

    strategy: ClassVar[Strategy] = Strategy.ONE_FOR_ONE
    """How this actor restarts its children when one of them exits."""

    intensity: ClassVar[RestartIntensity] = RestartIntensity()
    """Most restarts of children in a window; beyond it this actor crashes (escalates)."""

    backoff: ClassVar[Backoff | None] = None
    """Delay schedule between restarts of a child (None: restart at once)."""

    _init_args: tuple[tuple[Any, ...], dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Mistakes in a class are reported when it is defined, not at its first request.
        super().__init_subclass__(**kwargs)
        table = job_handlers(cls)
        check_actor_class(cls, table)
        cls._job_table = table

    def __new__(cls, *args: Any, **kwargs: Any) -> Actor:
        # Record the constructor arguments so a supervisor can build a fresh instance for a
        # restart: a crashed instance is never reused.
        instance = super().__new__(cls)
        instance._init_args = (args, kwargs)
        return instance

    def __init__(
        self,
        name: str,
        *,
        active: bool = True,
        bridged: tuple[str, ...] | None = None,
        mailbox_size: int = 1000,
        max_concurrent_jobs: int | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        if not name:
            raise ValueError("an actor needs a non-empty name")
        check_bound("mailbox_size", mailbox_size)
        if max_concurrent_jobs is not None:
            check_bound("max_concurrent_jobs", max_concurrent_jobs)
        if bridged is not None:
            if isinstance(bridged, str):
                raise TypeError(
                    f"bridged takes a tuple of bridge names, got the string {bridged!r}; "
                    f"write bridged=({bridged!r},)"
                )
            bridged = tuple(bridged)
            for bridge in bridged:
                if not isinstance(bridge, str) or not bridge:
                    raise TypeError(f"bridge names must be non-empty strings, got {bridge!r}")
        self._name = name
        self._bridged = bridged
        self.mailbox_size = mailbox_size
        """Bound of each mailbox lane; a full mailbox makes senders wait."""
        self.max_concurrent_jobs = max_concurrent_jobs
        """Most job handlers running at once (None: no bound)."""
        self._system: ActorSystem | None = None
        self._parent: Actor | None = None
        self._children: list[Actor] = []
        self._ready = False
        self._started_at: float | None = None
        self._active = active
        self._activation_args: Any = None
        self._scope: trio.CancelScope | None = None
        self._mailbox: Mailbox[Envelope] | None = None
        self._nursery: trio.Nursery | None = None
        self._ending = False
        self._end_reason: str | None = None
        self._cancel_requested = False
        self._finished_event = trio.Event()
        self._watches: list[Watch] = []
        self._seen_ready: dict[str, str] = {}
        self._incarnation = secrets.token_hex(6)
        self._child_keys: dict[str, str] = {}
        self._frames: FrameInbox | None = None
        self._supervisor: Any = None
        self._requester: Requester | None = None
        self._worker: Worker | None = None

    def __repr__(self) -> str:
        if self._finished_event.is_set():
            state = "finished"
        elif self._ending:
            state = "ending"
        elif self._ready:
            state = "ready"
        else:
            state = "new"
        activity = "active" if self._active else "inactive"
        return f"<{type(self).__name__} [{self._name!r}, {state}, {activity}]>"

    # --- properties --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The actor's unique name."""
        return self._name

    @property
    def system(self) -> ActorSystem:
        """The actor system running this actor.

        Raises:
            ActorStateError: if the actor has not been started.
        """
        if self._system is None:
            raise ActorStateError(f"actor {self._name!r} has not been started")
        return self._system

    @property
    def parent(self) -> str | None:
        """The parent actor's name, or None for a root actor."""
        return self._parent.name if self._parent is not None else None

    @property
    def children(self) -> list[Actor]:
        """The live children added with `add_child`, in start order."""
        return list(self._children)

    @property
    def ready(self) -> bool:
        """Whether `on_ready` has completed and the actor is handling messages."""
        return self._ready and not self._finished_event.is_set()

    @property
    def started_at(self) -> float | None:
        """Unix time when the actor became ready, or None if it has not."""
        return self._started_at

    @property
    def active(self) -> bool:
        """Whether the actor is active (bridged frames reach only active actors)."""
        return self._active

    @property
    def activation_args(self) -> Any:
        """Arguments of the most recent activation; None while inactive."""
        return self._activation_args

    @property
    def bridged(self) -> tuple[str, ...] | None:
        """The bridges this actor takes frames from (None: not bridged, (): every bridge)."""
        return self._bridged

    @property
    def info(self) -> AgentInfo:
        """This actor's registry entry, as other actors see it."""
        return AgentInfo(
            name=self._name,
            system=self.system.name,
            parent=self.parent,
            active=self._active,
            bridged=self._bridged,
            started_at=self._started_at or 0.0,
            incarnation=self._incarnation,
        )

    # --- lifecycle hooks ---------------------------------------------------------------------

    async def on_ready(self) -> None:
        """Called once when the actor starts, before it handles any message.

        Add children here. The actor is announced ready to others after this returns.
        """

    async def on_finished(self) -> None:
        """Called last, after children, jobs and the mailbox loop have stopped."""

    async def on_error(self, error: str, fatal: bool) -> None:
        """Called when a job handler fails (`fatal=False`) or the actor crashes (`fatal=True`)."""

    async def on_activated(self, args: Any) -> None:
        """Called when the actor becomes active (or is re-activated with `redeliver=True`)."""

    async def on_deactivated(self) -> None:
        """Called when the actor becomes inactive."""

    async def on_agent_ready(self, info: AgentInfo) -> None:
        """Called when a child or a watched actor becomes ready (once per start of it)."""

    async def on_agent_error(self, error: AgentError) -> None:
        """Called when a child reports an error (`send_error`) or crashes (`error.fatal`)."""

    async def on_message(self, envelope: Envelope) -> None:
        """Called for each user-defined message; `envelope.body` is the message Struct."""

    async def on_frame(self, frame: Any, bridge: str) -> None:
        """Called for each bridge frame while the actor is active (bridged actors only)."""

    # --- tree ----------------------------------------------------------------------------------

    @overload
    async def add_child(self, actor: A, *, restart: Restart | None = None) -> A: ...
    @overload
    async def add_child(self, actor: ActorSpec, *, restart: Restart | None = None) -> Actor: ...

    async def add_child(
        self,
        actor: Actor | ActorSpec,
        *,
        restart: Restart | None = None,
    ) -> Actor:
        """Start a child in this actor's nursery, supervised by this actor.

        The child never outlives this actor: when this actor ends, its children are stopped
        first, in reverse start order. A crash of the child reaches `on_agent_error`.

        Args:
            actor: the child instance, or an `ActorSpec` whose factory makes fresh instances.
            restart: when the child is restarted (default `Restart.TEMPORARY`: never).

        Returns:
            The started child instance (ready when this returns).

        Raises:
            ActorStateError: if this actor is not running.
            NameTaken: if the child's name belongs to a live actor.
        """
        return await self.system._start_child(self, actor, restart)

    async def remove_child(self, name: str) -> None:
        """Stop child `name` for good: it is asked to end, given its grace period, then
        cancelled, and not restarted whatever its restart type.

        Raises:
            KeyError: if this actor has no child of that name.
        """
        key = self._child_keys.get(name)
        if key is None or self._supervisor is None:
            raise KeyError(f"actor {self._name!r} has no child named {name!r}")
        await self._supervisor.stop_child(key)
        if self._child_keys.get(name) == key:
            del self._child_keys[name]

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run `fn(*args)` as a background task of this actor (a tick loop, a poller).

        The task lives in the actor's nursery: it is cancelled when the actor stops, and if it
        raises, the actor crashes (its parent hears of it and its supervisor decides).

        Raises:
            ActorStateError: if the actor is not running.
        """
        if self._nursery is None or self._finished_event.is_set():
            raise ActorStateError(f"actor {self._name!r} is not running")
        self._nursery.start_soon(self._guarded, fn, *args, name=f"{self._name}: {fn!r}")

    async def _guarded(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        try:
            await fn(*args)
        except Exception:
            if self._worker is not None:
                self._worker.crashed = True
            raise

    # --- activation and handoff ------------------------------------------------------------

    async def activate_agent(self, name: str, *, args: Any = None, redeliver: bool = False) -> None:
        """Ask actor `name` (local or remote) to become active, handing it `args`.

        Activating an active actor is a no-op unless `redeliver` is True, in which case its
        `on_activated` runs again with the new args.

        Raises:
            ActorNotFound: if no live actor has that name.
        """
        await self._send_system(name, Activate(args=args, redeliver=redeliver))

    async def deactivate_agent(self, name: str) -> None:
        """Ask actor `name` to become inactive (a no-op if it already is).

        Raises:
            ActorNotFound: if no live actor has that name.
        """
        if name == self._name:
            await self._set_active(False, None)
            return
        await self._send_system(name, Deactivate())

    async def handoff_to(self, name: str, *, args: Any = None) -> None:
        """Deactivate this actor, then activate `name` with `args`.

        This actor is inactive before the target is asked to activate, so the two are never
        active at once; bridged frames sent in between wait for the target.

        Raises:
            ActorNotFound: if no live actor has that name (this actor stays active then).
        """
        if name not in self.system.registry:
            raise ActorNotFound(name, self.system.registry.names())
        logger.debug("actor %r hands off to %r (system %r)", self._name, name, self.system.name)
        await self._set_active(False, None)
        await self._send_system(name, Activate(args=args, handoff_from=self._name))

    async def watch_agent(self, name: str) -> Watch:
        """Have `on_agent_ready` fire when actor `name` is ready: at once if it already is,
        otherwise when it appears, local or remote, and again each time it restarts.

        Returns:
            The `Watch`; cancel it (or use it as a ``with`` block) to release it early. Every
            watch is released when this actor finishes.
        """
        await trio.lowlevel.checkpoint()
        watch = self.system.registry.watch(name, self._notice_ready)
        self._watches.append(watch)
        return watch

    # --- messages ----------------------------------------------------------------------------

    async def send_message(
        self, name: str | None, message: msgspec.Struct, *, urgent: bool = False
    ) -> None:
        """Send a user-defined message to actor `name`, or to every actor when `name` is None.

        Messages from one sender arrive in the order they were sent; a full mailbox makes this
        wait (backpressure).

        Args:
            name: the recipient, or None to broadcast.
            message: a frozen msgspec Struct; it arrives in the recipient's `on_message`.
            urgent: handled ahead of the recipient's queued (non-urgent) messages.

        Raises:
            TypeError: if `message` is not a frozen msgspec Struct.
            ActorNotFound: if no live actor has that name.
            EncodeError: in strict mode, if the message cannot cross a process boundary.
        """
        self.system._check_user_message(message)
        if name is None:
            await self.system._broadcast(message, sender=self._name, urgent=urgent)
        else:
            await self.system._send(self._name, name, message, urgent=urgent)

    async def send_error(self, error: str) -> None:
        """Report an error: to the parent's `on_agent_error`, or to every actor for a root."""
        message = AgentError(name=self._name, error=error, fatal=False)
        if self._parent is not None:
            await self.system._send(self._name, self._parent.name, message, urgent=True)
        else:
            await self.system._broadcast(message, sender=self._name)

    # --- bridges -----------------------------------------------------------------------------

    async def send_frame(self, frame: msgspec.Struct, *, bridge: str | None = None) -> None:
        """Send a frame out through a bridge (to whoever holds it open).

        Args:
            frame: a user-defined msgspec Struct.
            bridge: the bridge's name; defaults to the bridge of the frame being handled, or
                the only bridge this actor is bridged to.

        Raises:
            ValueError: if no bridge is given and none can be inferred.
            ActorNotFound: if the bridge is not open.
        """
        name = bridge or (self._frames.current if self._frames is not None else None)
        if name is None and self._bridged and len(self._bridged) == 1:
            name = self._bridged[0]
        if name is None:
            raise ValueError(
                f"actor {self._name!r} cannot tell which bridge to send to; pass bridge=..."
            )
        frame_type, data = self.system.codec.encode_value(frame)
        message = BridgeFrame(bridge=name, seq=0, epoch=0, frame_type=frame_type, data=data)
        await self.system._send(self._name, bridge_address(name), message)

    def open_bridge(
        self, name: str, *, capacity: int = 1024
    ) -> AbstractAsyncContextManager[Bridge]:
        """Open bridge `name` in this actor's system; see `ActorSystem.open_bridge`."""
        return self.system.open_bridge(name, capacity=capacity)

    # --- ending ------------------------------------------------------------------------------

    def end(self, reason: str | None = None, *, grace: float = DEFAULT_GRACE) -> Finished:
        """End this actor and its subtree gracefully.

        The actor stops taking messages; its children are ended (in reverse start order) and
        its in-flight jobs get `grace` seconds, after which everything left is cancelled and
        answered CANCELLED. Idempotent; a later call can only shorten the grace period.

        Returns:
            An awaitable that completes when the actor has finished.

        Raises:
            ActorStateError: if the actor was never started (there is nothing to wait for).
        """
        if grace < 0 or math.isnan(grace):
            raise ValueError(f"grace must be >= 0, got {grace!r}")
        self._check_started()
        if not self._ending:
            self._ending = True
            self._end_reason = reason
            logger.debug("actor %r ending (reason: %s, grace: %ss)", self._name, reason, grace)
        if self._scope is not None:
            self._scope.deadline = min(self._scope.deadline, trio.current_time() + grace)
        if self._mailbox is not None:
            self._mailbox.interrupt()
        return Finished(self._finished_event)

    def cancel(self) -> Finished:
        """Stop this actor and its subtree at once; works at any time, also during `end()`.

        Returns:
            An awaitable that completes when the actor has finished.

        Raises:
            ActorStateError: if the actor was never started (there is nothing to wait for).
        """
        self._check_started()
        self._cancel_requested = True
        self._ending = True
        if self._scope is not None:
            self._scope.cancel()
        return Finished(self._finished_event)

    def _check_started(self) -> None:
        # Awaiting the end of an actor that never ran would wait for ever (DESIGN 13).
        if self._system is None:
            raise ActorStateError(f"actor {self._name!r} was never started")

    def _require_worker(self) -> Worker:
        if self._worker is None:
            raise ActorStateError(f"actor {self._name!r} has not been started")
        return self._worker

    def _job_requester(self) -> Requester:
        if self._requester is None:
            raise ActorStateError(f"actor {self._name!r} has not been started; cannot open jobs")
        return self._requester

    def _check_job(self, members: tuple[str, ...], name: str | None) -> None:
        worker = self._worker
        if worker is not None and self._name in members and worker.would_wait_for_itself(name):
            raise ActorStateError(
                f"actor {self._name!r} asked a job of itself from a handler that holds the only "
                "place that job needs (sequential handler or max_concurrent_jobs=1): it could "
                "never run; use another actor or drop the bound"
            )

    # --- internals used by the lifecycle -----------------------------------------------------

    async def _send_system(self, name: str, message: SystemMessage) -> None:
        await self.system._send(self._name, name, message)

    def _notice_ready(self, info: AgentInfo) -> None:
        # Called synchronously by the registry; the hook itself runs in the mailbox loop.
        self.system._post(self, AgentReady(info=info))

    async def _set_active(self, active: bool, args: Any, *, redeliver: bool = False) -> None:
        if active:
            if self._active and not redeliver:
                return
            self._active = True
            self._activation_args = args
            logger.debug("actor %r activated (system %r)", self._name, self.system.name)
            await self._announce_activation(True)
            await self.on_activated(args)
        else:
            if not self._active:
                return
            self._active = False
            self._activation_args = None
            logger.debug("actor %r deactivated (system %r)", self._name, self.system.name)
            await self._announce_activation(False)
            await self.on_deactivated()

    async def _announce_activation(self, active: bool) -> None:
        system = self.system
        system.registry.set_active(self._name, active)
        await system._broadcast_remote(AgentActivation(name=self._name, active=active))

    async def _handle_activate(self, envelope: Envelope) -> None:
        message: Activate = envelope.body
        await self._set_active(True, message.args, redeliver=message.redeliver)

    async def _handle_deactivate(self, envelope: Envelope) -> None:
        await self._set_active(False, None)

    async def _handle_agent_error(self, envelope: Envelope) -> None:
        await self.on_agent_error(envelope.body)

    async def _handle_agent_ready(self, envelope: Envelope) -> None:
        info: AgentInfo = envelope.body.info
        # Once per start of an actor: only the latest incarnation per name is remembered.
        if self._seen_ready.get(info.name) == info.incarnation:
            return
        self._seen_ready[info.name] = info.incarnation
        registry = self.system.registry
        if len(self._seen_ready) > _SEEN_READY_SLACK + 2 * len(registry.names()):
            # Bounded by the live actors: a name that is gone will, if it comes back, come
            # back with a new incarnation, so forgetting it loses nothing. Amortized O(1).
            for name in [name for name in self._seen_ready if name not in registry]:
                del self._seen_ready[name]
        await self.on_agent_ready(info)

    def _handlers(self) -> dict[type, Callable[[Envelope], Awaitable[None]]]:
        worker = self._require_worker()
        return {
            Activate: self._handle_activate,
            Deactivate: self._handle_deactivate,
            AgentError: self._handle_agent_error,
            AgentReady: self._handle_agent_ready,
            BridgeFrame: self._handle_frame,
            JobUpdateRequest: worker.update_requested,
        }

    async def _handle_frame(self, envelope: Envelope) -> None:
        assert self._frames is not None
        await self._frames.take(envelope, active=self._active, on_frame=self.on_frame)
