"""The worker component: runs `@job` handlers in per-job cancel scopes and answers them.

Theory of operation
-------------------
An actor *has* a `Worker`. A job request (from the mailbox, or at once when the actor is idle)
becomes a `HeldJob` in the worker's `WorkerTable` and a task in the actor's nursery running
its handler inside its own `trio.CancelScope`, whose deadline is the one the request carried.

Rule 1: every held job answers exactly once. A return value or `send_job_response` answers
COMPLETED (or the status given); an exception answers ERROR with its type and message, and is
logged once with its traceback; the scope being cancelled (by the requester, the deadline or
the actor stopping) answers CANCELLED from the cleanup (FAILED when the actor crashed). Once a
job's scope was cancelled no success is sent: a cancel that reached the worker first wins.
The answer also settles the request's delivery (acknowledged with it).

Rule 2: update and stream events spend credits the requester grants (`CREDIT_WINDOW`), so a
requester that does not read slows the worker instead of growing a queue.

Rule 3: a request that cannot run is answered at once: a cancel overtook it (CANCELLED), its
deadline already passed (CANCELLED), its deadline is not a number (ERROR), its payload does
not validate against the handler's `JobRequest[T]` (ERROR).
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import msgspec
import trio

from .._routing.router import Router
from .._wire.envelope import (
    Envelope,
    JobCancel,
    JobCredit,
    JobRequestMessage,
    JobResponseMessage,
    JobStatus,
    JobStreamEnd,
    SystemMessage,
)
from .gate import FifoGate
from .table import HeldJob, WorkerTable
from .types import (
    DEADLINE_PASSED,
    JobCancellation,
    JobHandlerSpec,
    JobRequest,
    describe,
    payload_type,
)

logger = logging.getLogger("actors.jobs")

current_job: contextvars.ContextVar[tuple[str, str, str | None] | None] = contextvars.ContextVar(
    "trio_actors_current_job", default=None
)
"""(worker name, job id, job name) of the job the current task is handling."""

_ANSWER_GRACE = 1.0
"""Seconds a shielded cleanup may spend getting one terminal answer out."""


class WorkerHost(Protocol):
    """What the worker needs of the actor that has it."""

    @property
    def name(self) -> str: ...
    @property
    def max_concurrent_jobs(self) -> int | None: ...
    def job_handler(
        self, name: str | None
    ) -> tuple[Callable[[JobRequest[Any]], Awaitable[Any]], JobHandlerSpec | None]: ...
    async def on_job_cancelled(self, cancellation: JobCancellation) -> None: ...
    async def on_job_update_requested(self, request: JobRequest[Any]) -> None: ...
    async def on_error(self, error: str, fatal: bool) -> None: ...


@attrs.define(eq=False)
class _Handle:
    scope: trio.CancelScope
    credit_event: trio.Event = attrs.field(factory=trio.Event)
    gates: list[tuple[FifoGate, int]] | None = None


class Worker:
    """Receives, runs and answers one actor's jobs.

    Args:
        router: the system's router.
        host: the actor.
        system: the system's name (for log records).
    """

    def __init__(self, router: Router, host: WorkerHost, system: str) -> None:
        self.router = router
        self._host = host
        self._system = system
        self.table: WorkerTable[_Handle] = WorkerTable()
        self.nursery: trio.Nursery | None = None
        """Where job tasks run; set by the actor while it runs."""
        self.crashed = False
        """Set when the actor crashed: jobs cut off answer FAILED instead of CANCELLED."""
        self.accepting = True
        self._sequential: dict[str | None, FifoGate] = {}
        self._limit: FifoGate | None = None
        self._idle: trio.Event | None = None
        self.on_busy: Callable[[], None] | None = None
        """Called when a job is taken in, so the system knows whom to tell of departures."""

    def __repr__(self) -> str:
        return f"<Worker [{self._host.name!r}, {self.table!r}]>"

    @property
    def busy(self) -> bool:
        """Whether it holds any job."""
        return bool(self.table.held)

    # --- taking requests --------------------------------------------------------------------

    def take_request(self, envelope: Envelope) -> None:
        """Take a job request from the mailbox (in arrival order)."""
        held = self._hold(envelope)
        if held is not None:
            self._launch(held)

    def _hold(self, envelope: Envelope) -> HeldJob[_Handle] | None:
        job_id = envelope.job_id
        message: JobRequestMessage = envelope.body
        name = self._host.name
        if job_id is None:
            logger.warning(
                "actor %r (system %r): job request without a job id; dropped", name, self._system
            )
            self.router.settle(envelope.id)
            return None
        budget = envelope.deadline
        refusal = None
        if budget is not None and (math.isnan(budget) or math.isinf(budget)):
            refusal = JobResponseMessage(
                status=JobStatus.ERROR, error=f"invalid deadline budget {budget!r}"
            )
            budget = None
        deadline = None if budget is None else trio.current_time() + max(0.0, budget)
        request: JobRequest[Any] = JobRequest(
            job_id=job_id,
            name=message.name,
            payload=message.payload,
            sender=envelope.sender,
            deadline=deadline,
        )
        scope = trio.CancelScope(deadline=math.inf if deadline is None else deadline)
        held = self.table.hold(request, envelope.id, _Handle(scope))
        if self.on_busy is not None:
            self.on_busy()
        # Most requests meet no tombstone at all: read the clock only when one may expire.
        now = trio.current_time() if self.table.tombstones else 0.0
        found, reason = self.table.take_tombstone(job_id, now, sender=envelope.sender)
        if found:
            # The cancel overtook its request in the queue: answer without running.
            held.cancel_reason = reason or "cancelled by the requester"
            refusal = _cancelled(held.cancel_reason)
        elif budget is not None and budget <= 0:
            refusal = _cancelled(DEADLINE_PASSED)
        elif not self.accepting:
            refusal = _cancelled(f"worker {name!r} is stopping")
        if refusal is not None:
            self._launch_answer(held, refusal)
            return None
        held.handle.gates = self._admission_tickets(message.name)
        return held

    def start_at_once(self, envelope: Envelope, *, idle: bool) -> bool:
        """Start a job on delivery when queueing it would change nothing (or must not).

        That is when the actor's mailbox loop is parked on an empty mailbox (so arrival order
        holds), or when the actor asks a job of itself (queueing behind the very message its
        loop is handling could never finish).
        """
        if not self.accepting:
            return False
        if not idle and envelope.sender != self._host.name:
            return False
        if envelope.job_id is not None and self.table.has_tombstone(envelope.job_id):
            return False
        self.take_request(envelope)
        return True

    def _admission_tickets(self, name: str | None) -> list[tuple[FifoGate, int]] | None:
        _, spec = self._host.job_handler(name)
        sequential = spec is not None and spec.sequential
        limit = self._host.max_concurrent_jobs
        if not sequential and limit is None:
            return None
        gates: list[tuple[FifoGate, int]] = []
        if sequential:
            gate = self._sequential.setdefault(name, FifoGate(1))
            gates.append((gate, gate.ticket()))
        if limit is not None:
            if self._limit is None:
                self._limit = FifoGate(limit)
            gates.append((self._limit, self._limit.ticket()))
        return gates

    def would_wait_for_itself(self, job_name: str | None) -> bool:
        """Whether a job of this actor, asked from inside one of its own handlers, could never
        be admitted (the asking handler holds the only place it would need)."""
        current = current_job.get()
        if current is None or current[0] != self._host.name:
            return False
        _, spec = self._host.job_handler(job_name)
        if spec is not None and spec.sequential and current[2] == job_name:
            return True
        return self._host.max_concurrent_jobs == 1

    def _launch(self, held: HeldJob[_Handle]) -> None:
        nursery = self.nursery
        assert nursery is not None
        nursery.start_soon(self._run, held, name=f"{self._host.name}: job {held.request.job_id}")

    def _launch_answer(self, held: HeldJob[_Handle], message: JobResponseMessage) -> None:
        async def answer() -> None:
            try:
                with trio.CancelScope(shield=True), trio.move_on_after(_ANSWER_GRACE):
                    await self._answer(held, message)
            finally:
                self._release(held)

        if self.nursery is None:
            self._release(held)
            return
        self.nursery.start_soon(answer, name=f"{self._host.name}: answer {held.request.job_id}")

    # --- running ----------------------------------------------------------------------------

    async def _run(self, held: HeldJob[_Handle]) -> None:
        request = held.request
        handle = held.handle
        token = current_job.set((self._host.name, request.job_id, request.name))
        try:
            with handle.scope:
                # A cancel that arrived before the task started means the handler never runs.
                await trio.lowlevel.checkpoint_if_cancelled()
                if handle.gates is None:
                    await self._invoke(held)
                else:
                    async with _Admission(handle.gates):
                        await self._invoke(held)
        except Exception as exc:
            text = describe(exc)
            logger.error(
                "actor %r (system %r): job %s failed: %s",
                self._host.name,
                self._system,
                request.job_id,
                text,
                exc_info=exc,
                extra={"actor": self._host.name, "system": self._system, "job_id": request.job_id},
            )
            with trio.CancelScope(shield=True), trio.move_on_after(_ANSWER_GRACE):
                await self._answer(held, JobResponseMessage(status=JobStatus.ERROR, error=text))
            await self._report(text)
        finally:
            current_job.reset(token)
            if not held.answered:
                with trio.CancelScope(shield=True), trio.move_on_after(_ANSWER_GRACE * 2):
                    await self._answer_cut_off(held)
            self._release(held)

    async def _invoke(self, held: HeldJob[_Handle]) -> None:
        request = held.request
        handler, _ = self._host.job_handler(request.name)
        wanted = payload_type(getattr(handler, "__func__", handler))
        if wanted is not None:
            try:
                payload = msgspec.convert(_builtins(request.payload), wanted)
            except msgspec.ValidationError as exc:
                await self._answer(
                    held,
                    JobResponseMessage(status=JobStatus.ERROR, error=f"invalid payload: {exc}"),
                )
                return
            request = attrs.evolve(request, payload=payload)
            held.request = request
        result = await handler(request)
        if not held.answered:
            await self._answer(
                held, JobResponseMessage(status=JobStatus.COMPLETED, response=result)
            )

    async def _answer_cut_off(self, held: HeldJob[_Handle]) -> None:
        name = self._host.name
        if self.crashed:
            await self._answer(
                held, JobResponseMessage(status=JobStatus.FAILED, error=f"worker {name!r} crashed")
            )
            return
        reason = held.cancel_reason or self._cut_off_reason(held)
        await self._answer(held, _cancelled(reason))
        with trio.move_on_after(_ANSWER_GRACE):
            try:
                await self._host.on_job_cancelled(
                    JobCancellation(held.request.job_id, held.cancel_reason, held.request)
                )
            except Exception as exc:
                logger.error(
                    "actor %r (system %r): on_job_cancelled failed for job %s: %s",
                    name,
                    self._system,
                    held.request.job_id,
                    describe(exc),
                    exc_info=exc,
                )

    def _cut_off_reason(self, held: HeldJob[_Handle]) -> str:
        deadline = held.request.deadline
        if deadline is not None and trio.current_time() >= deadline:
            return DEADLINE_PASSED
        return f"worker {self._host.name!r} stopped"

    async def _answer(self, held: HeldJob[_Handle], message: SystemMessage) -> None:
        """Send `held`'s terminal answer, unless it has one (Rule 1)."""
        if held.answered or (_is_success(message) and held.handle.scope.cancel_called):
            await trio.lowlevel.checkpoint()
            return
        held.answered = True
        envelope = self.router.envelope(
            self._host.name, held.request.sender, message, job_id=held.request.job_id
        )
        try:
            await self.router.send(envelope, missing_ok=True, eager=True, settles=held.envelope_id)
        except BaseException:
            held.answered = False
            raise
        # Wake an event still waiting for credits: the job is over.
        held.handle.credit_event.set()

    async def _report(self, text: str) -> None:
        try:
            await self._host.on_error(text, False)
        except Exception as exc:
            logger.error(
                "actor %r (system %r): on_error failed: %s",
                self._host.name,
                self._system,
                describe(exc),
                exc_info=exc,
            )

    def _release(self, held: HeldJob[_Handle]) -> None:
        gates = held.handle.gates
        if gates:
            for gate, ticket in gates:
                gate.forget(ticket)
            held.handle.gates = None
        self.router.settle(held.envelope_id)
        self.table.release(held.request.job_id)
        if not self.table.held and self._idle is not None:
            self._idle.set()

    # --- the public worker API --------------------------------------------------------------

    async def respond(self, job_id: str, response: Any, status: JobStatus) -> None:
        """`send_job_response`: answer `job_id` (later answers are ignored with a warning)."""
        held = self.table.held.get(job_id)
        if held is None or held.answered:
            logger.warning(
                "actor %r (system %r): job %s is not held or already answered",
                self._host.name,
                self._system,
                job_id,
            )
            await trio.lowlevel.checkpoint()
            return
        error = None if status is JobStatus.COMPLETED else f"worker answered {status.name}"
        await self._answer(held, JobResponseMessage(status=status, response=response, error=error))

    async def end_stream(self, job_id: str, data: Any) -> None:
        """`send_job_stream_end`: complete the job with `data` as its response."""
        held = self.table.held.get(job_id)
        if held is None or held.answered:
            await trio.lowlevel.checkpoint()
            return
        await self._answer(held, JobStreamEnd(data=data))

    async def send_event(self, job_id: str, message: SystemMessage) -> None:
        """Send an update or stream event, waiting while the requester has no credit left."""
        held = self.table.held.get(job_id)
        if held is None or held.answered:
            await trio.lowlevel.checkpoint()
            return
        while not self.table.spend_credit(held):
            held.handle.credit_event = trio.Event()
            await held.handle.credit_event.wait()
            if held.answered:
                # The job ended while this event waited for room: there is no one to tell.
                return
        envelope = self.router.envelope(
            self._host.name, held.request.sender, message, job_id=job_id
        )
        await self.router.send(envelope, missing_ok=True)

    async def update_requested(self, envelope: Envelope) -> None:
        """A requester asked for progress on one of this worker's jobs."""
        held = self.table.held.get(envelope.job_id or "")
        if held is not None and not held.answered:
            await self._host.on_job_update_requested(held.request)
        else:
            await trio.lowlevel.checkpoint()

    # --- control ----------------------------------------------------------------------------

    def take_control(self, envelope: Envelope) -> None:
        """Take a cancel or a credit on delivery, ahead of the mailbox queue."""
        job_id = envelope.job_id
        if job_id is None:
            return
        body = envelope.body
        if isinstance(body, JobCredit):
            held = self.table.on_credit(job_id, body.count)
            if held is not None:
                held.handle.credit_event.set()
        elif isinstance(body, JobCancel):
            held_now = self.table.held.get(job_id)
            if held_now is not None and held_now.request.sender != envelope.sender:
                # Only a job's requester may cancel it (a peer across a link may not).
                self.router.counters.hostile += 1
                logger.warning(
                    "actor %r (system %r) ignored a cancel of job %s from %r, not its requester",
                    self._host.name,
                    self._system,
                    job_id,
                    envelope.sender,
                )
                return
            budget = envelope.deadline
            if budget is not None and not math.isfinite(budget):
                budget = None
            held = self.table.on_cancel(
                job_id, body.reason, trio.current_time(), budget, sender=envelope.sender
            )
            if held is not None:
                held.handle.scope.cancel(reason=held.cancel_reason)

    def requester_gone(self, requester: str) -> None:
        """`requester` is gone: the jobs it asked for are cancelled."""
        for held in self.table.sent_by(requester):
            held.cancel_reason = f"requester {requester!r} is gone"
            held.handle.scope.cancel(reason=held.cancel_reason)

    async def wait_idle(self) -> None:
        """Wait until no job is held."""
        while self.table.held:
            self._idle = trio.Event()
            await self._idle.wait()
        await trio.lowlevel.checkpoint()

    async def refuse_leftovers(self, leftovers: list[Envelope], *, crashed: bool) -> None:
        """Answer job requests that were still queued when the actor stopped."""
        name = self._host.name
        status = JobStatus.FAILED if crashed else JobStatus.CANCELLED
        text = f"worker {name!r} {'crashed' if crashed else 'stopped'}"
        for envelope in leftovers:
            if isinstance(envelope.body, JobRequestMessage) and envelope.job_id:
                answer = self.router.envelope(
                    name,
                    envelope.sender,
                    JobResponseMessage(status=status, error=text),
                    job_id=envelope.job_id,
                )
                with trio.move_on_after(_ANSWER_GRACE):
                    await self.router.send(answer, missing_ok=True, settles=envelope.id)
            self.router.settle(envelope.id)


@attrs.define
class _Admission:
    """Enters a job's admission gates in order; leaves them at the end."""

    gates: list[tuple[FifoGate, int]] | None
    entered: int = 0

    async def __aenter__(self) -> None:
        if not self.gates:
            return
        try:
            for gate, ticket in self.gates:
                await gate.enter(ticket)
                self.entered += 1
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        if not self.gates:
            return
        for index, (gate, ticket) in enumerate(self.gates):
            if index < self.entered:
                gate.leave()
            else:
                gate.forget(ticket)
        self.gates = None


def _builtins(payload: Any) -> Any:
    if isinstance(payload, msgspec.Struct):
        return msgspec.to_builtins(payload)
    return payload


def _cancelled(reason: str | None) -> JobResponseMessage:
    return JobResponseMessage(status=JobStatus.CANCELLED, error=reason or "cancelled")


def _is_success(message: SystemMessage) -> bool:
    if isinstance(message, JobStreamEnd):
        return True
    return isinstance(message, JobResponseMessage) and message.status is JobStatus.COMPLETED
