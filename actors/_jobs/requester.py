"""Jobs, requester side: `job()`, `job_group()`, `request_job*()`, `cancel_job()`.

Theory of operation
-------------------
Each job a requester opens is a `_JobState` keyed by job id. Worker answers are taken on
delivery (`_take_reply`), never through the requester's mailbox loop, so a handler can await a
job without deadlocking its own actor. Jobs opened with `job()`/`job_group()` consume their
events directly; fire-and-forget jobs (`request_job*`) hand them to the mailbox, where the
`on_job_*` hooks run in order (the system, which has no mailbox, runs its hooks in one task of
its own nursery, in the same order).

Rule 1: one deadline. `timeout=` and any enclosing Trio deadline make one absolute deadline; it
bounds waiting for readiness and for answers, travels with each request as the worker's budget,
and however it expires the requester sees `JobTimeout`, after the workers were cancelled.

Rule 2: nothing left running. Leaving the block by an exception or cancellation, including
while waiting in ``__aexit__``, cancels every member still working before propagating.

Rule 3: one outcome per member, never lossy. A member settles once; a second terminal answer
(a worker that answered from its cleanup and was also reported gone) is dropped. A member that
ends ERROR or FAILED, or CANCELLED without the requester asking (its worker stopped), fails the
job: with ``cancel_on_error`` the others are cancelled at once, and a group that did not
complete raises `JobGroupError` (a cancel without a reason included).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._wire.envelope import (
    Envelope,
    JobCancel,
    JobCredit,
    JobRequestMessage,
    JobResponseMessage,
    JobStatus,
    JobStreamData,
    JobStreamEnd,
    JobStreamStart,
    JobUpdateMessage,
    JobUpdateRequest,
)
from .._exceptions import ActorNotFound
from .._jobs.types import (
    CREDIT_WINDOW,
    DEADLINE_PASSED,
    JobEvent,
    JobEventType,
    JobResponse,
    JobResult,
    JobTimeout,
)

if TYPE_CHECKING:
    from .._jobs.context import JobContext, JobGroupContext
    from .._runtime.system import ActorSystem

logger = logging.getLogger(__name__)

REPLY_TYPES = (
    JobResponseMessage,
    JobUpdateMessage,
    JobStreamStart,
    JobStreamData,
    JobStreamEnd,
)
_EVENT_TYPES: dict[type, JobEventType] = {
    JobUpdateMessage: JobEventType.UPDATE,
    JobStreamStart: JobEventType.STREAM_START,
    JobStreamData: JobEventType.STREAM_DATA,
    JobStreamEnd: JobEventType.STREAM_END,
}
_ERROR_STATUSES = (JobStatus.ERROR, JobStatus.FAILED)


@attrs.define(eq=False)
class _JobState:
    job_id: str
    members: tuple[str, ...]
    cancel_on_error: bool
    direct: bool
    deadline: float
    statuses: dict[str, JobStatus] = attrs.field(factory=dict)
    responses: dict[str, Any] = attrs.field(factory=dict)
    errors: dict[str, str | None] = attrs.field(factory=dict)
    sent: set[str] = attrs.field(factory=set)
    unread: dict[str, int] = attrs.field(factory=dict)
    first_error: str | None = None
    cancelling: bool = False
    changed: trio.Event = attrs.field(factory=trio.Event)
    events: deque[JobEvent] | None = None
    """Unread events of a job opened with `job()`/`job_group()` (None for hooks)."""

    @property
    def done(self) -> bool:
        return len(self.statuses) == len(self.members)

    def pending(self) -> list[str]:
        return [name for name in self.members if name not in self.statuses]

    def settle(self, name: str, status: JobStatus, response: Any, error: str | None) -> bool:
        if name not in self.members or name in self.statuses:
            return False
        self.statuses[name] = status
        if response is not None or status is JobStatus.COMPLETED:
            self.responses[name] = response
        self.errors[name] = error
        if self.first_error is None and self._is_failure(status):
            self.first_error = name
            self.wake()
        elif len(self.statuses) == len(self.members):
            # Waiters only care about the end, a failure or an event: waking them for every
            # member's answer would cost a trip through the scheduler per member.
            self.wake()
        return True

    def _is_failure(self, status: JobStatus) -> bool:
        # ERROR and FAILED always fail the job. CANCELLED does too when the requester did not
        # ask for it (the worker stopped) and the deadline has not passed (that is a timeout).
        if status in _ERROR_STATUSES:
            return True
        return (
            status is JobStatus.CANCELLED
            and not self.cancelling
            and trio.current_time() < self.deadline
        )

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


def _job_timeout(state: _JobState) -> JobTimeout:
    # Members the deadline cut short: cancelled by the requester when it passed, or by their
    # own copy of the deadline a moment before the requester saw it.
    waiting = [m for m in state.members if state.errors.get(m) == DEADLINE_PASSED]
    return JobTimeout(
        f"job {state.job_id} timed out; waiting on "
        + (", ".join(repr(member) for member in waiting) or "nobody"),
        job_id=state.job_id,
        statuses=state.statuses,
        responses=state.responses,
        errors=state.errors,
    )


class JobRequesterMixin:
    """The requester half of `Actor` and `ActorSystem`."""

    def _init_jobs(self) -> None:
        self._requests: dict[str, _JobState] = {}
        # The system has no mailbox: the answers to its fire-and-forget jobs queue here, and
        # one task in its nursery runs their hooks in arrival order.
        self._hook_replies: deque[Envelope] = deque()
        self._hook_pump_running = False

    @property
    def _requester_name(self) -> str:
        return self._system_ref.requester_address(self)

    @property
    def _system_ref(self) -> ActorSystem:
        return self.system  # type: ignore[attr-defined, no-any-return]

    # --- public API --------------------------------------------------------------------------

    def job(
        self,
        actor_name: str,
        *,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,
    ) -> JobContext:
        """Dispatch a job to one worker: ``async with self.job("w", payload=...) as j:``.

        Entering waits for the worker to be ready and sends the request; ``async for event in
        j`` yields its updates and stream events; leaving waits for its answer (`j.response`,
        `j.status`).

        Raises (on leaving):
            JobError: if the worker answered ERROR, FAILED or CANCELLED.
            JobTimeout: if the deadline passed first (the worker was cancelled).
        """
        from .._jobs.context import JobContext

        return JobContext(self, (actor_name,), name, payload, timeout, True)

    def job_group(
        self,
        *actor_names: str,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,
        cancel_on_error: bool = True,
    ) -> JobGroupContext:
        """Dispatch one job to many workers at once; see `job`.

        ``g.responses`` and ``g.statuses`` map each worker's name to its outcome.

        Raises (on leaving):
            JobGroupError: with ``cancel_on_error`` (the default), when a member did not
                complete: it answered ERROR or FAILED, or CANCELLED because its worker stopped
                (the others were cancelled at once), or the job was cancelled. Every status is
                attached. With ``cancel_on_error=False`` worker outcomes do not raise.
            JobTimeout: if the deadline passed first (every member still working was
                cancelled).
        """
        from .._jobs.context import JobGroupContext

        return JobGroupContext(self, actor_names, name, payload, timeout, cancel_on_error)

    async def request_job(
        self,
        actor_name: str,
        *,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's own budget (STYLE section 4)
    ) -> str:
        """Send a job and return its id at once; answers arrive on the `on_job_*` hooks.

        Waits for the worker to be ready first (within `timeout`).

        Raises:
            JobTimeout: if the worker is not ready before the deadline.
        """
        return await self.request_job_group(actor_name, name=name, payload=payload, timeout=timeout)

    async def request_job_group(
        self,
        *actor_names: str,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's own budget (STYLE section 4)
        cancel_on_error: bool = True,
    ) -> str:
        """Send one job to many workers and return its id; answers arrive on the hooks.

        Raises:
            JobTimeout: if a worker is not ready before the deadline.
        """
        state = self._new_state(actor_names, cancel_on_error, timeout, direct=False)
        try:
            await self._dispatch(state, name, payload)
        except BaseException:
            await self._abandon(state, "request was interrupted")
            raise
        return state.job_id

    async def cancel_job(self, job_id: str, reason: str | None = None) -> None:
        """Cancel every member of job `job_id` still working; each answers CANCELLED.

        Unknown or finished jobs are ignored.
        """
        state = self._requests.get(job_id)
        if state is None:
            await trio.lowlevel.checkpoint()
            return
        await self._cancel_members(state, reason or "cancelled by the requester")

    async def request_job_update(self, job_id: str, actor_name: str) -> None:
        """Ask worker `actor_name` for a progress update on `job_id` (it answers with one)."""
        await self._system_ref._send(
            self._requester_name, actor_name, JobUpdateRequest(), job_id=job_id
        )

    # --- fire-and-forget hooks ---------------------------------------------------------------

    async def on_job_response(self, response: JobResponse) -> None:
        """Called for each worker's terminal answer to a `request_job*` job."""

    async def on_job_update(self, event: JobEvent) -> None:
        """Called for each progress update of a `request_job*` job."""

    async def on_job_stream_start(self, event: JobEvent) -> None:
        """Called when a worker of a `request_job*` job starts streaming."""

    async def on_job_stream_data(self, event: JobEvent) -> None:
        """Called for each stream chunk of a `request_job*` job."""

    async def on_job_stream_end(self, event: JobEvent) -> None:
        """Called when a worker of a `request_job*` job ends its stream."""

    async def on_job_completed(self, result: JobResult) -> None:
        """Called once every member of a `request_job*` job has answered."""

    async def on_job_error(self, response: JobResponse) -> None:
        """Called when a member's failure cancels the job (``cancel_on_error``).

        A failure is an ERROR or FAILED answer, or CANCELLED when the requester did not ask
        for it (the worker stopped); a timeout or `cancel_job` is not one.
        """

    # --- internals ---------------------------------------------------------------------------

    def _new_state(
        self,
        members: tuple[str, ...],
        cancel_on_error: bool,
        timeout: float | None,
        *,
        direct: bool,
    ) -> _JobState:
        if not members:
            raise ValueError("a job needs at least one worker name")
        if len(set(members)) != len(members):
            raise ValueError(f"a job group names each worker once, got {members!r}")
        if timeout is not None and (timeout < 0 or math.isnan(timeout)):
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        deadline = trio.current_effective_deadline()
        if timeout is not None:
            deadline = min(deadline, trio.current_time() + timeout)
        state = _JobState(
            self._system_ref._next_job_id(), members, cancel_on_error, direct, deadline
        )
        if direct:
            state.events = deque()
        self._requests[state.job_id] = state
        system = self._system_ref
        if system is not self:
            system._job_parties.add(self)  # type: ignore[arg-type]
        return state

    async def _dispatch(self, state: _JobState, name: str | None, payload: Any) -> None:
        async def send_requests() -> None:
            await self._send_requests(state, name, payload)

        await self._until_deadline(state, send_requests)

    async def _send_requests(self, state: _JobState, name: str | None, payload: Any) -> None:
        system = self._system_ref
        registry = system.registry
        for member in state.members:
            if member not in registry:
                await registry.wait_ready(member)
        for member in state.members:
            budget = None
            if state.deadline != math.inf:
                budget = max(0.0, state.deadline - trio.current_time())
            try:
                await system._send(
                    self._requester_name,
                    member,
                    JobRequestMessage(name=name, payload=payload),
                    job_id=state.job_id,
                    deadline=budget,
                    eager=True,
                )
            except ActorNotFound:
                state.settle(member, JobStatus.FAILED, None, f"worker {member!r} is gone")
                continue
            state.sent.add(member)

    async def _until_deadline(self, state: _JobState, wait: Callable[[], Awaitable[None]]) -> None:
        """Run `wait` under the job's deadline; however the deadline ends it, raise JobTimeout.

        The deadline is the job's own (`timeout=`) or an enclosing one. When an enclosing scope
        has the same deadline, Trio delivers `Cancelled` to that scope rather than ours, so a
        `Cancelled` that arrives once the deadline has passed is a timeout too (Rule 1).
        """
        if state.deadline == math.inf:
            # No deadline anywhere: nothing can time out, so skip the cancel scope.
            await wait()
            return
        try:
            with trio.move_on_at(state.deadline) as scope:
                await wait()
        except trio.Cancelled:
            if trio.current_time() >= state.deadline:
                await self._timed_out(state)
            raise
        if scope.cancelled_caught:
            await self._timed_out(state)

    async def _timed_out(self, state: _JobState) -> None:
        await self._cancel_members(state, DEADLINE_PASSED)
        for member in state.pending():
            state.settle(member, JobStatus.CANCELLED, None, DEADLINE_PASSED)
        self._requests.pop(state.job_id, None)
        raise _job_timeout(state)

    async def _cancel_members(self, state: _JobState, reason: str) -> None:
        state.cancelling = True
        system = self._system_ref
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            for member in state.pending():
                if member in state.sent:
                    await system._send(
                        self._requester_name,
                        member,
                        JobCancel(reason=reason),
                        job_id=state.job_id,
                        urgent=True,
                        missing_ok=True,
                    )

    async def _abandon(self, state: _JobState, reason: str) -> None:
        await self._cancel_members(state, reason)
        for member in state.pending():
            state.settle(member, JobStatus.CANCELLED, None, reason)
        self._requests.pop(state.job_id, None)

    def _take_reply(self, envelope: Envelope) -> bool:
        """Take a worker's answer on delivery; False hands it to the mailbox (hooks)."""
        state = self._requests.get(envelope.job_id or "")
        if state is None:
            return True
        if state.direct:
            self._apply_reply(state, envelope)
            return True
        if self._system_ref is not self:
            return False
        self._queue_hook_reply(envelope)
        return True

    def _queue_hook_reply(self, envelope: Envelope) -> None:
        """Queue an answer for the system's own hooks (the system has no mailbox loop)."""
        nursery = self._system_ref._nursery
        if nursery is None:
            return
        self._hook_replies.append(envelope)
        if not self._hook_pump_running:
            self._hook_pump_running = True
            nursery.start_soon(self._pump_hook_replies, name="system job hooks")

    async def _pump_hook_replies(self) -> None:
        try:
            while self._hook_replies:
                await self._handle_reply(self._hook_replies.popleft())
        finally:
            self._hook_pump_running = False

    def _apply_reply(self, state: _JobState, envelope: Envelope) -> tuple[JobEvent | None, bool]:
        """Record a worker's answer or event; return the event and whether it settled a member.

        A member settles once: a second terminal answer (a worker that answered from its
        cleanup and was also reported gone) is dropped, and so is anything it sends later.
        """
        body = envelope.body
        sender = envelope.sender
        if sender not in state.members or sender in state.statuses:
            return None, False
        if isinstance(body, JobResponseMessage):
            return None, state.settle(sender, body.status, body.response, body.error)
        event = JobEvent(_EVENT_TYPES[type(body)], sender, body.data, state.job_id)
        events = state.events
        if events is not None:
            # Each member has at most CREDIT_WINDOW unread events, plus its STREAM_END, which
            # is a terminal answer and spends no credit; more means a peer ignored its credit.
            if len(events) < (CREDIT_WINDOW + 1) * len(state.members):
                events.append(event)
            else:
                logger.warning(
                    "job %s: %r exceeded its credit; event dropped", state.job_id, sender
                )
        settled = False
        if isinstance(body, JobStreamEnd):
            settled = state.settle(sender, JobStatus.COMPLETED, body.data, None)
        state.wake()
        return event, settled

    async def _grant_credit(self, state: _JobState, member: str) -> None:
        count = state.unread.get(member, 0) + 1
        if count >= CREDIT_WINDOW // 2 and member not in state.statuses:
            state.unread[member] = 0
            await self._system_ref._send(
                self._requester_name,
                member,
                JobCredit(count=count),
                job_id=state.job_id,
                missing_ok=True,
            )
        else:
            state.unread[member] = count

    def _requester_handlers(self) -> dict[type, Callable[[Envelope], Awaitable[None]]]:
        return dict.fromkeys(REPLY_TYPES, self._handle_reply)

    async def _handle_reply(self, envelope: Envelope) -> None:
        state = self._requests.get(envelope.job_id or "")
        if state is None:
            return
        was_done = state.done
        event, settled = self._apply_reply(state, envelope)
        if event is not None:
            hook = {
                JobEventType.UPDATE: self.on_job_update,
                JobEventType.STREAM_START: self.on_job_stream_start,
                JobEventType.STREAM_DATA: self.on_job_stream_data,
                JobEventType.STREAM_END: self.on_job_stream_end,
            }[event.type]
            await hook(event)
            await self._grant_credit(state, envelope.sender)
        sender = envelope.sender
        if settled:
            response = JobResponse(
                state.job_id,
                sender,
                state.statuses[sender],
                state.responses.get(sender),
                state.errors.get(sender),
            )
            await self.on_job_response(response)
            if state.cancel_on_error and state.first_error == sender:
                await self._cancel_members(state, f"{sender!r} failed")
                await self.on_job_error(response)
        if state.done and not was_done:
            self._requests.pop(state.job_id, None)
            await self.on_job_completed(JobResult(state.job_id, state.statuses, state.responses))

    def _worker_gone(self, name: str, *, crashed: bool) -> None:
        """Worker `name` vanished: its pending members end FAILED or CANCELLED at once."""
        status = JobStatus.FAILED if crashed else JobStatus.CANCELLED
        text = f"worker {name!r} {'crashed' if crashed else 'stopped'}"
        for state in list(self._requests.values()):
            if name in state.members and name not in state.statuses:
                if state.direct:
                    state.settle(name, status, None, text)
                else:
                    self._post_reply(state, name, JobResponseMessage(status=status, error=text))
        gone_hook = getattr(self, "_requester_gone_for_worker", None)
        if gone_hook is not None:
            gone_hook(name)

    def _post_reply(self, state: _JobState, name: str, message: JobResponseMessage) -> None:
        system = self._system_ref
        envelope = Envelope(
            id=system._next_id(),
            sender=name,
            recipient=self._requester_name,
            body=message,
            job_id=state.job_id,
        )
        if system is self:
            self._queue_hook_reply(envelope)
        else:
            system._post_envelope(self, envelope)

    async def _end_requests(self) -> None:
        """This requester is ending: cancel every job it still has out."""
        await self._cancel_requests(f"requester {self._requester_name!r} ended")

    async def _cancel_requests(self, reason: str) -> None:
        for state in list(self._requests.values()):
            await self._abandon(state, reason)

    async def _answer_undeliverable(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, JobRequestMessage) and envelope.job_id:
            await self._system_ref._send(
                envelope.recipient or "?",
                envelope.sender,
                JobResponseMessage(
                    status=JobStatus.FAILED, error=f"worker {envelope.recipient!r} is gone"
                ),
                job_id=envelope.job_id,
                missing_ok=True,
            )
