"""The worker API of `Actor`: `@job` handlers' answers, updates and streams, and its hooks.

A facade without state, like `JobRequesterAPI`: every method hands over to the `Worker`
component the actor *has* (`_require_worker`). Which handler serves which job name is a class
attribute (`_job_table`), filled in when an `Actor` subclass is defined.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from .._wire.envelope import (
    JobStatus,
    JobStreamData,
    JobStreamStart,
    JobUpdateMessage,
)
from .types import JobCancellation, JobHandlerSpec, JobRequest
from .worker import Worker, current_job


class JobWorkerAPI:
    """Answering jobs; mixed into `Actor` (state lives in its `Worker` component)."""

    _job_table: ClassVar[dict[str | None, tuple[str, JobHandlerSpec]]] = {}

    @property
    def name(self) -> str:
        """The actor's unique name."""
        raise NotImplementedError

    def _require_worker(self) -> Worker:
        raise NotImplementedError

    @property
    def job_id(self) -> str | None:
        """The id of the job the current task is handling, or None outside a job handler."""
        current = current_job.get()
        return current[1] if current is not None and current[0] == self.name else None

    async def on_job_request(self, request: JobRequest[Any]) -> Any:
        """Handle a request that no `@job` handler matches; override for custom routing.

        Answer with a return value or `send_job_response`. The base method does nothing, so
        ``await super().on_job_request(request)`` is safe; an actor that does not override it
        answers such requests ERROR (no handler for that job name).
        """

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        """Called after a job of this worker was cancelled; CANCELLED is answered for you."""

    async def on_job_update_requested(self, request: JobRequest[Any]) -> None:
        """Called when a requester asks for progress; answer with `send_job_update`."""

    async def send_job_response(
        self, job_id: str, response: Any = None, *, status: JobStatus = JobStatus.COMPLETED
    ) -> None:
        """Answer job `job_id` (a terminal answer; later answers are ignored with a warning).

        Raises:
            EncodeError: in strict mode, if `response` cannot cross a process boundary.
        """
        await self._require_worker().respond(job_id, response, status)

    async def send_job_update(self, job_id: str, data: Any = None) -> None:
        """Send a progress update (waits while the requester has `CREDIT_WINDOW` unread)."""
        await self._require_worker().send_event(job_id, JobUpdateMessage(data=data))

    async def send_job_stream_start(self, job_id: str, data: Any = None) -> None:
        """Begin streaming results to the requester."""
        await self._require_worker().send_event(job_id, JobStreamStart(data=data))

    async def send_job_stream_data(self, job_id: str, data: Any = None) -> None:
        """Send one stream chunk (waits while the requester has `CREDIT_WINDOW` unread)."""
        await self._require_worker().send_event(job_id, JobStreamData(data=data))

    async def send_job_stream_end(self, job_id: str, data: Any = None) -> None:
        """End the stream; this completes the job with `data` as its response."""
        await self._require_worker().end_stream(job_id, data)

    def job_handler(
        self, name: str | None
    ) -> tuple[Callable[[JobRequest[Any]], Awaitable[Any]], JobHandlerSpec | None]:
        """The handler for job `name` and its `@job` spec (internal, used by the worker)."""
        entry = self._job_table.get(name)
        if entry is not None:
            return getattr(self, entry[0]), entry[1]
        if type(self).on_job_request is JobWorkerAPI.on_job_request:
            return self._no_handler, None
        return self.on_job_request, None

    async def _no_handler(self, request: JobRequest[Any]) -> Any:
        label = "the default job" if request.name is None else f"job {request.name!r}"
        raise LookupError(f"actor {self.name!r} has no handler for {label}")
