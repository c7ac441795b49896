"""Registry: one actor system's view of every live actor it knows of, local or remote.

Theory of operation
-------------------
Entries arrive from local actors becoming ready and from peers' broadcasts; they leave when
an actor finishes or its system is lost. Three ways to follow them:

- `wait_ready(name)` waits for an entry; the wait is a plain Trio wait, so it is released when
  the scope that made it exits, whatever the outcome.
- `watch(name, callback)` calls `callback(info)` each time `name` becomes ready (at once if it
  already is) until the returned `Watch` is cancelled. Callbacks are synchronous and must not
  block: the actor runtime uses them to post a notice into the watcher's mailbox.
- `wait_changed(version)` wakes on any change at all (bridges follow activation this way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs
import msgspec
import trio

from .._exceptions import ActorNotFound
from .._wire.envelope import AgentInfo

WatchCallback = Callable[[AgentInfo], None]


@attrs.define(eq=False)
class Watch:
    """A standing request to be told each time an actor becomes ready.

    Cancel it (or leave its `with` block) to release it; the actor runtime releases every
    watch an actor made when that actor finishes.
    """

    name: str
    """The watched actor's name."""
    _callback: WatchCallback
    _registry: Registry
    _active: bool = True

    def cancel(self) -> None:
        """Release the watch; idempotent."""
        if self._active:
            self._active = False
            self._registry._drop_watch(self)

    @property
    def active(self) -> bool:
        """Whether the watch still fires."""
        return self._active

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


@attrs.define(eq=False)
class Registry:
    """Live actors by name, with readiness waits, watches and change notification."""

    _agents: dict[str, AgentInfo] = attrs.field(factory=dict)
    _watches: dict[str, list[Watch]] = attrs.field(factory=dict)
    _waiters: dict[str, list[trio.Event]] = attrs.field(factory=dict)
    _restarting: set[str] = attrs.field(factory=set)
    _abandoned: dict[str, str] = attrs.field(factory=dict)
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _per_system: Counter[str] = attrs.field(factory=Counter)
    version: int = 0
    """Incremented on every change."""

    def __repr__(self) -> str:
        return f"<Registry [agents: {len(self._agents)}, version: {self.version}]>"

    def get(self, name: str) -> AgentInfo | None:
        """Return the entry for `name`, or None."""
        return self._agents.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def names(self) -> list[str]:
        """Return the names of every known live actor."""
        return list(self._agents)

    def agents(self) -> list[AgentInfo]:
        """Return every entry, in registration order."""
        return list(self._agents.values())

    def on_system(self, system: str) -> list[AgentInfo]:
        """Return the entries of actors that live on `system`."""
        return [info for info in self._agents.values() if info.system == system]

    def add(self, info: AgentInfo) -> None:
        """Record `info` (replacing an older entry of that name) and tell waiters and watches.

        A second announcement of the same incarnation (a peer re-announcing its actors when a
        system joins) updates the entry but fires nothing again: watches fire once per start.
        """
        old = self._agents.get(info.name)
        self._agents[info.name] = info
        if old is not None:
            self._forget_one(old.system)
        self._per_system[info.system] += 1
        self._restarting.discard(info.name)
        # The name lives again: a note left for waiters of its previous holder is stale.
        self._abandoned.pop(info.name, None)
        self._bump()
        if old is not None and old.incarnation == info.incarnation:
            return
        for event in self._waiters.pop(info.name, ()):
            event.set()
        for watch in list(self._watches.get(info.name, ())):
            watch._callback(info)

    def remove(self, name: str, *, system: str | None = None) -> AgentInfo | None:
        """Forget `name` (only if it lives on `system`, when given); return the old entry."""
        info = self._agents.get(name)
        if info is None or (system is not None and info.system != system):
            return None
        del self._agents[name]
        self._forget_one(info.system)
        self._bump()
        return info

    def count_on(self, system: str) -> int:
        """How many entries live on `system` (O(1), unlike `on_system`)."""
        return self._per_system.get(system, 0)

    def _forget_one(self, system: str) -> None:
        left = self._per_system[system] - 1
        if left:
            self._per_system[system] = left
        else:
            del self._per_system[system]

    def set_active(self, name: str, active: bool) -> None:
        """Record that `name` became active or inactive."""
        info = self._agents.get(name)
        if info is not None and info.active != active:
            self._agents[name] = msgspec.structs.replace(info, active=active)
            self._bump()

    async def wait_ready(self, name: str) -> AgentInfo:
        """Wait until `name` is registered and ready, and return its entry.

        Raises:
            ActorNotFound: if `name` was restarting and its supervisor gave up on it.

        Cancellation: a checkpoint; cancelling the wait releases it.
        """
        while True:
            info = self._agents.get(name)
            if info is not None:
                await trio.lowlevel.checkpoint()
                return info
            event = trio.Event()
            waiters = self._waiters.setdefault(name, [])
            waiters.append(event)
            try:
                await event.wait()
            finally:
                if not event.is_set():
                    waiters.remove(event)
                    if not waiters:
                        self._waiters.pop(name, None)
            reason = self._abandoned.get(name)
            if reason is not None and name not in self._agents:
                raise ActorNotFound(name, self.names(), reason=reason)

    def expect_restart(self, name: str) -> None:
        """`name` ended and its supervisor may start it again: jobs wait for the new one."""
        self._restarting.add(name)
        self._abandoned.pop(name, None)

    def restarting(self, name: str) -> bool:
        """Whether `name` is between an instance that ended and one that may start."""
        return name in self._restarting

    def ended_for_good(self, name: str, reason: str) -> None:
        """`name` will not be started again: whoever waits for it is told so at once."""
        was_restarting = name in self._restarting
        self._restarting.discard(name)
        if name in self._agents:
            return
        waiters = self._waiters.pop(name, ())
        if not waiters and not was_restarting:
            return
        self._abandoned[name] = reason
        for event in waiters:
            event.set()
        # Only the waiters of this moment are told; the note goes with them.
        if not waiters:
            self._abandoned.pop(name, None)

    def forget_abandoned(self, name: str) -> None:
        """Drop the note left for waiters of a name that ended for good."""
        self._abandoned.pop(name, None)

    def watch(self, name: str, callback: WatchCallback) -> Watch:
        """Call `callback(info)` each time `name` becomes ready, at once if it already is."""
        watch = Watch(name, callback, self)
        self._watches.setdefault(name, []).append(watch)
        info = self._agents.get(name)
        if info is not None:
            callback(info)
        return watch

    async def wait_changed(self, version: int) -> int:
        """Wait until the registry's version differs from `version`; return the new one."""
        while self.version == version:
            await self._changed.wait()
        await trio.lowlevel.checkpoint()
        return self.version

    @contextmanager
    def watching(self, name: str, callback: WatchCallback) -> Iterator[Watch]:
        """Like `watch`, released when the `with` block exits."""
        watch = self.watch(name, callback)
        try:
            yield watch
        finally:
            watch.cancel()

    def _drop_watch(self, watch: Watch) -> None:
        watches = self._watches.get(watch.name)
        if watches is not None and watch in watches:
            watches.remove(watch)
            if not watches:
                del self._watches[watch.name]

    def watch_count(self) -> int:
        """Return how many watches are active (tests use it to prove they are released)."""
        return sum(len(watches) for watches in self._watches.values())

    def waiter_count(self) -> int:
        """Return how many `wait_ready` calls are waiting."""
        return sum(len(waiters) for waiters in self._waiters.values())

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()
