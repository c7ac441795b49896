"""Jobs, worker side: `@job` handlers in per-job cancel scopes, and their answers.

Theory of operation
-------------------
A `JobRequestMessage` is taken from the mailbox in order. If a cancel for its id arrived first
(cancels are handled on delivery, ahead of the queue), a tombstone answers it CANCELLED without
running it. Otherwise it becomes a `_HeldJob`: a task in the actor's nursery running its
handler inside its own `trio.CancelScope`, whose deadline is the one the request carried.

Rule 1: every held job answers exactly once. A return value or `send_job_response` answers
COMPLETED (or the status given); an exception answers ERROR with its type and message; the
scope being cancelled, by the requester, the deadline or the actor stopping, answers CANCELLED
from the cleanup (FAILED when the actor is crashing), shielded so it always gets out. Once the
job's scope has been cancelled no success is sent, even by a handler that finishes anyway: a
cancel that reaches the worker before the answer always wins. An answer that cannot be sent
(in strict mode, a response that does not encode) leaves the job unanswered, so the error path
answers ERROR instead of the requester waiting forever.

Rule 2: update and stream events spend credits the requester grants (`CREDIT_WINDOW`), so a
requester that does not read slows the worker instead of growing a queue.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import msgspec
import trio

from .._wire.envelope import (
    Activate,
    AgentError,
    AgentReady,
    BridgeFrame,
    Deactivate,
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
    SystemMessage,
)
from .._jobs.gate import FifoGate
from .._jobs.types import (
    CREDIT_WINDOW,
    DEADLINE_PASSED,
    JobCancellation,
    JobHandlerSpec,
    JobRequest,
    job_handlers,
    payload_type,
)

if TYPE_CHECKING:
    from .._runtime.actor import Actor

logger = logging.getLogger(__name__)

current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "trio_actors_current_job", default=None
)

_ANSWER_GRACE = 1.0
"""Seconds a shielded cleanup may spend getting a terminal answer out."""

_MAX_TOMBSTONES = 10_000


@attrs.define(eq=False)
class _HeldJob:
    request: JobRequest[Any]
    scope: trio.CancelScope
    credits: int = CREDIT_WINDOW
    credit_event: trio.Event = attrs.field(factory=trio.Event)
    gates: list[tuple[FifoGate, int]] | None = None
    """Admission tickets taken on arrival (sequential handler, max_concurrent_jobs)."""
    answered: bool = False
    cancel_reason: str | None = None


class JobWorkerMixin:
    """The worker half of `Actor`: receiving, running and answering jobs."""

    _job_table: dict[str | None, tuple[str, JobHandlerSpec]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._job_table = job_handlers(cls)

    def _init_worker(self) -> None:
        self._held: dict[str, _HeldJob] = {}
        self._tombstones: dict[str, str | None] = {}
        self._sequential_gates: dict[str | None, FifoGate] = {}
        self._limit_gate: FifoGate | None = None
        self._idle_waiter: trio.Event | None = None
        self._crashing = False

    # --- public worker API -------------------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        """The id of the job the current task is handling, or None outside a job handler."""
        return current_job.get()

    async def on_job_request(self, request: JobRequest[Any]) -> Any:
        """Handle a request no `@job` handler matches; override for custom routing.

        The default answers ERROR: the actor has no handler for that job name.
        """
        label = "the default job" if request.name is None else f"job {request.name!r}"
        raise LookupError(f"actor {self._actor.name!r} has no handler for {label}")

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
        held = self._held.get(job_id)
        if held is None or held.answered:
            logger.warning("actor %r: job %r is not held or already answered", self._name_, job_id)
            await trio.lowlevel.checkpoint()
            return
        error = None if status is JobStatus.COMPLETED else _status_text(status, response)
        await self._answer(held, JobResponseMessage(status=status, response=response, error=error))

    async def send_job_update(self, job_id: str, data: Any = None) -> None:
        """Send a progress update (waits while the requester has `CREDIT_WINDOW` unread)."""
        await self._send_event(job_id, JobUpdateMessage(data=data))

    async def send_job_stream_start(self, job_id: str, data: Any = None) -> None:
        """Begin streaming results to the requester."""
        await self._send_event(job_id, JobStreamStart(data=data))

    async def send_job_stream_data(self, job_id: str, data: Any = None) -> None:
        """Send one stream chunk (waits while the requester has `CREDIT_WINDOW` unread)."""
        await self._send_event(job_id, JobStreamData(data=data))

    async def send_job_stream_end(self, job_id: str, data: Any = None) -> None:
        """End the stream; this completes the job with `data` as its response."""
        held = self._held.get(job_id)
        if held is None or held.answered:
            await trio.lowlevel.checkpoint()
            return
        await self._answer(held, JobStreamEnd(data=data))

    # --- internals ---------------------------------------------------------------------------

    @property
    def _actor(self) -> Actor:
        return self  # type: ignore[return-value]

    @property
    def _name_(self) -> str:
        return self._actor.name

    def _handlers(self) -> dict[type, Callable[[Envelope], Awaitable[None]]]:
        actor = self._actor
        return {
            Activate: actor._handle_activate,
            Deactivate: actor._handle_deactivate,
            AgentError: actor._handle_agent_error,
            AgentReady: actor._handle_agent_ready,
            BridgeFrame: actor._handle_frame,
            JobRequestMessage: self._handle_job_request,
            JobUpdateRequest: self._handle_update_request,
            **self._requester_handlers(),
        }

    def _requester_handlers(self) -> dict[type, Callable[[Envelope], Awaitable[None]]]:
        return {}

    async def _handle_job_request(self, envelope: Envelope) -> None:
        held = self._hold(envelope)
        if held is None:
            return
        if held.request.job_id in self._tombstones:
            # The cancel overtook its request in the queue: answer without running.
            held.cancel_reason = self._tombstones.pop(held.request.job_id)
            await self._answer(held, _cancelled(held.cancel_reason))
            self._release(held)
            return
        self._launch(held)

    def _start_job_at_once(self, envelope: Envelope) -> bool:
        """Start a job on delivery when the mailbox loop would do exactly that right now.

        That is when the loop is parked on an empty mailbox (nothing queued ahead of this
        request, so arrival order holds) and no tombstone waits for this job. It saves the
        loop's wake-up; anything else goes through the mailbox as usual.
        """
        mailbox = self._actor._mailbox
        if (
            mailbox is None
            or not mailbox.receiver_waiting
            or self._actor._ending
            or envelope.job_id in self._tombstones
        ):
            return False
        held = self._hold(envelope)
        if held is not None:
            self._launch(held)
        return True

    def _hold(self, envelope: Envelope) -> _HeldJob | None:
        job_id = envelope.job_id
        message: JobRequestMessage = envelope.body
        if job_id is None:
            logger.warning("actor %r: job request without a job id; dropped", self._name_)
            return None
        deadline = (
            trio.current_time() + envelope.deadline if envelope.deadline is not None else None
        )
        request: JobRequest[Any] = JobRequest(
            job_id=job_id,
            name=message.name,
            payload=message.payload,
            sender=envelope.sender,
            deadline=deadline,
        )
        held = _HeldJob(
            request, trio.CancelScope(deadline=math.inf if deadline is None else deadline)
        )
        held.gates = self._admission_tickets(message.name)
        self._held[job_id] = held
        self._actor.system._job_parties.add(self._actor)
        return held

    def _admission_tickets(self, name: str | None) -> list[tuple[FifoGate, int]] | None:
        entry = self._job_table.get(name)
        limit = self._actor.max_concurrent_jobs
        if (entry is None or not entry[1].sequential) and limit is None:
            return None
        gates: list[tuple[FifoGate, int]] = []
        if entry is not None and entry[1].sequential:
            gate = self._sequential_gates.setdefault(name, FifoGate(1))
            gates.append((gate, gate.ticket()))
        if limit is not None:
            if self._limit_gate is None:
                self._limit_gate = FifoGate(limit)
            gates.append((self._limit_gate, self._limit_gate.ticket()))
        return gates

    def _launch(self, held: _HeldJob) -> None:
        nursery = self._actor._nursery
        assert nursery is not None
        nursery.start_soon(self._run_job, held, name=f"job {held.request.job_id}")

    async def _run_job(self, held: _HeldJob) -> None:
        request = held.request
        token = current_job.set(request.job_id)
        try:
            with held.scope:
                # A cancel that arrived before the task started means the handler never runs.
                await trio.lowlevel.checkpoint_if_cancelled()
                if held.gates is None:
                    await self._invoke(held)
                else:
                    async with _Admission(held.gates):
                        await self._invoke(held)
        except Exception as exc:
            with trio.CancelScope(shield=True), trio.move_on_after(_ANSWER_GRACE):
                await self._answer(held, _error_answer(exc))
            await self._report_job_error(exc)
        finally:
            current_job.reset(token)
            if not held.answered:
                with trio.CancelScope(shield=True), trio.move_on_after(_ANSWER_GRACE):
                    await self._answer_cancelled(held)
            self._release(held)

    async def _invoke(self, held: _HeldJob) -> None:
        request = held.request
        entry = self._job_table.get(request.name)
        handler: Callable[[JobRequest[Any]], Awaitable[Any]] = (
            getattr(self, entry[0]) if entry is not None else self.on_job_request
        )
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
        result = await handler(request)
        if not held.answered:
            await self._answer(
                held, JobResponseMessage(status=JobStatus.COMPLETED, response=result)
            )

    async def _answer_cancelled(self, held: _HeldJob) -> None:
        if self._crashing:
            message = JobResponseMessage(
                status=JobStatus.FAILED, error=f"worker {self._name_!r} crashed"
            )
        else:
            message = _cancelled(held.cancel_reason or self._cancel_text(held))
        await self._answer(held, message)
        if not self._crashing:
            with trio.move_on_after(_ANSWER_GRACE):
                try:
                    await self.on_job_cancelled(
                        JobCancellation(held.request.job_id, held.cancel_reason, held.request)
                    )
                except Exception:
                    logger.exception("actor %r: on_job_cancelled failed", self._name_)

    def _cancel_text(self, held: _HeldJob) -> str:
        deadline = held.request.deadline
        if deadline is not None and trio.current_time() >= deadline:
            return DEADLINE_PASSED
        return f"worker {self._name_!r} stopped"

    async def _answer(self, held: _HeldJob, message: SystemMessage) -> None:
        """Send `held`'s terminal answer, unless it has one (Rule 1).

        A success is not sent once the job's scope was cancelled: the cleanup answers
        CANCELLED instead, so a cancel that reached the worker before the answer always wins.
        An answer that could not be sent (it does not encode, or the send was cancelled)
        leaves the job unanswered, so the error path or the cleanup still answers it.
        """
        if held.answered:
            await trio.lowlevel.checkpoint()
            return
        if _is_success(message) and held.scope.cancel_called:
            await trio.lowlevel.checkpoint()
            return
        held.answered = True
        system = self._actor.system
        try:
            await system._send(
                self._name_,
                held.request.sender,
                message,
                job_id=held.request.job_id,
                missing_ok=True,
                eager=True,
            )
        except BaseException:
            held.answered = False
            raise
        # Wake any event still waiting for credits: the job is over.
        held.credit_event.set()

    async def _send_event(self, job_id: str, message: SystemMessage) -> None:
        held = self._held.get(job_id)
        if held is None or held.answered:
            await trio.lowlevel.checkpoint()
            return
        while held.credits <= 0:
            await held.credit_event.wait()
            if held.answered:
                # The job ended while this event waited for room: there is no one to tell.
                return
        held.credits -= 1
        if held.credits <= 0:
            held.credit_event = trio.Event()
        await self._actor.system._send(
            self._name_, held.request.sender, message, job_id=job_id, missing_ok=True
        )

    def _take_control(self, envelope: Envelope) -> None:
        """Handle a cancel or credit on delivery, ahead of the mailbox queue."""
        job_id = envelope.job_id
        if job_id is None:
            return
        body = envelope.body
        held = self._held.get(job_id)
        if isinstance(body, JobCredit):
            if held is not None:
                held.credits += body.count
                held.credit_event.set()
        elif isinstance(body, JobCancel):
            if held is None:
                if len(self._tombstones) >= _MAX_TOMBSTONES:
                    self._tombstones.pop(next(iter(self._tombstones)))
                self._tombstones[job_id] = body.reason
            elif not held.answered:
                held.cancel_reason = body.reason or "cancelled by the requester"
                held.scope.cancel(reason=held.cancel_reason)

    async def _handle_update_request(self, envelope: Envelope) -> None:
        held = self._held.get(envelope.job_id or "")
        if held is not None and not held.answered:
            await self.on_job_update_requested(held.request)

    async def _report_job_error(self, exc: Exception) -> None:
        try:
            await self._actor.on_error(f"{type(exc).__name__}: {exc}", False)
        except Exception:
            logger.exception("actor %r: on_error failed", self._name_)

    def _release(self, held: _HeldJob) -> None:
        if held.gates:
            # Places in line the job never used (tombstoned, or cancelled while waiting).
            for gate, ticket in held.gates:
                gate.forget(ticket)
        self._held.pop(held.request.job_id, None)
        if not self._held and self._idle_waiter is not None:
            self._idle_waiter.set()

    def _requester_gone_for_worker(self, name: str) -> None:
        for held in list(self._held.values()):
            if held.request.sender == name and not held.answered:
                held.cancel_reason = f"requester {name!r} is gone"
                held.scope.cancel(reason=held.cancel_reason)

    async def _wait_for_jobs(self) -> None:
        # Made only when someone waits, so that starting a job costs no Event.
        while self._held:
            self._idle_waiter = trio.Event()
            await self._idle_waiter.wait()
        await trio.lowlevel.checkpoint()

    async def _answer_leftovers(self, leftovers: list[Envelope], *, crashed: bool) -> None:
        for envelope in leftovers:
            if isinstance(envelope.body, JobRequestMessage) and envelope.job_id:
                status = JobStatus.FAILED if crashed else JobStatus.CANCELLED
                text = f"worker {self._name_!r} {'crashed' if crashed else 'stopped'}"
                with trio.move_on_after(_ANSWER_GRACE):
                    await self._actor.system._send(
                        self._name_,
                        envelope.sender,
                        JobResponseMessage(status=status, error=text),
                        job_id=envelope.job_id,
                        missing_ok=True,
                    )


@attrs.define
class _Admission:
    """Enters a job's admission gates in order (none for most jobs); leaves them at the end."""

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


def _error_answer(exc: BaseException) -> JobResponseMessage:
    return JobResponseMessage(status=JobStatus.ERROR, error=f"{type(exc).__name__}: {exc}")


def _status_text(status: JobStatus, response: Any) -> str:
    return f"worker answered {status.name}"
