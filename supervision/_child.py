"""Child specs and child instances: how one run of a child starts and stops.

A `ChildSpec` says how to start a child; an `Instance` is one run of it, with
its own ``stopping`` event and cancel scope. A restart makes a new instance
from the same spec: an instance is never reused. This module knows how to run
and stop an instance; which instances to start and stop is the supervisor's
business.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from ._policy import Restart

__all__ = ["ChildSpec", "Instance"]

logger = logging.getLogger(__name__)

# After a child outlives its grace period and is cancelled, how long it may
# take to unwind before we warn that it is stuck in shielded cleanup. A child
# without shielded cleanup unwinds in a few scheduler passes, well within it.
_CANCEL_SETTLE = 0.1


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class ChildSpec:
    """How to start, restart and stop one supervised child.

    The supervisor calls ``start`` afresh for every (re)start, as
    ``await nursery.start(start, stopping)``. ``start`` must call
    ``task_status.started(value)`` once it is ready (`Supervisor.start_child`
    returns the value) and should return soon after ``stopping`` is set.
    Returning or raising on its own is an exit that the supervisor's policy
    decides on.

    Raises:
        ValueError: if ``shutdown`` is negative.
    """

    name: str
    """Unique among the supervisor's children; used in logs and decisions."""

    start: Callable[..., Awaitable[object]]
    """An async function ``start(stopping: trio.Event, *, task_status)``."""

    restart: Restart = Restart.PERMANENT
    """When the child is restarted after it ends on its own."""

    shutdown: float = attrs.field(default=5.0, validator=_non_negative)
    """Grace period, in seconds, between setting ``stopping`` and cancelling."""

    label: str | None = None
    """How log records name the child, when its ``name`` is a key meant for the supervisor
    only (for example ``worker#12``, unique per spawn); None: the ``name``."""

    @property
    def display_name(self) -> str:
        """The name log records use: `label`, or `name` without one."""
        return self.label if self.label is not None else self.name


@attrs.define(eq=False)
class Instance:
    """One run of a child.

    `stop` ends it gracefully; cancelling the scopes around the supervisor's
    nursery cancels it at once.
    """

    spec: ChildSpec
    stopping: trio.Event = attrs.field(factory=trio.Event)
    """Set to ask the child to end."""

    finished: trio.Event = attrs.field(factory=trio.Event)
    """Set once the child's ``start`` function has returned or raised."""

    cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    started: bool = False
    """Whether the child called ``task_status.started()``."""

    stop_requested: bool = False
    """Whether `stop` was called: the exit that follows was asked for."""

    value: object = None
    """What the child passed to ``task_status.started()``."""

    @property
    def running(self) -> bool:
        """Whether the child has started and not yet finished."""
        return self.started and not self.finished.is_set()

    async def run(
        self,
        report: Callable[[Instance, Exception | None], None],
        *,
        task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the child's ``start`` function, then report how it ended.

        Args:
            report: called with the instance and its error (None for a normal
                return) once a started child has ended without raising a
                BaseException such as Cancelled.
            task_status: passed on to the child, which decides when the
                instance has started.

        Raises:
            Exception: whatever the child raised before it started: like
                ``nursery.start``, the error belongs to whoever started it.
        """
        error: Exception | None = None
        try:
            with self.cancel_scope:
                await self.spec.start(self.stopping, task_status=_Status(self, task_status))
        except Exception as exc:
            if not self.started:
                logger.warning("child %r failed to start", self.spec.display_name, exc_info=exc)
                raise
            error = exc
        finally:
            self.finished.set()
        if not self.started:
            logger.warning(
                "child %r returned without calling task_status.started()", self.spec.display_name
            )
            return
        report(self, error)

    async def stop(self) -> None:
        """Stop the child: set ``stopping``, wait out its grace period, then cancel it.

        If the cancelled child still runs shielded cleanup, log a warning
        naming it and keep waiting: Trio cannot cut shielded code short.

        Cancellation: shielded, so that a child is never left half stopped.
        """
        if self.finished.is_set():
            return
        name = self.spec.display_name
        grace = self.spec.shutdown
        self.stop_requested = True
        self.stopping.set()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(grace):
                await self.finished.wait()
            if self.finished.is_set():
                return
            self.cancel_scope.cancel(
                reason=f"child {name!r} did not stop within its {grace}s shutdown grace period"
            )
            with trio.move_on_after(_CANCEL_SETTLE):
                await self.finished.wait()
            if not self.finished.is_set():
                logger.warning(
                    "child %r did not stop within its %ss shutdown grace period; "
                    "waiting for its shielded cleanup",
                    name,
                    grace,
                )
                await self.finished.wait()


@attrs.define(eq=False)
class _Status:
    """The ``task_status`` a child sees: records the start, then passes it on."""

    _instance: Instance
    _task_status: trio.TaskStatus[object]

    def started(self, value: object = None) -> None:
        self._task_status.started(value)
        self._instance.started = True
        self._instance.value = value
