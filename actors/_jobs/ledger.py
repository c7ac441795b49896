"""The requester's ledger of one job: members, statuses, events, credits, deadline. Pure.

Theory of operation
-------------------
Everything the requester knows about one job lives in one `JobLedger`, and changes only
through its methods, each of which returns what the caller must do (`Decisions`): deliver an
event, report a settled member, cancel members. The ledger does no I/O and never reads a clock:
the caller passes `now`. So it is tested with plain `def` tests, and the Trio component around
it (`Requester`) stays a thin shell that sends what the ledger decides.

Rule 1: one outcome per member. A member settles once; whatever it sends afterwards (a second
terminal answer, a late event, a "worker gone" notice after its real answer) is ignored.

Rule 2: failures are never success. ERROR and FAILED fail the job; so does CANCELLED that the
requester did not ask for (its worker stopped) while the deadline has not passed. The first
failure of a job with ``cancel_on_error`` cancels every other member that is still working.

Rule 3: bounded events. A worker spends one credit per update or stream event and the
requester grants credits back as events are read (or discarded), so at most `CREDIT_WINDOW`
events per member are ever unread.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import attrs

from .._wire.envelope import (
    JobResponseMessage,
    JobStatus,
    JobStreamData,
    JobStreamEnd,
    JobStreamStart,
    JobUpdateMessage,
)
from .types import (
    CREDIT_WINDOW,
    DEADLINE_PASSED,
    JobError,
    JobEvent,
    JobEventType,
    JobGroupError,
    JobResponse,
    JobResult,
    JobTimeout,
)

EVENT_TYPES: dict[type, JobEventType] = {
    JobUpdateMessage: JobEventType.UPDATE,
    JobStreamStart: JobEventType.STREAM_START,
    JobStreamData: JobEventType.STREAM_DATA,
    JobStreamEnd: JobEventType.STREAM_END,
}
"""Wire message type -> the event it becomes at the requester."""

_ALWAYS_FAILURES = (JobStatus.ERROR, JobStatus.FAILED)


@attrs.frozen
class Decisions:
    """What the requester must do after the ledger took something in."""

    event: JobEvent | None = None
    """An update or stream event to hand to the block or the hooks."""
    settled: JobResponse | None = None
    """A member's terminal answer, recorded just now."""
    failure: JobResponse | None = None
    """Set when `settled` is the job's first failure (``on_job_error``)."""
    cancel: tuple[str, ...] = ()
    """Members to send a cancel to."""
    cancel_reason: str | None = None
    """The reason those cancels carry."""
    done: bool = False
    """Every member has settled, and this is the moment it happened."""


NOTHING = Decisions()
"""The decisions for input that changes nothing."""


@attrs.define(eq=False)
class JobLedger:
    """One job at its requester: what was sent, what came back, what is still owed."""

    job_id: str
    """The job's id."""
    members: tuple[str, ...]
    """The workers, in the order the job named them."""
    cancel_on_error: bool
    """Whether the first failure cancels the other members."""
    direct: bool
    """True for a job opened with ``async with`` (events queue here), False for hooks."""
    deadline: float = math.inf
    """The absolute (Trio clock) time by which the job must end."""
    statuses: dict[str, JobStatus] = attrs.field(factory=dict)
    """Member -> terminal status, for members that settled."""
    responses: dict[str, Any] = attrs.field(factory=dict)
    """Member -> response, for members that sent one."""
    errors: dict[str, str | None] = attrs.field(factory=dict)
    """Member -> error text, for members that settled."""
    sent: set[str] = attrs.field(factory=set)
    """Members the request was sent to."""
    events: deque[JobEvent] = attrs.field(factory=deque)
    """Unread events of a direct job."""
    first_failure: str | None = None
    """The member whose failure came first."""
    cancelling: bool = False
    """Whether the requester itself asked the members to stop."""
    _unread: dict[str, int] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        return (
            f"<JobLedger [{self.job_id}, settled: {len(self.statuses)}/{len(self.members)}, "
            f"events: {len(self.events)}]>"
        )

    @property
    def done(self) -> bool:
        """Whether every member has settled."""
        return len(self.statuses) == len(self.members)

    @property
    def failed(self) -> bool:
        """Whether a failure ended the job early (``cancel_on_error`` and a member failed)."""
        return self.cancel_on_error and self.first_failure is not None

    def pending(self) -> list[str]:
        """Members that have not settled yet."""
        return [name for name in self.members if name not in self.statuses]

    def budget(self, now: float) -> float | None:
        """Seconds left before the deadline (None without one); what a request carries."""
        return None if self.deadline == math.inf else max(0.0, self.deadline - now)

    # --- input ------------------------------------------------------------------------------

    def on_sent(self, member: str) -> None:
        """The request reached `member`'s mailbox or its link."""
        self.sent.add(member)

    def on_reply(self, sender: str, body: object, now: float) -> Decisions:
        """Take a worker's answer or event (a job wire message from `sender`)."""
        if sender not in self.members or sender in self.statuses:
            return NOTHING
        if isinstance(body, JobResponseMessage):
            return self._settle(sender, body.status, body.response, body.error, now)
        event_type = EVENT_TYPES.get(type(body))
        if event_type is None:
            return NOTHING
        event = JobEvent(event_type, sender, getattr(body, "data", None), self.job_id)
        if self.direct:
            self.events.append(event)
        if isinstance(body, JobStreamEnd):
            settled = self._settle(sender, JobStatus.COMPLETED, body.data, None, now)
            return attrs.evolve(settled, event=event)
        return Decisions(event=event)

    def on_worker_gone(self, name: str, *, crashed: bool, now: float) -> Decisions:
        """Worker `name` vanished: if it still owed an answer, it settles FAILED/CANCELLED."""
        if name not in self.members or name in self.statuses:
            return NOTHING
        status = JobStatus.FAILED if crashed else JobStatus.CANCELLED
        text = f"worker {name!r} {'crashed' if crashed else 'stopped'}"
        return self._settle(name, status, None, text, now)

    def on_send_failed(self, member: str, now: float, reason: str | None = None) -> Decisions:
        """The request could not be sent: nobody holds that name any more.

        Args:
            reason: why it is gone, when that is known (its supervisor gave up on it, say).
        """
        text = f"worker {member!r} is gone" + (f" ({reason})" if reason else "")
        return self._settle(member, JobStatus.FAILED, None, text, now)

    def cancel(self, reason: str) -> Decisions:
        """The requester asks every member still working to stop."""
        self.cancelling = True
        targets = tuple(member for member in self.pending() if member in self.sent)
        return Decisions(cancel=targets, cancel_reason=reason)

    def abandon(self, reason: str) -> Decisions:
        """Give up on the job: cancel what is working and settle everything CANCELLED."""
        decisions = self.cancel(reason)
        for member in self.pending():
            self.statuses[member] = JobStatus.CANCELLED
            self.errors[member] = reason
        return decisions

    def expire(self) -> Decisions:
        """The deadline passed: cancel what is working; pending members settle CANCELLED."""
        return self.abandon(DEADLINE_PASSED)

    def on_read(self, member: str) -> int:
        """An event of `member` was read or discarded; return credits to grant now (or 0)."""
        count = self._unread.get(member, 0) + 1
        if count >= CREDIT_WINDOW // 2 and member not in self.statuses:
            self._unread[member] = 0
            return count
        self._unread[member] = count
        return 0

    # --- outcome ----------------------------------------------------------------------------

    def result(self) -> JobResult:
        """Every member's outcome (for ``on_job_completed``)."""
        return JobResult(self.job_id, dict(self.statuses), dict(self.responses))

    def timeout_error(self, waiting_for_ready: dict[str, str] | None = None) -> JobTimeout:
        """The `JobTimeout` of this job, saying what each unfinished member was doing.

        Args:
            waiting_for_ready: member -> why it was not sent yet (not registered, not ready).
        """
        waiting_for_ready = waiting_for_ready or {}
        parts = []
        for member in self.members:
            if member in waiting_for_ready:
                parts.append(f"{member!r} {waiting_for_ready[member]}")
            elif self.errors.get(member) == DEADLINE_PASSED:
                parts.append(f"{member!r} was still working")
        detail = "; ".join(parts) or "every member had answered"
        return JobTimeout(
            f"job {self.job_id} timed out: {detail}",
            job_id=self.job_id,
            statuses=self.statuses,
            responses=self.responses,
            errors=self.errors,
        )

    def failure(self, *, single: bool) -> JobError | None:
        """The error a finished direct job raises, or None when it completed.

        Args:
            single: the job was opened with `job()` (one worker) rather than `job_group()`.
        """
        failed = [m for m in self.members if self.statuses.get(m) is not JobStatus.COMPLETED]
        if not failed:
            return None
        if any(self.errors.get(member) == DEADLINE_PASSED for member in failed):
            # The workers' copy of the deadline ended the job before the requester saw it.
            return self.timeout_error()
        if single:
            member = self.members[0]
            status = self.statuses[member]
            error = self.errors.get(member) or ""
            return JobError(
                f"job {self.job_id} on {member!r} ended {status.name}"
                + (f": {error}" if error else ""),
                job_id=self.job_id,
                statuses=self.statuses,
                responses=self.responses,
                errors=self.errors,
            )
        if not self.cancel_on_error:
            return None
        first = self.first_failure or failed[0]
        detail = f"{first!r} ended {self.statuses[first].name}"
        detail += f" ({self.errors.get(first) or 'no detail'})"
        if self.first_failure is not None and len(self.members) > 1:
            detail += "; the other members were cancelled"
        return JobGroupError(
            f"job {self.job_id}: {detail}",
            job_id=self.job_id,
            statuses=self.statuses,
            responses=self.responses,
            errors=self.errors,
        )

    # --- internals --------------------------------------------------------------------------

    def _settle(
        self, member: str, status: JobStatus, response: Any, error: str | None, now: float
    ) -> Decisions:
        self.statuses[member] = status
        if response is not None or status is JobStatus.COMPLETED:
            self.responses[member] = response
        self.errors[member] = error
        settled = JobResponse(self.job_id, member, status, response, error)
        failure = None
        cancel: tuple[str, ...] = ()
        reason = None
        if self.first_failure is None and self._is_failure(status, now):
            self.first_failure = member
            failure = settled
            if self.cancel_on_error:
                reason = f"{member!r} failed"
                cancel = self.cancel(reason).cancel
        return Decisions(
            settled=settled, failure=failure, cancel=cancel, cancel_reason=reason, done=self.done
        )

    def _is_failure(self, status: JobStatus, now: float) -> bool:
        if status in _ALWAYS_FAILURES:
            return True
        return status is JobStatus.CANCELLED and not self.cancelling and now < self.deadline
