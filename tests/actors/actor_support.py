"""Shared actors for the actor tests (imported by test modules; tests/actors is on sys.path)."""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from actors import Actor, ActorSystem, AgentError, AgentInfo, Envelope


class Note(msgspec.Struct, frozen=True):
    """A user message used throughout the tests."""

    text: str


class Recorder(Actor):
    """An actor that records every hook call into a shared log, in order."""

    def __init__(self, name: str, log: list[str] | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self.log = log if log is not None else []
        self.messages: list[Any] = []
        self.agent_errors: list[AgentError] = []
        self.agent_ready: list[AgentInfo] = []
        self.changed = trio.Event()

    def _record(self, entry: str) -> None:
        self.log.append(entry)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_until(self, predicate: Any) -> None:
        while not predicate():
            await self.changed.wait()

    async def on_ready(self) -> None:
        await super().on_ready()
        self._record(f"{self.name}:ready")

    async def on_finished(self) -> None:
        await super().on_finished()
        self._record(f"{self.name}:finished")

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        self.messages.append(envelope.body)
        self._record(f"{self.name}:message")

    async def on_agent_error(self, error: AgentError) -> None:
        await super().on_agent_error(error)
        self.agent_errors.append(error)
        self._record(f"{self.name}:agent_error:{error.name}")

    async def on_agent_ready(self, info: AgentInfo) -> None:
        await super().on_agent_ready(info)
        self.agent_ready.append(info)
        self._record(f"{self.name}:agent_ready:{info.name}")

    async def on_activated(self, args: Any) -> None:
        await super().on_activated(args)
        self._record(f"{self.name}:activated")

    async def on_deactivated(self) -> None:
        await super().on_deactivated()
        self._record(f"{self.name}:deactivated")


def held_jobs(actor: Actor) -> dict[str, Any]:
    """The jobs `actor` holds as a worker, by id (empty once every job has ended)."""
    worker = actor._worker
    return {} if worker is None else dict(worker.table.held)


def tombstones(actor: Actor) -> dict[str, str | None]:
    """Cancels waiting at `actor` for their request: job id -> reason."""
    worker = actor._worker
    return {} if worker is None else worker.table.pending_cancels()


def open_jobs(requester: Actor | ActorSystem) -> dict[str, Any]:
    """The jobs `requester` has not finished with, by id."""
    component = requester._requester
    return {} if component is None else dict(component.jobs)
