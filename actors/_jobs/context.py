"""The `async with` side of jobs: `JobGroupContext` (from `job_group()`) and `JobContext`.

Theory of operation
-------------------
Entering registers the job with its requester and sends the requests (after waiting for every
worker to be ready, within the deadline). Inside the block, iterating yields the events the
requester took on delivery, granting credit back to each worker as they are read. Leaving
waits for every member's terminal answer, discarding unread events (still granting credit, so
a streaming worker is never stuck), and raises for any outcome short of success. An exception
or cancellation inside the block, or while leaving, cancels every member still working first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .._wire.envelope import JobCredit, JobStatus
from .._jobs.types import CREDIT_WINDOW, DEADLINE_PASSED, JobError, JobEvent, JobGroupError
from .._jobs.requester import JobRequesterMixin, _job_timeout, _JobState


class JobGroupContext:
    """An open job with one or more workers; made by `job_group()` (and `job()`)."""

    def __init__(
        self,
        requester: JobRequesterMixin,
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
        self._state: _JobState | None = None

    def __repr__(self) -> str:
        state = self._state
        if state is None:
            return f"<{type(self).__name__} [not started, workers: {self._members!r}]>"
        return (
            f"<{type(self).__name__} [{state.job_id}, answered: {len(state.statuses)}"
            f"/{len(state.members)}]>"
        )

    @property
    def job_id(self) -> str:
        """The job's id (available inside the block)."""
        return self._require().job_id

    @property
    def responses(self) -> dict[str, Any]:
        """Worker name -> response, for the members that sent one."""
        return dict(self._require().responses)

    @property
    def statuses(self) -> dict[str, JobStatus]:
        """Worker name -> terminal status (complete after the block)."""
        return dict(self._require().statuses)

    def _require(self) -> _JobState:
        if self._state is None:
            raise RuntimeError("the job has not been started; use it with 'async with'")
        return self._state

    async def __aenter__(self) -> JobGroupContext:
        state = self._requester._new_state(
            self._members, self._cancel_on_error, self._timeout, direct=True
        )
        self._state = state
        try:
            await self._requester._dispatch(state, self._name, self._payload)
        except BaseException:
            await self._requester._abandon(state, "job was interrupted while starting")
            raise
        return self

    def __aiter__(self) -> AsyncIterator[JobEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[JobEvent]:
        state = self._require()
        events = state.events
        assert events is not None
        while True:
            if not events:
                if state.done or self._failed(state):
                    return
                await self._wait(state.changed.wait)
                continue
            event = events.popleft()
            await self._requester._grant_credit(state, event.actor_name)
            yield event

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        state = self._require()
        requester = self._requester
        try:
            if exc is None:
                await self._wait(self._until_settled)
        except BaseException:
            await requester._abandon(state, "the requester's block was cancelled")
            raise
        if exc is not None:
            await requester._abandon(state, f"the requester's block raised {type(exc).__name__}")
            return
        requester._requests.pop(state.job_id, None)
        self._raise_for_outcome(state)

    async def _until_settled(self) -> None:
        state = self._require()
        cancelled_rest = False
        while not state.done:
            self._discard_events(state)
            if self._failed(state) and not cancelled_rest:
                cancelled_rest = True
                await self._requester._cancel_members(state, f"{state.first_error!r} failed")
                # Answers may have arrived while the cancels went out: look again before
                # waiting for the next change.
                continue
            await state.changed.wait()
        self._discard_events(state)

    def _discard_events(self, state: _JobState) -> None:
        events = state.events
        assert events is not None
        while events:
            event = events.popleft()
            state.unread[event.actor_name] = state.unread.get(event.actor_name, 0) + 1
            # Credits for a discarded event still matter: the worker may be mid-stream.
            if state.unread[event.actor_name] >= CREDIT_WINDOW // 2:
                self._credit_later(state, event.actor_name)

    def _credit_later(self, state: _JobState, member: str) -> None:
        count = state.unread.pop(member, 0)
        system = self._requester._system_ref
        system._post_control(
            self._requester._requester_name, member, JobCredit(count=count), state.job_id
        )

    def _failed(self, state: _JobState) -> bool:
        return self._cancel_on_error and state.first_error is not None

    async def _wait(self, wait: Callable[[], Awaitable[None]]) -> None:
        await self._requester._until_deadline(self._require(), wait)

    def _raise_for_outcome(self, state: _JobState) -> None:
        failed = [n for n in state.members if state.statuses.get(n) is not JobStatus.COMPLETED]
        if not failed:
            return
        if any(state.errors.get(member) == DEADLINE_PASSED for member in failed):
            # The workers' copy of the deadline ended the job before the requester looked:
            # still a timeout (Rule 1).
            raise _job_timeout(state)
        if isinstance(self, JobContext):
            member = state.members[0]
            status = state.statuses[member]
            error = state.errors.get(member) or ""
            raise JobError(
                f"job {state.job_id} on {member!r} ended {status.name}"
                + (f": {error}" if error else ""),
                job_id=state.job_id,
                statuses=state.statuses,
                responses=state.responses,
                errors=state.errors,
            )
        if not self._cancel_on_error:
            # Worker outcomes do not raise; every member's status is in `g.statuses`.
            return
        first = state.first_error or failed[0]
        detail = f"{first!r} ended {state.statuses[first].name}"
        detail += f" ({state.errors.get(first) or 'no detail'})"
        if state.first_error is not None:
            detail += "; the other members were cancelled"
        raise JobGroupError(
            f"job {state.job_id}: {detail}",
            job_id=state.job_id,
            statuses=state.statuses,
            responses=state.responses,
            errors=state.errors,
        )


class JobContext(JobGroupContext):
    """An open job with one worker; made by `job()`."""

    @property
    def response(self) -> Any:
        """The worker's response (after the block)."""
        return self._require().responses.get(self._members[0])

    @property
    def status(self) -> JobStatus | None:
        """The worker's terminal status (after the block)."""
        return self._require().statuses.get(self._members[0])

    @property
    def actor_name(self) -> str:
        """The worker's name."""
        return self._members[0]

    async def __aenter__(self) -> JobContext:
        await super().__aenter__()
        return self
