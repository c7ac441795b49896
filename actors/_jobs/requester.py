"""The requester component: opens jobs, takes their answers, and runs the `on_job_*` hooks.

Theory of operation
-------------------
An actor *has* a `Requester`, and so does the actor system (it is a requester too). Each job it
opens gets a `JobLedger` (the job's whole state, pure) wrapped in an `OpenJob` that adds the one
thing a ledger cannot hold: the Trio event that wakes the job's block.

Answers are taken on delivery (`take_reply`, called by the router), never through a mailbox,
so a handler can await a job without deadlocking its own actor, and no answer is ever lost to
a full mailbox. Jobs opened with ``async with`` consume their events in the block; the answers
of fire-and-forget jobs (`request_job*`) queue here and one task of the owner's nursery runs
their hooks, in arrival order, exactly one outcome hook per member.

Rule 1: one deadline (DESIGN 4). ``timeout=`` bounds readiness and the work and ends in
`JobTimeout`; an enclosing Trio deadline travels to the workers as well, and when it fires the
workers are cancelled and `trio.Cancelled` goes on up, as everywhere in Trio.

Rule 2: nothing left running. A block left by an exception or a cancellation cancels every
member still working, before the exception goes on. Cancels are posted (never awaited), so
they cannot be held up, and every member gets its own.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import trio

from .._exceptions import ActorNotFound, ActorStateError
from .._routing.router import Router
from .._wire.envelope import (
    Envelope,
    JobCancel,
    JobCredit,
    JobRequestMessage,
    JobResponseMessage,
    JobUpdateRequest,
)
from .ledger import Decisions, JobLedger
from .types import JobEvent, JobEventType, JobResponse, JobResult

logger = logging.getLogger(__name__)


class RequesterHooks(Protocol):
    """The hooks a requester's owner runs for fire-and-forget jobs."""

    async def on_job_response(self, response: JobResponse) -> None: ...
    async def on_job_update(self, event: JobEvent) -> None: ...
    async def on_job_stream_start(self, event: JobEvent) -> None: ...
    async def on_job_stream_data(self, event: JobEvent) -> None: ...
    async def on_job_stream_end(self, event: JobEvent) -> None: ...
    async def on_job_completed(self, result: JobResult) -> None: ...
    async def on_job_error(self, response: JobResponse) -> None: ...


@attrs.define(eq=False)
class OpenJob:
    """A job in flight at its requester: its ledger and the event that wakes its block."""

    ledger: JobLedger
    own_deadline: float = math.inf
    """The deadline of the job's own ``timeout=`` (the ledger's may be an enclosing one)."""
    changed: trio.Event = attrs.field(factory=trio.Event)

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


def check_timeout(timeout: object) -> float | None:
    """Validate a job's ``timeout=`` argument.

    Raises:
        TypeError: if it is not a number (or None).
        ValueError: if it is negative or NaN.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if timeout < 0 or math.isnan(timeout):
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")
    return float(timeout)


def check_members(members: tuple[object, ...]) -> tuple[str, ...]:
    """Validate the worker names of a job.

    Raises:
        TypeError: if a name is not a string (a list passed instead of several names, say).
        ValueError: if there is none or one appears twice.
    """
    for member in members:
        if not isinstance(member, str):
            raise TypeError(
                f"worker names must be strings, got {member!r}; pass several names as "
                "separate arguments: job_group('a', 'b')"
            )
    if not members:
        raise ValueError("a job needs at least one worker name")
    if len(set(members)) != len(members):
        raise ValueError(f"a job group names each worker once, got {members!r}")
    return members  # type: ignore[return-value]


class Requester:
    """Opens jobs for one party (an actor or the system) and tracks them until they end.

    Args:
        router: the system's router.
        address: the name workers answer to.
        hooks: the owner, whose `on_job_*` hooks run for fire-and-forget jobs.
    """

    def __init__(self, router: Router, address: str, hooks: RequesterHooks) -> None:
        self.router = router
        self.address = address
        self._hooks = hooks
        self.jobs: dict[str, OpenJob] = {}
        """Every job of this requester that has not ended, by id."""
        self.nursery: trio.Nursery | None = None
        """Where the hook task runs; set by the owner while it runs."""
        self.closed_reason: str | None = None
        self.on_busy: Callable[[], None] | None = None
        """Called when a job opens, so the owner's system knows whom to tell of departures."""
        self._hook_queue: deque[tuple[str, Envelope | JobResponse]] = deque()
        self._hook_task_running = False

    def __repr__(self) -> str:
        return f"<Requester [{self.address!r}, jobs: {len(self.jobs)}]>"

    def check_open(self) -> None:
        """Raise `ActorStateError` if this requester can no longer open jobs."""
        if self.closed_reason is not None:
            raise ActorStateError(f"{self.address!r} cannot open jobs: {self.closed_reason}")

    # --- opening ----------------------------------------------------------------------------

    def open(
        self,
        members: tuple[str, ...],
        cancel_on_error: bool,
        timeout: float | None,
        *,
        direct: bool,
    ) -> OpenJob:
        """Register a new job (not yet sent)."""
        self.check_open()
        own = math.inf if timeout is None else trio.current_time() + timeout
        deadline = min(own, trio.current_effective_deadline())
        ledger = JobLedger(
            self.router.next_job_id(), members, cancel_on_error, direct, deadline=deadline
        )
        job = OpenJob(ledger, own)
        self.jobs[ledger.job_id] = job
        if self.on_busy is not None:
            self.on_busy()
        return job

    async def dispatch(self, job: OpenJob, name: str | None, payload: Any) -> None:
        """Wait for every member to be ready, then send the request to each, under the deadline.

        Raises:
            JobTimeout: if the job's own timeout passed first (the job is then over).
        """
        await self.under_deadline(job, lambda: self._send_requests(job, name, payload))

    async def request(
        self,
        members: tuple[str, ...],
        name: str | None,
        payload: Any,
        timeout: float | None,  # noqa: ASYNC109 - the job's own budget (STYLE section 4)
        cancel_on_error: bool,
    ) -> str:
        """Open and send a fire-and-forget job; return its id."""
        job = self.open(members, cancel_on_error, timeout, direct=False)
        await self.dispatch(job, name, payload)
        return job.ledger.job_id

    async def _send_requests(self, job: OpenJob, name: str | None, payload: Any) -> None:
        ledger = job.ledger
        registry = self.router.registry
        for member in ledger.members:
            if member not in registry:
                try:
                    await registry.wait_ready(member)
                except ActorNotFound as exc:
                    self.apply(job, ledger.on_send_failed(member, trio.current_time(), exc.reason))
        body = JobRequestMessage(name=name, payload=payload)
        for member in ledger.members:
            if member in ledger.statuses:
                continue
            await self._send_one(job, member, body)

    async def _send_one(self, job: OpenJob, member: str, body: JobRequestMessage) -> None:
        ledger = job.ledger
        registry = self.router.registry
        while True:
            envelope = self.router.envelope(
                self.address,
                member,
                body,
                job_id=ledger.job_id,
                deadline=None
                if ledger.deadline == math.inf
                else ledger.budget(trio.current_time()),
            )
            try:
                await self.router.send(envelope, eager=True)
            except ActorNotFound as exc:
                # Gone between readiness and send: a restart may be under way, in which case
                # the job waits for the new instance (within its deadline).
                reason = exc.reason
                if registry.restarting(member):
                    try:
                        await registry.wait_ready(member)
                        continue
                    except ActorNotFound as gone:
                        reason = gone.reason
                self.apply(job, ledger.on_send_failed(member, trio.current_time(), reason))
                return
            ledger.on_sent(member)
            return

    async def under_deadline(self, job: OpenJob, wait: Callable[[], Awaitable[None]]) -> None:
        """Run `wait` under the job's own timeout; abandon the job if anything interrupts it.

        Raises:
            JobTimeout: if the job's own ``timeout=`` passed (the workers were cancelled).
        """
        try:
            if job.own_deadline == math.inf:
                await wait()
                return
            with trio.move_on_at(job.own_deadline) as scope:
                await wait()
        except BaseException:
            self.abandon(job, "the requester was interrupted")
            raise
        if scope.cancelled_caught:
            reasons = self._not_ready_reasons(job)
            self.apply(job, job.ledger.expire())
            self.jobs.pop(job.ledger.job_id, None)
            raise job.ledger.timeout_error(reasons)

    async def wait_for_change(self, job: OpenJob) -> None:
        """Wait until `job` changes (an event, an answer), under its own timeout.

        Raises:
            JobTimeout: if the job's own ``timeout=`` passed (the workers were cancelled).
        """
        await self.under_deadline(job, job.changed.wait)

    def forget(self, job: OpenJob) -> None:
        """The job's block is done with it."""
        self.jobs.pop(job.ledger.job_id, None)

    def _not_ready_reasons(self, job: OpenJob) -> dict[str, str]:
        reasons = {}
        for member in job.ledger.members:
            if member in job.ledger.sent or member in job.ledger.statuses:
                continue
            if self.router.registry.restarting(member):
                reasons[member] = "was restarting"
            elif member in self.router.registry:
                # Ready, but a group sends to no member before every member is ready.
                reasons[member] = "was ready; the request waited for the other members"
            elif self.router.is_local(member):
                reasons[member] = "was not ready yet"
            else:
                reasons[member] = "was never registered (no actor of that name)"
        return reasons

    # --- taking answers ---------------------------------------------------------------------

    def take_reply(self, envelope: Envelope) -> None:
        """Take a worker's answer or event on delivery (called by the router)."""
        job = self.jobs.get(envelope.job_id or "")
        if job is None:
            return
        # The clock matters only for an unrequested CANCELLED (a failure before the deadline).
        body = envelope.body
        now = trio.current_time() if type(body) is JobResponseMessage else 0.0
        decisions = job.ledger.on_reply(envelope.sender, body, now)
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
        now = trio.current_time()
        for job in list(self.jobs.values()):
            decisions = job.ledger.on_worker_gone(name, crashed=crashed, now=now)
            if decisions.settled is None:
                continue
            self.apply(job, decisions)
            if job.ledger.direct:
                job.wake()
            else:
                self._queue_hooks(job.ledger.job_id, decisions)

    def apply(self, job: OpenJob, decisions: Decisions) -> None:
        """Carry out the cancels the ledger decided (posted: they never wait)."""
        if decisions.cancel:
            self._post_cancels(job.ledger.job_id, decisions.cancel, decisions.cancel_reason)

    def _post_cancels(self, job_id: str, members: tuple[str, ...], reason: str | None) -> None:
        for member in members:
            self.router.post(
                self.router.envelope(
                    self.address, member, JobCancel(reason=reason), job_id=job_id, urgent=True
                )
            )

    def grant(self, job: OpenJob, member: str) -> None:
        """An event of `member` was read or discarded: grant credit back when it is due."""
        count = job.ledger.on_read(member)
        if count:
            self.router.post(
                self.router.envelope(
                    self.address, member, JobCredit(count=count), job_id=job.ledger.job_id
                )
            )

    # --- ending -----------------------------------------------------------------------------

    async def cancel_job(self, job_id: str, reason: str | None) -> None:
        """Cancel every member of `job_id` still working (unknown ids are ignored)."""
        job = self.jobs.get(job_id)
        if job is not None:
            # Posted before the checkpoint, so nothing the worker does meanwhile can win.
            self.apply(job, job.ledger.cancel(reason or "cancelled by the requester"))
        await trio.lowlevel.checkpoint()

    def abandon(self, job: OpenJob, reason: str) -> None:
        """Give up on `job`: cancel its working members and forget it."""
        self.apply(job, job.ledger.abandon(reason))
        self.jobs.pop(job.ledger.job_id, None)
        job.wake()

    def close(self, reason: str) -> None:
        """The owner is ending: abandon every job and refuse new ones."""
        self.closed_reason = reason
        for job in list(self.jobs.values()):
            self.abandon(job, reason)

    async def request_update(self, job_id: str, actor_name: str) -> None:
        """Ask `actor_name` for a progress update on `job_id`."""
        envelope = self.router.envelope(self.address, actor_name, JobUpdateRequest(), job_id=job_id)
        await self.router.send(envelope)

    # --- hooks of fire-and-forget jobs ------------------------------------------------------

    def _queue_hooks(self, job_id: str, decisions: Decisions) -> None:
        if decisions.event is not None:
            self._hook_queue.append((job_id, decisions.event))  # type: ignore[arg-type]
        if decisions.settled is not None:
            self._hook_queue.append((job_id, decisions.settled))
        if self._hook_task_running:
            return
        nursery = self.nursery
        if nursery is None:
            return
        self._hook_task_running = True
        nursery.start_soon(self._run_hooks, name=f"job hooks of {self.address}")

    async def _run_hooks(self) -> None:
        try:
            while self._hook_queue:
                job_id, item = self._hook_queue.popleft()
                await self._run_hook(job_id, item)
        finally:
            self._hook_task_running = False

    async def _run_hook(self, job_id: str, item: object) -> None:
        job = self.jobs.get(job_id)
        hooks = self._hooks
        if isinstance(item, JobEvent):
            hook = {
                JobEventType.UPDATE: hooks.on_job_update,
                JobEventType.STREAM_START: hooks.on_job_stream_start,
                JobEventType.STREAM_DATA: hooks.on_job_stream_data,
                JobEventType.STREAM_END: hooks.on_job_stream_end,
            }[item.type]
            await hook(item)
            if job is not None:
                self.grant(job, item.actor_name)
            return
        assert isinstance(item, JobResponse)
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

    @property
    def hooks_pending(self) -> int:
        """Answers of fire-and-forget jobs whose hooks have not run yet."""
        return len(self._hook_queue)
