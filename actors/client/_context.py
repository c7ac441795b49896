"""The `async with` side of the client's jobs: `ClientJobGroup` and `ClientJob`.

The twins of `actors.JobGroupContext` and `actors.JobContext`, with the same rules: entering
waits for every worker to be ready and sends; iterating yields events as they arrive, granting
credit back as they are read; leaving waits for every member's terminal answer (discarding
unread events, still granting their credit) and raises for any outcome short of success. An
exception or cancellation inside the block, or while leaving, cancels every member still
working before it goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .._jobs.ledger import JobLedger
from .._jobs.types import JobEvent
from .._wire.envelope import JobStatus
from ._requester import ClientOpenJob, ClientRequester


class ClientJobGroup:
    """An open job with one or more workers, made by `Client.job_group` (and `Client.job`).

    ``async with client.job_group("a", "b", payload=...) as g:`` then ``async for event in
    g``; after the block `responses`, `statuses` and `errors` hold every member's outcome.

    Cancellation: entering and leaving are checkpoints; a cancellation (asyncio's or Trio's)
    at either, or in the block, cancels the job's workers and goes on as itself.
    """

    def __init__(
        self,
        requester: ClientRequester,
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
        self._job: ClientOpenJob | None = None

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

    async def __aenter__(self) -> ClientJobGroup:
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
        try:
            while True:
                while ledger.events:
                    # Credits for a discarded event still matter: the worker may be mid-stream.
                    requester.grant(job, ledger.events.popleft().actor_name)
                if ledger.done:
                    break
                requester.check_deadline(job)
                await job.changed.wait()
        except BaseException as error:
            requester.abandon(job, f"the requester was interrupted ({type(error).__name__})")
            raise
        requester.forget(job)
        failure = ledger.failure(single=isinstance(self, ClientJob))
        if failure is not None:
            raise failure


class _JobEvents:
    """Iterates a job's events as they arrive; ends when the job is over (or has failed).

    A plain iterator rather than an async generator, so that leaving the loop early (``break``)
    leaves nothing to finalize.
    """

    def __init__(self, requester: ClientRequester, job: ClientOpenJob) -> None:
        self._requester = requester
        self._job = job

    def __aiter__(self) -> _JobEvents:
        return self

    async def __anext__(self) -> JobEvent:
        job = self._job
        ledger = job.ledger
        try:
            while not ledger.events:
                if ledger.done or ledger.failed or job.ledger.job_id not in self._requester.jobs:
                    raise StopAsyncIteration
                self._requester.check_deadline(job)
                await job.changed.wait()
        except StopAsyncIteration:
            raise
        except BaseException as error:
            self._requester.abandon(job, f"the requester was interrupted ({type(error).__name__})")
            raise
        event = ledger.events.popleft()
        self._requester.grant(job, event.actor_name)
        return event


class ClientJob(ClientJobGroup):
    """An open job with one worker, made by `Client.job`; adds `response` and `status`."""

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

    async def __aenter__(self) -> ClientJob:
        await super().__aenter__()
        return self
