"""Helpers to open a test system, await readiness and capture what actors receive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from transports import MemoryTransport, Transport

from .._runtime.actor import Actor
from .._runtime.system import ActorSystem, open_actor_system
from .._wire.envelope import AgentInfo, Envelope


@asynccontextmanager
async def open_test_system(
    name: str = "test", *, transport: Transport | None = None, grace: float = 0.0
) -> AsyncIterator[ActorSystem]:
    """Open an actor system for a test: strict in-memory transport unless one is given.

    Strict mode makes every envelope round-trip through the codec, so a payload that could
    not cross a process boundary fails the test.
    """
    transport = transport if transport is not None else MemoryTransport(strict=True)
    async with open_actor_system(name, transport=transport, grace=grace) as system:
        yield system


async def wait_ready(system: ActorSystem, *names: str) -> list[AgentInfo]:
    """Wait until every named actor is registered and ready; return their entries in order.

    Wrap it in `trio.fail_after` to bound the wait.
    """
    return [await system.registry.wait_ready(name) for name in names]


@attrs.define(eq=False)
class Capture:
    """What an actor received, recorded in order; made by `capture`."""

    envelopes: list[Envelope] = attrs.field(factory=list)
    """Every user message envelope, in arrival order."""
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def messages(self) -> list[Any]:
        """The message bodies, in arrival order."""
        return [envelope.body for envelope in self.envelopes]

    def record(self, envelope: Envelope) -> None:
        """Record one envelope and wake anyone waiting in `wait_for`."""
        self.envelopes.append(envelope)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> list[Any]:
        """Wait until at least `count` messages arrived; return the bodies."""
        while len(self.envelopes) < count:
            await self._changed.wait()
        return self.messages


def capture(actor: Actor) -> Capture:
    """Record every user message `actor` receives, then pass it to its own `on_message`.

    Call it before the actor starts or at any time after; it wraps the instance's hook.
    """
    recorded = Capture()
    original = actor.on_message

    async def on_message(envelope: Envelope) -> None:
        recorded.record(envelope)
        await original(envelope)

    actor.on_message = on_message  # type: ignore[method-assign]
    return recorded
