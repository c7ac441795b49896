"""What a client calls back: `JobHooks` for fire-and-forget jobs, `ClientWatch` for readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

from .._jobs.types import JobEvent, JobResponse, JobResult
from .._wire.envelope import AgentInfo, Envelope


class JobHooks:
    """Callbacks for the answers of `Client.request_job` jobs; subclass and override.

    They are the client's twins of an actor's ``on_job_*`` hooks: one task of the client runs
    them, one at a time, in arrival order, on the host event loop (asyncio or Trio), and every
    member of a job gets exactly one `on_job_response`. Credit for an event is granted back to
    its worker only once its hook has returned, so a slow hook slows a streaming worker
    instead of growing a queue. An exception in a hook ends the client's block (it is never
    only logged).
    """

    async def on_job_response(self, response: JobResponse) -> None:
        """Called for each worker's terminal answer (exactly once per member)."""

    async def on_job_update(self, event: JobEvent) -> None:
        """Called for each progress update."""

    async def on_job_stream_start(self, event: JobEvent) -> None:
        """Called when a worker starts streaming."""

    async def on_job_stream_data(self, event: JobEvent) -> None:
        """Called for each stream chunk."""

    async def on_job_stream_end(self, event: JobEvent) -> None:
        """Called when a worker ends its stream."""

    async def on_job_completed(self, result: JobResult) -> None:
        """Called once every member of a job has answered."""

    async def on_job_error(self, response: JobResponse) -> None:
        """Called when a member's failure cancels the job (``cancel_on_error``)."""

    async def on_message(self, envelope: Envelope) -> None:
        """Called for a user message a server actor sent to the client's address."""


WatchCallback = Callable[[AgentInfo], Any]
"""Called with the entry of an actor each time it becomes ready."""


@final
class ClientWatch:
    """A readiness watch made by `Client.watch`; `cancel` it or use it as a ``with`` block."""

    def __init__(self, name: str, callback: WatchCallback, release: Callable[[ClientWatch], None]):
        self.name = name
        """The watched actor's name."""
        self.callback = callback
        """Called with the actor's entry each time it becomes ready."""
        self._release = release
        self.cancelled = False
        """Whether the watch was released."""

    def __repr__(self) -> str:
        return f"<ClientWatch [{self.name!r}{', cancelled' if self.cancelled else ''}]>"

    def cancel(self) -> None:
        """Release the watch: the callback is not called again."""
        if not self.cancelled:
            self.cancelled = True
            self._release(self)

    def __enter__(self) -> ClientWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()
