"""The `async with` side of jobs: `JobGroupContext` (from `job_group()`) and `JobContext`.

Theory of operation
-------------------
Entering opens the job at its requester and sends the requests (after waiting for every worker
to be ready, within the deadline). Inside the block, iterating yields the events the requester
took on delivery, granting credit back as they are read. Leaving waits for every member's
terminal answer, discarding unread events (still granting credit, so a streaming worker is
never stuck), and raises for any outcome short of success. An exception or cancellation inside
the block, or while leaving, cancels every member still working first (see `Requester`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from .._wire.envelope import JobStatus
from .ledger import JobLedger
from .types import JobEvent


class OpenedJob(Protocol):
    """A job in flight at a requester: what the contexts need of it."""

    @property
    def ledger(self) -> JobLedger: ...


class JobHost(Protocol):
    """What the `async with` contexts need of a requester.

    Two requesters implement it: the runtime's Trio `Requester` and the anyio client's, so the
    rules of a job block are written once.
    """

    @property
    def jobs(self) -> dict[str, Any]: ...
    def open(
        self,
        members: tuple[str, ...],
        cancel_on_error: bool,
        timeout: float | None,
        *,
        direct: bool,
    ) -> Any: ...
    async def dispatch(self, job: Any, name: str | None, payload: Any) -> None: ...
    async def wait_for_change(self, job: Any) -> None: ...
    def grant(self, job: Any, member: str) -> None: ...
    def abandon(self, job: Any, reason: str) -> None: ...
    def forget(self, job: Any) -> None: ...


class JobGroupContext:
    """An open job with one or more workers; made by `job_group()` (and `job()`)."""

    def __init__(
        self,
        requester: JobHost,
        members: tuple[str, ...],
        name: str | None,
        payload: Any,
        timeout: float | None,
        cancel_on_error: bool,
    ) -> None:
        self._requester = requester
        self._members = members
        self._name = name
        self._payload = payload
        self._timeout = timeout
        self._cancel_on_error = cancel_on_error
        self._job: OpenedJob | None = None

    def __repr__(self) -> str:
        if self._job is None:
            return f"<{type(self).__name__} [not started, workers: {self._members!r}]>"
        ledger = self._job.ledger
        return (
            f"<{type(self).__name__} [{ledger.job_id}, answered: {len(ledger.statuses)}"
            f"/{len(ledger.members)}]>"
        )

    @property
    def job_id(self) -> str:
        """The job's id (available inside the block)."""
        return self._ledger().job_id

    @property
    def responses(self) -> dict[str, Any]:
        """Worker name -> response, for the members that sent one."""
        return dict(self._ledger().responses)

    @property
    def statuses(self) -> dict[str, JobStatus]:
        """Worker name -> terminal status (complete after the block)."""
        return dict(self._ledger().statuses)

    @property
    def errors(self) -> dict[str, str]:
        """Worker name -> what went wrong, for every member that did not complete."""
        return {name: text for name, text in self._ledger().errors.items() if text}

    def _ledger(self) -> JobLedger:
        if self._job is None:
            raise RuntimeError("the job has not been started; use it with 'async with'")
        return self._job.ledger

    async def __aenter__(self) -> JobGroupContext:
        job = self._requester.open(self._members, self._cancel_on_error, self._timeout, direct=True)
        self._job = job
        await self._requester.dispatch(job, self._name, self._payload)
        return self

    def __aiter__(self) -> AsyncIterator[JobEvent]:
        if self._job is None:
            raise RuntimeError("iterate over a job inside its 'async with' block")
        return _JobEvents(self._requester, self._job)

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        job = self._job
        assert job is not None
        requester = self._requester
        if exc is not None:
            requester.abandon(job, f"the requester's block raised {type(exc).__name__}")
            return
        ledger = job.ledger
        while True:
            while ledger.events:
                # Credits for a discarded event still matter: the worker may be mid-stream.
                requester.grant(job, ledger.events.popleft().actor_name)
            if ledger.done:
                break
            await requester.wait_for_change(job)
        requester.forget(job)
        error = ledger.failure(single=isinstance(self, JobContext))
        if error is not None:
            raise error


class _JobEvents:
    """Iterates a job's events as they arrive; ends when the job is over (or has failed).

    A plain iterator rather than an async generator, so that leaving the loop early (``break``)
    leaves nothing to finalize.
    """

    def __init__(self, requester: JobHost, job: OpenedJob) -> None:
        self._requester = requester
        self._job = job

    def __aiter__(self) -> _JobEvents:
        return self

    async def __anext__(self) -> JobEvent:
        job = self._job
        ledger = job.ledger
        while not ledger.events:
            if ledger.done or ledger.failed or ledger.job_id not in self._requester.jobs:
                raise StopAsyncIteration
            await self._requester.wait_for_change(job)
        event = ledger.events.popleft()
        self._requester.grant(job, event.actor_name)
        return event


class JobContext(JobGroupContext):
    """An open job with one worker; made by `job()`."""

    @property
    def response(self) -> Any:
        """The worker's response (after the block)."""
        return self._ledger().responses.get(self._members[0])

    @property
    def status(self) -> JobStatus | None:
        """The worker's terminal status (after the block)."""
        return self._ledger().statuses.get(self._members[0])

    @property
    def actor_name(self) -> str:
        """The worker's name."""
        return self._members[0]

    async def __aenter__(self) -> JobContext:
        await super().__aenter__()
        return self
