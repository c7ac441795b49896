"""The client's requester: the runtime's pure `JobLedger`, driven on anyio.

Theory of operation
-------------------
This is the twin of `actors._jobs.requester.Requester` for the client. Each job the client
opens gets a `JobLedger` (its whole state, pure, shared with the runtime) in a `ClientOpenJob`,
which adds the one thing a ledger cannot hold: the anyio event that wakes the job's waiter.
Answers are taken on delivery by the client's reader (`take_reply`) and never wait.

Rule 1: no cancel scope in the caller's task. A job waits only on its own event, which the
reader (answers), the client (readiness, a dropped link) and one timer task of the client
(the job's own ``timeout=``) set. So the host loop's cancellation is the only one that reaches
a caller's task: an asyncio task cancelled in `job()` sees its own `CancelledError`, and
``asyncio.timeout()`` around a job works as it does around any other await. On Trio, an
enclosing deadline is read when the job opens (`anyio.current_effective_deadline`), so it
travels to the workers, as DESIGN 4 asks.

Rule 2: nothing left running. A wait interrupted by anything (a cancellation, an exception in
the block) abandons the job first: cancels for every member still working are posted (never
awaited, so they cannot be held up) and go out in order after the request.

Rule 3: one outcome per member and credits as events are read, exactly as the ledger decides.
"""

from __future__ import annotations

import heapq
import logging
import math
import secrets
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any, Protocol

import anyio
import attrs

from .._exceptions import ActorStateError
from .._jobs.ledger import Decisions, JobLedger
from .._jobs.types import JobEvent, JobEventType, JobResponse
from .._wire.envelope import (
    Envelope,
    JobCancel,
    JobCredit,
    JobRequestMessage,
    JobUpdateRequest,
)
from ._hooks import JobHooks

logger = logging.getLogger(__name__)


class Wire(Protocol):
    """What the requester needs of the client's link: envelopes out and who is ready."""

    @property
    def address(self) -> str:
        """The name workers answer to."""

    def envelope(
        self,
        recipient: str,
        body: Any,
        *,
        job_id: str | None = None,
        urgent: bool = False,
        deadline: float | None = None,
    ) -> Envelope:
        """Stamp a new envelope from the client."""

    def post(self, envelope: Envelope) -> None:
        """Queue control traffic without waiting (dropped while the link is down)."""

    async def send(self, envelope: Envelope) -> bool:
        """Queue an envelope, waiting for room; False if the link is down."""

    def is_ready(self, name: str) -> bool:
        """Whether the server announced `name` as ready."""

    def describe_unready(self, name: str) -> str:
        """Why `name` is not ready (for a `JobTimeout`)."""


@attrs.define(eq=False)
class ClientOpenJob:
    """A job in flight at the client: its ledger and the event that wakes its waiter."""

    ledger: JobLedger
    """The job's whole state."""
    own_deadline: float = math.inf
    """The deadline of the job's own ``timeout=`` (the ledger's may be an enclosing one)."""
    changed: anyio.Event = attrs.field(factory=anyio.Event)
    """Set (and replaced) whenever something the waiter cares about happened."""

    def wake(self) -> None:
        """Wake whoever waits on this job."""
        self.changed.set()
        self.changed = anyio.Event()


class ClientRequester:
    """Opens the client's jobs and tracks them until they end (see the module docstring)."""

    def __init__(self, wire: Wire, hooks: JobHooks) -> None:
        self._wire = wire
        self._hooks = hooks
        self.jobs: dict[str, ClientOpenJob] = {}
        """Every job that has not ended, by id."""
        self.closed_reason: str | None = None
        """Set once the client has closed; no job opens after that."""
        self._prefix = secrets.token_hex(8) + "-"
        self._ids = count(1)
        self._hook_queue: deque[tuple[str, JobEvent | JobResponse | Envelope]] = deque()
        self._hooks_due = anyio.Event()
        self._timers_changed = anyio.Event()
        self._deadlines: list[tuple[float, str]] = []

    def __repr__(self) -> str:
        return f"<ClientRequester [{self._wire.address!r}, jobs: {len(self.jobs)}]>"

    def check_open(self) -> None:
        """Raise `ActorStateError` if the client can no longer open jobs."""
        if self.closed_reason is not None:
            raise ActorStateError(f"{self._wire.address!r} cannot open jobs: {self.closed_reason}")

    # --- opening ----------------------------------------------------------------------------

    def open(
        self,
        members: tuple[str, ...],
        cancel_on_error: bool,
        timeout: float | None,
        *,
        direct: bool,
    ) -> ClientOpenJob:
        """Register a new job (not yet sent)."""
        self.check_open()
        now = anyio.current_time()
        own = math.inf if timeout is None else now + timeout
        # On Trio this is the enclosing cancel scopes' deadline, which travels to the workers.
        deadline = min(own, anyio.current_effective_deadline())
        job_id = f"{self._prefix}{next(self._ids):x}"
        job = ClientOpenJob(JobLedger(job_id, members, cancel_on_error, direct, deadline=deadline))
        job.own_deadline = own
        self.jobs[job_id] = job
        if own != math.inf:
            heapq.heappush(self._deadlines, (own, job_id))
            self._timers_changed.set()
        return job

    async def dispatch(self, job: ClientOpenJob, name: str | None, payload: Any) -> None:
        """Wait for every member to be ready, then send the request to each.

        Raises:
            JobTimeout: if the job's own timeout passed first (the job is then over).
        """
        ledger = job.ledger
        try:
            while True:
                missing = [
                    m
                    for m in ledger.members
                    if m not in ledger.statuses and not self._wire.is_ready(m)
                ]
                if not missing:
                    break
                self.check_deadline(job)
                await job.changed.wait()
            body = JobRequestMessage(name=name, payload=payload)
            for member in ledger.members:
                if member in ledger.statuses:
                    continue
                envelope = self._wire.envelope(
                    member,
                    body,
                    job_id=ledger.job_id,
                    deadline=ledger.budget(anyio.current_time()),
                )
                if await self._wire.send(envelope) and member not in ledger.statuses:
                    ledger.on_sent(member)
                elif member not in ledger.statuses:
                    now = anyio.current_time()
                    self._settle(job, ledger.on_send_failed(member, now, "the link is down"))
        except BaseException:
            self.abandon(job, "the requester was interrupted")
            raise

    def check_deadline(self, job: ClientOpenJob) -> None:
        """Raise the job's `JobTimeout` if its own timeout has passed (cancelling the workers).

        Raises:
            JobTimeout: if it has.
        """
        if anyio.current_time() < job.own_deadline:
            return
        ledger = job.ledger
        reasons = {
            member: self._wire.describe_unready(member)
            for member in ledger.members
            if member not in ledger.sent and member not in ledger.statuses
        }
        self.apply(job, ledger.expire())
        self.jobs.pop(ledger.job_id, None)
        job.wake()
        raise ledger.timeout_error(reasons)

    async def wait_for_change(self, job: ClientOpenJob) -> None:
        """Wait until `job` changes, checking its own timeout; an interruption abandons it.

        Raises:
            JobTimeout: if the job's own ``timeout=`` passed (the workers were cancelled).
        """
        try:
            self.check_deadline(job)
            await job.changed.wait()
        except BaseException as error:
            self.abandon(job, f"the requester was interrupted ({type(error).__name__})")
            raise

    # --- taking answers ---------------------------------------------------------------------

    def take_reply(self, envelope: Envelope) -> None:
        """Take a worker's answer or event on delivery (called by the client's reader)."""
        job = self.jobs.get(envelope.job_id or "")
        if job is None:
            return
        decisions = job.ledger.on_reply(envelope.sender, envelope.body, anyio.current_time())
        if job.ledger.direct:
            self.apply(job, decisions)
            if decisions.event is not None or decisions.done or decisions.failure is not None:
                job.wake()
            return
        if decisions.event is not None or decisions.settled is not None:
            self.apply(job, attrs.evolve(decisions, event=None))
            self._queue_hooks(job.ledger.job_id, decisions)

    def worker_gone(self, name: str, *, crashed: bool) -> None:
        """Worker `name` vanished: members it still owed an answer settle at once."""
        now = anyio.current_time()
        for job in list(self.jobs.values()):
            self._settle(job, job.ledger.on_worker_gone(name, crashed=crashed, now=now))

    def link_lost(self, known: set[str], *, crashed: bool) -> None:
        """The link dropped: every member that was sent, or was ready, settles at once.

        Members never sent to an actor the server had not announced keep waiting for the
        next connection (within their deadline).
        """
        now = anyio.current_time()
        for job in list(self.jobs.values()):
            ledger = job.ledger
            for member in ledger.pending():
                if member in ledger.sent or member in known:
                    self._settle(job, ledger.on_worker_gone(member, crashed=crashed, now=now))

    def wake_waiting(self) -> None:
        """Something about readiness changed: wake every job (waiters re-check)."""
        for job in self.jobs.values():
            job.wake()

    def _settle(self, job: ClientOpenJob, decisions: Decisions) -> None:
        if decisions.settled is None:
            return
        self.apply(job, decisions)
        if job.ledger.direct:
            job.wake()
        else:
            self._queue_hooks(job.ledger.job_id, decisions)

    def apply(self, job: ClientOpenJob, decisions: Decisions) -> None:
        """Carry out the cancels the ledger decided (posted: they never wait)."""
        for member in decisions.cancel:
            self._wire.post(
                self._wire.envelope(
                    member,
                    JobCancel(reason=decisions.cancel_reason),
                    job_id=job.ledger.job_id,
                    urgent=True,
                )
            )

    def grant(self, job: ClientOpenJob, member: str) -> None:
        """An event of `member` was read or discarded: grant credit back when it is due."""
        credits = job.ledger.on_read(member)
        if credits:
            self._wire.post(
                self._wire.envelope(member, JobCredit(count=credits), job_id=job.ledger.job_id)
            )

    # --- ending -----------------------------------------------------------------------------

    async def cancel_job(self, job_id: str, reason: str | None) -> None:
        """Cancel every member of `job_id` still working (unknown ids are ignored)."""
        job = self.jobs.get(job_id)
        if job is not None:
            self.apply(job, job.ledger.cancel(reason or "cancelled by the requester"))
        await anyio.lowlevel.checkpoint()

    def abandon(self, job: ClientOpenJob, reason: str) -> None:
        """Give up on `job`: cancel its working members and forget it."""
        self.apply(job, job.ledger.abandon(reason))
        self.jobs.pop(job.ledger.job_id, None)
        job.wake()

    def forget(self, job: ClientOpenJob) -> None:
        """The job's block has ended: stop tracking it."""
        self.jobs.pop(job.ledger.job_id, None)

    def close(self, reason: str) -> None:
        """The client is closing: abandon every job and refuse new ones."""
        self.closed_reason = reason
        for job in list(self.jobs.values()):
            self.abandon(job, reason)

    async def request_update(self, job_id: str, actor_name: str) -> None:
        """Ask `actor_name` for a progress update on `job_id`."""
        await self._wire.send(self._wire.envelope(actor_name, JobUpdateRequest(), job_id=job_id))

    # --- service tasks ----------------------------------------------------------------------

    async def run_timers(self) -> None:
        """Wake each job when its own deadline passes (the client runs this in its task group).

        Deadlines wait in a heap; a waiter checks its own deadline before each wait, so a
        wake-up is all the timer owes it. Entries of jobs that ended go when they come due,
        or sooner when they outnumber the open jobs (a busy client stays bounded).
        """
        heap = self._deadlines
        while True:
            now = anyio.current_time()
            while heap and heap[0][0] <= now:
                _, job_id = heapq.heappop(heap)
                job = self.jobs.get(job_id)
                if job is not None:
                    job.wake()
            if len(heap) > 2 * len(self.jobs) + 64:
                heap[:] = [entry for entry in heap if entry[1] in self.jobs]
                heapq.heapify(heap)
            due = heap[0][0] if heap else math.inf
            with anyio.move_on_after(max(0.0, due - now)):
                await self._timers_changed.wait()
            self._timers_changed = anyio.Event()

    def queue_message(self, envelope: Envelope) -> None:
        """A user message for the client: its hook runs in turn with the job hooks."""
        self._hook_queue.append(("", envelope))
        self._hooks_due.set()

    def _queue_hooks(self, job_id: str, decisions: Decisions) -> None:
        if decisions.event is not None:
            self._hook_queue.append((job_id, decisions.event))
        if decisions.settled is not None:
            self._hook_queue.append((job_id, decisions.settled))
        self._hooks_due.set()

    async def run_hooks(self) -> None:
        """Run the hooks of fire-and-forget jobs in arrival order (a task of the client)."""
        while True:
            while self._hook_queue:
                job_id, item = self._hook_queue.popleft()
                await self._run_hook(job_id, item)
            self._hooks_due = anyio.Event()
            await self._hooks_due.wait()

    async def _run_hook(self, job_id: str, item: JobEvent | JobResponse | Envelope) -> None:
        hooks = self._hooks
        if isinstance(item, Envelope):
            await hooks.on_message(item)
            return
        job = self.jobs.get(job_id)
        if isinstance(item, JobEvent):
            hook: Callable[[JobEvent], Any] = {
                JobEventType.UPDATE: hooks.on_job_update,
                JobEventType.STREAM_START: hooks.on_job_stream_start,
                JobEventType.STREAM_DATA: hooks.on_job_stream_data,
                JobEventType.STREAM_END: hooks.on_job_stream_end,
            }[item.type]
            await hook(item)
            if job is not None:
                self.grant(job, item.actor_name)
            return
        await hooks.on_job_response(item)
        if job is None:
            return
        ledger = job.ledger
        if ledger.first_failure == item.actor_name and ledger.cancel_on_error:
            await hooks.on_job_error(item)
        if ledger.done and not any(
            queued_id == job_id and isinstance(queued, JobResponse)
            for queued_id, queued in self._hook_queue
        ):
            self.jobs.pop(job_id, None)
            await hooks.on_job_completed(ledger.result())
