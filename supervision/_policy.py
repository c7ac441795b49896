"""Restart decisions: a pure state machine, fed child exits and the time.

Theory of operation
-------------------

`SupervisorPolicy` knows the children by name, in start order, with their
restart types. The runner tells it each time a child ends on its own
(`ChildExit`) and the current time; it answers with a `Decision` and updates
its own state. It never imports trio and never reads a clock, so tests drive
it with plain floats, the way h11's `ConnectionState` is driven without
sockets. The rules follow Erlang/OTP's supervisor:

Rule 1 (restart types). A PERMANENT child is always restarted. A TRANSIENT
child is restarted only after a crash, not after a normal exit. A TEMPORARY
child is never restarted. A child that is not restarted leaves the policy and
the decision is IGNORE: its siblings are left alone.

Rule 2 (strategies). ONE_FOR_ONE restarts only the child that ended.
ONE_FOR_ALL stops every other child and restarts them all. REST_FOR_ONE stops
the children started after the one that ended, and restarts it and them.
Siblings are stopped in reverse start order and everything is restarted in
start order. Start order is the order of `add_child` calls; a restart keeps a
child's place.

Rule 3 (siblings stopped by a group restart). As in OTP, a TEMPORARY sibling
that is stopped as part of a group is not restarted: it leaves the policy.
PERMANENT and TRANSIENT siblings are restarted, since they did not end of
their own accord.

Rule 4 (intensity). Each restart is recorded at the time it is decided. A
record stays in the window while ``now - within <= time``, boundary included
as in OTP. When a restart would make more than `max_restarts` records in the
window, the decision is GIVE_UP instead: the runner stops every child and
fails. The window is shared by all children, because the question it answers
is "is this supervisor making progress?", not "is this child?".

Rule 5 (backoff). The attempt number handed to `Backoff.delay` is the number
of restarts already in the window before this one, so the delay grows while
crashes come quickly and resets to `Backoff.initial` once the window has
emptied. No separate "ran long enough" timer is kept.
"""

from __future__ import annotations

import enum
import random

import attrs

from ._backoff import Backoff

__all__ = [
    "Action",
    "ChildExit",
    "Decision",
    "Restart",
    "RestartIntensity",
    "Strategy",
    "SupervisorPolicy",
]


class Restart(enum.Enum):
    """When a child is restarted after it ends on its own."""

    PERMANENT = "permanent"
    """Always restarted, whether it crashed or returned."""

    TRANSIENT = "transient"
    """Restarted only after a crash; a normal return ends it for good."""

    TEMPORARY = "temporary"
    """Never restarted."""


class Strategy(enum.Enum):
    """Which children are restarted together when one of them ends."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that ended: for children that do not depend on each other."""

    ONE_FOR_ALL = "one_for_all"
    """Every child: for children that cannot work without each other."""

    REST_FOR_ONE = "rest_for_one"
    """The child that ended and every child started after it: for a chain in
    which each child depends on those started before it."""


class Action(enum.Enum):
    """What a `Decision` asks the runner to do."""

    IGNORE = "ignore"
    """Nothing: the child is not restarted and its siblings are left alone."""

    RESTART = "restart"
    """Stop `Decision.stop`, wait `Decision.delay`, then start `Decision.restart`."""

    GIVE_UP = "give_up"
    """Restart intensity is exceeded: stop every child and fail the supervisor."""


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class RestartIntensity:
    """How many restarts a supervisor may make before it gives up.

    More than `max_restarts` restarts within any `within` seconds means the
    children keep failing however often they are restarted, and the
    supervisor escalates to its own parent instead.

    Raises:
        ValueError: if `max_restarts` is negative or `within` is not positive,
            like ``within must be > 0, got 0``.
    """

    max_restarts: int = attrs.field(default=3, validator=_non_negative)
    """Restarts allowed inside the window; 0 gives up on the first one."""

    within: float = attrs.field(default=5.0, validator=_positive)
    """Length of the window, in seconds."""


@attrs.frozen
class ChildExit:
    """A child ended on its own: the event a `SupervisorPolicy` decides on."""

    name: str
    """The child's name."""

    error: BaseException | None
    """What it raised, or None if it returned normally."""


@attrs.frozen
class Decision:
    """What to do about one `ChildExit`, as decided by `SupervisorPolicy.decide`."""

    action: Action
    """The kind of decision."""

    restart: tuple[str, ...] = ()
    """Children to start again, in start order. Empty unless RESTART."""

    stop: tuple[str, ...] = ()
    """Siblings to stop first, in the order to stop them: reverse start order.

    With GIVE_UP, every other child. A name may belong to a child that is not
    running any more; stopping it is then a no-op."""

    delay: float = 0.0
    """Seconds to wait after stopping and before restarting (backoff)."""

    history: tuple[float, ...] = ()
    """Times of the restarts in the intensity window, oldest first, including
    this one if it is a RESTART or GIVE_UP."""


def _needs_restart(restart: Restart, event: ChildExit) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return event.error is not None
    return False


@attrs.define(eq=False, repr=False)
class SupervisorPolicy:
    """Decides what a supervisor does when one of its children ends.

    A pure state machine (see the module's theory of operation): it holds the
    children's names and restart types and the recent restart times, and
    `decide` turns a `ChildExit` and the current time into a `Decision`.

    Its fields are also its constructor's arguments, in this order.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    """Which children are restarted together."""

    intensity: RestartIntensity = attrs.field(factory=RestartIntensity)
    """How many restarts are allowed before giving up."""

    backoff: Backoff | None = None
    """The delay schedule between restarts; None restarts at once."""

    rng: random.Random | None = None
    """The source of backoff jitter; pass a seeded `random.Random` for
    reproducible delays (None: the `random` module's global generator)."""

    _children: dict[str, Restart] = attrs.field(init=False, factory=dict)
    _restarts: list[float] = attrs.field(init=False, factory=list)

    def __repr__(self) -> str:
        children = ", ".join(
            f"{name!r}: {restart.name}" for name, restart in self._children.items()
        )
        return (
            f"<SupervisorPolicy [{self.strategy.name}, children: {{{children}}}, "
            f"restarts: {len(self._restarts)}/{self.intensity.max_restarts} "
            f"within {self.intensity.within}s]>"
        )

    @property
    def children(self) -> tuple[str, ...]:
        """Names of the children the policy knows, in start order."""
        return tuple(self._children)

    def knows(self, name: str) -> bool:
        """Whether a child of that name is known (constant time, unlike `children`)."""
        return name in self._children

    def add_child(self, name: str, restart: Restart) -> None:
        """Add a child after all the others in start order.

        Raises:
            ValueError: if a child with that name is already known.
        """
        if name in self._children:
            raise ValueError(f"a child named {name!r} is already supervised")
        self._children[name] = restart

    def remove_child(self, name: str) -> None:
        """Forget a child, for example because it was stopped on purpose.

        Raises:
            KeyError: if no child has that name.
        """
        if name not in self._children:
            raise KeyError(self._unknown(name))
        del self._children[name]

    def decide(self, event: ChildExit, now: float) -> Decision:
        """Decide what to do about a child that ended on its own.

        Call it only for exits the child made itself, not for children the
        runner stopped. After a GIVE_UP the policy should not be used further.

        Args:
            event: which child ended and how.
            now: the current time in seconds, on any monotonic clock.

        Returns:
            The decision. Children that leave the policy as a result (see
            rules 1 and 3) are already removed when it returns.

        Raises:
            KeyError: if no child has the event's name.
        """
        if event.name not in self._children:
            raise KeyError(self._unknown(event.name))
        self._forget_restarts_before(now - self.intensity.within)
        if not _needs_restart(self._children[event.name], event):
            del self._children[event.name]
            return Decision(Action.IGNORE, history=tuple(self._restarts))

        self._restarts.append(now)
        history = tuple(self._restarts)
        if len(history) > self.intensity.max_restarts:
            others = [name for name in self._children if name != event.name]
            return Decision(Action.GIVE_UP, stop=tuple(reversed(others)), history=history)

        group = self._group(event.name)
        stop = tuple(reversed([name for name in group if name != event.name]))
        for sibling in stop:
            if self._children[sibling] is Restart.TEMPORARY:
                del self._children[sibling]
        restart = tuple(name for name in group if name in self._children)
        delay = 0.0
        if self.backoff is not None:
            delay = self.backoff.delay(len(history) - 1, self.rng)
        return Decision(Action.RESTART, restart=restart, stop=stop, delay=delay, history=history)

    def _group(self, name: str) -> list[str]:
        """Return the children restarted together with `name`, in start order."""
        names = list(self._children)
        if self.strategy is Strategy.ONE_FOR_ALL:
            return names
        if self.strategy is Strategy.REST_FOR_ONE:
            return names[names.index(name) :]
        return [name]

    def _forget_restarts_before(self, horizon: float) -> None:
        self._restarts = [time for time in self._restarts if time >= horizon]

    def _unknown(self, name: str) -> str:
        known = ", ".join(repr(child) for child in self._children) or "none"
        return f"no child named {name!r} is supervised; known: {known}"
