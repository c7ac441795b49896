"""The supervisor runner: start children in a nursery and carry out the policy.

Theory of operation
-------------------

Each run of a child is an `Instance` (see ``_child.py``), run in the
supervisor's nursery. A restart makes a new instance; an instance is never
reused. The decisions come from a `SupervisorPolicy`; this module only carries
them out.

Rule 1: ``_specs`` holds the children the policy knows, in start order, plus
any child the policy has dropped but that is still running until its pending
stop. ``_instances[name]`` is the latest instance of a child that started and
whose exit has not been decided on yet; there is no entry while a child waits
to be (re)started.

Rule 2: every change to children (start, stop, decide, restart) happens while
holding ``_lock``. The lock is released while awaiting ``on_exit`` and while
sleeping for backoff, so that ``on_exit`` may call `Supervisor.stop_child` and a
long backoff does not hold up callers; the carrying out then skips children
that were stopped or restarted meanwhile.

Rule 3: only an exit a child made on its own is decided on: not one the
supervisor asked for, and none once the supervisor is closing. Exits are
queued and decided one at a time by a single manager task, including a
failure to start inside `Supervisor.start_child`, so that a caller cancelled
while waiting for a restart cannot leave a half-done group restart behind.

Rule 4: cancellation from outside wins. Children run in the supervisor's
nursery, unshielded, so when a scope around the supervisor is cancelled its
children are cancelled with it at once (an actor's `cancel()` must always
work); leaving the block still waits, shielded, for each of them to unwind.
A graceful stop (stopping event, grace period, then cancel) is what
`Supervisor.stop_child` and a normal exit of the block do.

Rule 4b: a child starts outside the lock, so a slow start (a child waiting
for another child to be ready) never holds up other starts or decisions;
``_starting`` keeps a restart from starting a second instance meanwhile.

Rule 5: an exit whose instance is no longer current (it ended while a group
restart was replacing it, or it was stopped meanwhile) is stale: it is
reported to ``on_exit`` with an IGNORE decision but not given to the policy,
so that one failure does not count twice.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import final

import attrs
import trio

from ._backoff import Backoff
from ._child import ChildSpec, Instance
from ._exceptions import SupervisorError
from ._policy import (
    Action,
    ChildExit,
    Decision,
    RestartIntensity,
    Strategy,
    SupervisorPolicy,
)

__all__ = ["Supervisor", "open_supervisor"]

logger = logging.getLogger(__name__)

_OnExit = Callable[[ChildExit, Decision], Awaitable[None]]


@attrs.frozen(eq=False)
class _ExitReport:
    """A child's exit, queued for the manager task."""

    instance: Instance | None
    """The instance that ended, or None if it failed before it started."""

    event: ChildExit
    handled: trio.Event = attrs.field(factory=trio.Event)
    """Set once the exit has been decided on and the decision carried out."""


@final
@attrs.define(eq=False, repr=False)
class Supervisor:
    """A nursery of restartable children, run by `open_supervisor`.

    Children are started with `start_child`; when one ends on its own, the
    supervisor's policy decides whether it and its siblings are restarted.
    Build one with `open_supervisor`, never directly.
    """

    _nursery: trio.Nursery
    _policy: SupervisorPolicy
    _on_exit: _OnExit | None
    _exits_send: trio.MemorySendChannel[_ExitReport]
    _exits_receive: trio.MemoryReceiveChannel[_ExitReport]
    _lock: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    _specs: dict[str, ChildSpec] = attrs.field(init=False, factory=dict)
    _instances: dict[str, Instance] = attrs.field(init=False, factory=dict)
    _manager_scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    _manager_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    _manager_task: trio.lowlevel.Task | None = attrs.field(init=False, default=None)
    _closed: bool = attrs.field(init=False, default=False)
    _gave_up: SupervisorError | None = attrs.field(init=False, default=None)
    _restart_count: int = attrs.field(init=False, default=0)
    _starting: set[str] = attrs.field(init=False, factory=set)

    @classmethod
    def _create(
        cls, nursery: trio.Nursery, policy: SupervisorPolicy, on_exit: _OnExit | None
    ) -> Supervisor:
        # Unbounded, because a child must be able to report its exit without
        # blocking; there is at most one pending report per started instance.
        send, receive = trio.open_memory_channel[_ExitReport](math.inf)
        return cls(
            nursery=nursery,
            policy=policy,
            on_exit=on_exit,
            exits_send=send,
            exits_receive=receive,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        running = ", ".join(repr(name) for name in self.children) or "none"
        return (
            f"<Supervisor [{state}, {self._policy.strategy.name}, running: {running}, "
            f"restarts: {self._restart_count}]>"
        )

    @property
    def children(self) -> tuple[str, ...]:
        """Names of the running children, in start order."""
        return tuple(
            name
            for name in self._specs
            if (instance := self._instances.get(name)) is not None and instance.running
        )

    @property
    def closed(self) -> bool:
        """Whether the supervisor takes no new children and restarts none."""
        return self._closed

    @property
    def supervised(self) -> tuple[str, ...]:
        """Names of every child the supervisor still looks after, in start order: running,
        starting, or waiting out a backoff before a restart."""
        return self._policy.children

    def cancel(self) -> None:
        """Stop every child at once and restart none: close the supervisor and cancel them.

        Synchronous, so it works from anywhere, at any time; leaving the block then waits for
        the cancelled children to unwind. Idempotent.
        """
        self._closed = True
        self._manager_scope.cancel(reason="supervisor cancelled")
        # Only the children's own scopes: the supervisor's nursery also runs the caller's
        # block, which must go on (a child that is still starting is stopped once it has).
        for instance in list(self._instances.values()):
            instance.cancel_scope.cancel(reason="supervisor cancelled")

    async def start_child(self, spec: ChildSpec) -> object:
        """Start a child under supervision, once it is ready.

        Like ``nursery.start``: it returns once ``spec.start`` has called
        ``task_status.started(value)``. A child that raises before that has
        crashed, and the policy decides as for any crash; if the child is
        restarted and a restart succeeds, its value is returned instead.

        Must not be called from ``on_exit`` or from a child's ``start`` before
        that child has called ``task_status.started()``.

        Args:
            spec: the child; its name must not be in use by another child.

        Returns:
            The value the child passed to ``task_status.started()``.

        Raises:
            ValueError: if a child with that name is already supervised.
            trio.ClosedResourceError: if the supervisor is closing or closed.
            SupervisorError: if the child's failure to start made the
                supervisor give up. Inside the supervisor's own block, the
                block is cancelled instead and the error comes out of it.
            Exception: whatever the child raised while starting, if its
                restart type means it is not restarted.
            RuntimeError: if called from ``on_exit``.

        Cancellation: if cancelled before the child has started, the child is
        cancelled too and forgotten. Once a failed start has been handed to
        the policy, cancelling the caller no longer affects the child.
        """
        if self._manager_task is not None and trio.lowlevel.current_task() is self._manager_task:
            # The manager would wait for itself if this start failed.
            raise RuntimeError("start_child cannot be called from on_exit")
        async with self._lock:
            if self._closed:
                raise trio.ClosedResourceError("supervisor is closed to new children")
            self._policy.add_child(spec.name, spec.restart)
            self._specs[spec.name] = spec
            self._starting.add(spec.name)
        try:
            instance = await self._start_instance(spec)
        except Exception as exc:
            # A failed start is a crash like any other (rule 3).
            failure = exc
            report = _ExitReport(None, ChildExit(spec.name, exc))
            self._exits_send.send_nowait(report)
        except BaseException:
            # Cancelled (or interrupted) before the child started: it never
            # became a supervised child.
            if self._policy.knows(spec.name):
                self._policy.remove_child(spec.name)
            self._specs.pop(spec.name, None)
            raise
        else:
            if self._closed:
                # The supervisor closed while this child was starting (rule 4b).
                with trio.CancelScope(shield=True):
                    await instance.stop()
                raise trio.ClosedResourceError("supervisor is closed to new children")
            return instance.value
        finally:
            self._starting.discard(spec.name)
        await report.handled.wait()
        if self._gave_up is not None:
            raise self._gave_up
        restarted = self._instances.get(spec.name)
        if restarted is None:
            raise failure
        return restarted.value

    async def stop_child(self, name: str) -> None:
        """Stop a child gracefully; it is not restarted and leaves the supervisor.

        The child's ``stopping`` event is set and it has ``spec.shutdown``
        seconds to return; then it is cancelled. If it still runs shielded
        cleanup after that, a warning naming it is logged and the call waits
        for it: Trio cannot cut shielded code short.

        Args:
            name: the child's name.

        Raises:
            KeyError: if no child has that name.

        Cancellation: the stop itself is shielded so that a child is never
        left half stopped; cancelling the caller takes effect once the child
        has ended, at most the grace period later unless it shields cleanup.
        """
        async with self._lock:
            self._policy.remove_child(name)
            await self._stop_child_named(name)

    def _instance_ended(self, instance: Instance, error: Exception | None) -> None:
        """Queue a started instance's exit for the manager, unless it was asked for."""
        name = instance.spec.name
        label = instance.spec.display_name
        if instance.stop_requested or self._closed:
            if error is not None:
                logger.warning("child %r raised while being stopped", label, exc_info=error)
            return
        if error is None:
            logger.info("child %r returned", label)
        else:
            logger.warning("child %r crashed", label, exc_info=error)
        self._exits_send.send_nowait(_ExitReport(instance, ChildExit(name, error)))

    async def _start_instance(self, spec: ChildSpec) -> Instance:
        """Start a new instance of a child; the lock must be held."""
        instance = Instance(spec)
        await self._nursery.start(
            instance.run, self._instance_ended, name=f"supervised child {spec.name!r}"
        )
        self._instances[spec.name] = instance
        return instance

    async def _stop_child_named(self, name: str) -> None:
        """Stop the child's current instance, if any; the lock must be held."""
        instance = self._instances.pop(name, None)
        if instance is not None:
            await instance.stop()
        if not self._policy.knows(name):
            self._specs.pop(name, None)

    async def _stop_all(self) -> None:
        """Stop every child in reverse start order; the lock must be held."""
        for name in reversed(list(self._specs)):
            await self._stop_child_named(name)

    async def _manage(self) -> None:
        """Decide on exits one at a time, until the supervisor closes."""
        self._manager_task = trio.lowlevel.current_task()
        try:
            with self._manager_scope:
                async for report in self._exits_receive:
                    try:
                        await self._handle_exits(report.instance, report.event)
                    finally:
                        report.handled.set()
        finally:
            self._manager_done.set()

    async def _handle_exits(self, instance: Instance | None, event: ChildExit) -> None:
        """Decide on an exit and carry the decision out, then any exit that caused."""
        pending: tuple[Instance | None, ChildExit] | None = (instance, event)
        while pending is not None:
            instance, event = pending
            decision = await self._decide(instance, event)
            if decision is None:
                return
            if self._on_exit is not None:
                await self._on_exit(event, decision)
            pending = await self._carry_out(event, decision)

    async def _decide(self, instance: Instance | None, event: ChildExit) -> Decision | None:
        """Ask the policy about an exit; None if the supervisor is closing."""
        async with self._lock:
            if self._closed:
                return None
            label = self._label(event.name)
            if not self._policy.knows(event.name) or (
                self._instances.get(event.name) is not instance
            ):
                logger.info("child %r had already been replaced or stopped", label)
                return Decision(Action.IGNORE)
            self._instances.pop(event.name, None)
            decision = self._policy.decide(event, trio.current_time())
            restarted = [self._label(name) for name in decision.restart]
            if not self._policy.knows(event.name):
                self._specs.pop(event.name, None)
        if decision.action is Action.IGNORE:
            logger.info("child %r is not restarted: its restart type says so", label)
        elif decision.action is Action.RESTART:
            logger.info(
                "restarting %s in %ss (%s)",
                ", ".join(repr(name) for name in restarted),
                decision.delay,
                self._policy.strategy.name,
            )
        else:
            logger.warning(
                "giving up after child %r ended: %d restarts within %ss",
                label,
                len(decision.history),
                self._policy.intensity.within,
            )
        return decision

    def _label(self, name: str) -> str:
        """How log records name child `name` (its spec's label, when it has one)."""
        spec = self._specs.get(name)
        return spec.display_name if spec is not None else name

    async def _carry_out(
        self, event: ChildExit, decision: Decision
    ) -> tuple[None, ChildExit] | None:
        """Carry out a decision; return a restart's failure to start, if any."""
        if decision.action is Action.IGNORE:
            return None
        if decision.action is Action.GIVE_UP:
            await self._give_up(event, decision)
            return None
        async with self._lock:
            if self._closed:
                return None
            for name in decision.stop:
                await self._stop_child_named(name)
        await trio.sleep(decision.delay)
        async with self._lock:
            for name in decision.restart:
                spec = self._specs.get(name)
                # Skip children stopped, or restarted by a later decision,
                # while the lock was released (rule 2).
                if (
                    self._closed
                    or spec is None
                    or name in self._instances
                    or name in self._starting
                ):
                    continue
                try:
                    await self._start_instance(spec)
                except Exception as exc:
                    return (None, ChildExit(name, exc))
                self._restart_count += 1
        return None

    async def _give_up(self, event: ChildExit, decision: Decision) -> None:
        """Stop every child, then cancel the supervisor's block with the error."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            error = SupervisorError(
                self._label(event.name),
                decision.history,
                within=self._policy.intensity.within,
                max_restarts=self._policy.intensity.max_restarts,
            )
            error.__cause__ = event.error
            self._gave_up = error
            await self._stop_all()
        self._nursery.cancel_scope.cancel(reason="supervisor gave up")

    async def _close(self) -> None:
        """Stop deciding, then stop every child in reverse start order."""
        self._closed = True
        self._manager_scope.cancel(reason="supervisor is closing")
        await self._manager_done.wait()
        async with self._lock:
            await self._stop_all()
            # Wake start_child() callers whose failed start will never be
            # decided on now.
            while True:
                try:
                    self._exits_receive.receive_nowait().handled.set()
                except trio.WouldBlock:
                    break
            self._exits_send.close()
            self._exits_receive.close()

    def _gave_up_alone(self, group: BaseExceptionGroup[BaseException]) -> bool:
        """Whether our own SupervisorError is the only error in the group."""
        gave_up = self._gave_up
        if gave_up is None:
            return False
        _, rest = group.split(lambda exc: exc is gave_up)
        return rest is None


@asynccontextmanager
async def open_supervisor(
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: RestartIntensity | None = None,
    backoff: Backoff | None = None,
    rng: random.Random | None = None,
    on_exit: Callable[[ChildExit, Decision], Awaitable[None]] | None = None,
) -> AsyncIterator[Supervisor]:
    """Open a supervisor: a nursery that restarts its children when they end.

    Children are added with `Supervisor.start_child`. When one ends on its
    own, a `SupervisorPolicy` built from the arguments decides what to do, and
    the supervisor does it: restart it (and siblings, by `strategy`) after any
    backoff delay, leave it, or give up. Leaving the block stops every child
    in reverse start order, each gracefully (see `Supervisor.stop_child`).

    Args:
        strategy: which children are restarted together.
        intensity: how many restarts are allowed before giving up; None means
            `RestartIntensity()`, at most 3 restarts within 5 seconds.
        backoff: the delay schedule between restarts; None restarts at once.
        rng: the source of backoff jitter, for reproducible delays.
        on_exit: awaited for every exit a child makes on its own, crash or
            return, with the decision taken, before it is carried out: this is
            how a parent gets told. It runs in the task that decides, so no
            other exit is handled until it returns: keep it quick. Leaving the
            block cancels it. It may call `Supervisor.stop_child`, not
            `Supervisor.start_child`. Exits the supervisor asked for (stops,
            group restarts, shutdown) are logged, not reported.

    Yields:
        The `Supervisor`.

    Raises:
        SupervisorError: restart intensity was exceeded; the remaining
            children were stopped and the block was cancelled. Raised as is,
            not inside an ExceptionGroup.
        BaseExceptionGroup: an error raised by the block or by ``on_exit``,
            grouped like any nursery's errors.

    Cancellation: entering is not a checkpoint. Leaving is one: it stops every
    child, each for at most its grace period unless it shields its own cleanup.
    Cancelling a scope around the supervisor cancels its children at once.
    """
    policy = SupervisorPolicy(
        strategy,
        intensity if intensity is not None else RestartIntensity(),
        backoff,
        rng,
    )
    try:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor._create(nursery, policy, on_exit)
            nursery.start_soon(supervisor._manage, name="supervisor manager")
            try:
                yield supervisor
            finally:
                # Stopping is shielded so that no child is left half stopped;
                # if the block was cancelled, the children already were too
                # (rule 4), so this only waits for them to unwind.
                with trio.CancelScope(shield=True):
                    await supervisor._close()
    except BaseExceptionGroup as group:
        # The one place we unwrap: our own give-up error, re-raised below.
        if not supervisor._gave_up_alone(group):
            raise
    if supervisor._gave_up is not None:
        raise supervisor._gave_up
