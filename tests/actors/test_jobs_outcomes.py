"""Terminal outcomes: ERROR from a raising handler, CANCELLED when the worker stops, FAILED
when it crashes, and exactly one terminal status for every member."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSystem,
    Envelope,
    JobCancellation,
    JobError,
    JobGroupError,
    JobRequest,
    JobResponse,
    JobResult,
    JobStatus,
    job,
)


class Crash(msgspec.Struct, frozen=True):
    """Makes a `Worker` crash in `on_message`."""


class Worker(Actor):
    """Raises, sleeps or answers on request, and records what happened to its jobs."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.started = trio.Event()
        self.cancelled: list[JobCancellation] = []
        self.errors: list[tuple[str, bool]] = []
        self.finished_normally = 0
        self.answered: list[Any] = []
        self.holding = trio.Event()
        self.release = trio.Event()

    @job
    async def answer(self, request: JobRequest[Any]) -> Any:
        self.answered.append(request.payload)
        return f"answer to {request.payload}"

    @job(name="raise")
    async def fail(self, request: JobRequest[Any]) -> Any:
        raise ValueError(f"boom {request.payload}")

    @job(name="sleep")
    async def sleep(self, request: JobRequest[Any]) -> Any:
        self.started.set()
        await trio.sleep(1000)
        self.finished_normally += 1
        return "woke up"

    @job(name="double")
    async def double(self, request: JobRequest[Any]) -> Any:
        await self.send_job_response(request.job_id, "first")
        await self.send_job_response(request.job_id, "second", status=JobStatus.ERROR)
        raise RuntimeError("after the answer")

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled.append(cancellation)

    async def on_error(self, error: str, fatal: bool) -> None:
        await super().on_error(error, fatal)
        self.errors.append((error, fatal))

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, Crash):
            raise RuntimeError("worker crashed on purpose")
        if isinstance(envelope.body, Hold):
            self.holding.set()
            await self.release.wait()


class Hold(msgspec.Struct, frozen=True):
    """Keeps a `Counter`'s mailbox loop busy until its `release` is set."""


class Counter(Actor):
    """A fire-and-forget requester that records every terminal answer."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.responses: list[JobResponse] = []
        self.results: list[JobResult] = []
        self.completed = trio.Event()
        self.release = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, Hold):
            await self.release.wait()

    async def on_job_response(self, response: JobResponse) -> None:
        await super().on_job_response(response)
        self.responses.append(response)

    async def on_job_completed(self, result: JobResult) -> None:
        await super().on_job_completed(result)
        self.results.append(result)
        self.completed.set()


async def test_raising_handler_answers_error_at_once(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A handler that raises answers ERROR with the exception's type and message, without
    waiting for the timeout; the actor keeps running and takes the next job."""
    worker = await actor_system.spawn(Worker("worker"))
    start = trio.current_time()
    with pytest.raises(JobError, match=r"ended ERROR: ValueError: boom 1$") as caught:
        async with actor_system.job("worker", name="raise", payload=1, timeout=100):
            pass
    assert trio.current_time() == start
    error = caught.value
    assert error.status is JobStatus.ERROR
    assert error.statuses == {"worker": JobStatus.ERROR}
    assert error.errors == {"worker": "ValueError: boom 1"}
    assert error.response is None
    await trio.testing.wait_all_tasks_blocked()
    assert worker.errors == [("ValueError: boom 1", False)]
    async with actor_system.job("worker", payload=2) as second:
        pass
    assert (second.status, second.response) == (JobStatus.COMPLETED, "answer to 2")
    assert worker.ready


async def test_worker_ending_mid_job_answers_cancelled(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker that ends (grace 0) while holding a job answers it CANCELLED, never COMPLETED."""
    worker = await actor_system.spawn(Worker("worker"))
    start = trio.current_time()
    with pytest.raises(JobError, match=r"ended CANCELLED") as caught:
        async with actor_system.job("worker", name="sleep", timeout=100):
            await worker.started.wait()
            worker.end(grace=0)
    assert trio.current_time() == start
    assert caught.value.statuses == {"worker": JobStatus.CANCELLED}
    assert worker.finished_normally == 0
    await trio.testing.wait_all_tasks_blocked()
    assert [c.job_id for c in worker.cancelled] == [caught.value.job_id]


async def test_worker_cancelled_mid_job_answers_cancelled(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker stopped with `cancel()` while holding a job answers it CANCELLED at once."""
    worker = await actor_system.spawn(Worker("worker"))
    start = trio.current_time()
    with pytest.raises(JobError, match=r"ended CANCELLED") as caught:
        async with actor_system.job("worker", name="sleep", timeout=100):
            await worker.started.wait()
            worker.cancel()
    assert trio.current_time() == start
    assert caught.value.status is JobStatus.CANCELLED
    assert worker.finished_normally == 0


async def test_worker_crash_mid_job_answers_failed(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker that crashes (its `on_message` raises) mid-job ends the job FAILED at once."""
    worker = await actor_system.spawn(Worker("worker"))
    start = trio.current_time()
    with pytest.raises(JobError, match=r"ended FAILED") as caught:
        async with actor_system.job("worker", name="sleep", timeout=100):
            await worker.started.wait()
            await worker.send_message("worker", Crash())
    assert trio.current_time() == start
    assert caught.value.status is JobStatus.FAILED
    assert caught.value.errors == {"worker": "worker 'worker' crashed"}
    assert worker.finished_normally == 0
    await trio.testing.wait_all_tasks_blocked()
    assert worker.errors == [("RuntimeError: worker crashed on purpose", True)]


async def test_requests_queued_at_a_stopping_worker_answer_cancelled(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Requests still queued in the mailbox of a worker that stops are answered CANCELLED at
    once and never run."""
    worker = await actor_system.spawn(Worker("worker"))
    await worker.send_message("worker", Hold())
    await worker.holding.wait()
    start = trio.current_time()
    with pytest.raises(JobGroupError, match=r"ended CANCELLED \(worker 'worker' stopped\)"):
        async with actor_system.job_group("worker", payload="queued", timeout=100):
            await trio.testing.wait_all_tasks_blocked()
            mailbox = actor_system.actors["worker"]._mailbox
            assert mailbox is not None
            assert mailbox.statistics().queued == 1
            worker.end(grace=0)
    assert trio.current_time() == start
    assert worker.answered == []


async def test_cancel_job_without_a_reason_still_fails_the_job(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`cancel_job(job_id)` with no reason ends the job CANCELLED and `job()` raises JobError."""
    worker = await actor_system.spawn(Worker("worker"))
    with pytest.raises(JobError, match=r"ended CANCELLED") as caught:
        async with actor_system.job("worker", name="sleep") as j:
            await worker.started.wait()
            await actor_system.cancel_job(j.job_id)
    assert caught.value.statuses == {"worker": JobStatus.CANCELLED}
    assert caught.value.errors["worker"]
    assert j.status is JobStatus.CANCELLED
    await trio.testing.wait_all_tasks_blocked()
    assert [c.job_id for c in worker.cancelled] == [j.job_id]
    assert worker.finished_normally == 0


async def test_a_second_answer_is_ignored(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Only the first answer counts: a later `send_job_response` or exception changes nothing."""
    await actor_system.spawn(Worker("worker"))
    async with actor_system.job("worker", name="double") as j:
        pass
    assert (j.status, j.response) == (JobStatus.COMPLETED, "first")


async def test_exactly_one_terminal_answer_per_member(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker that stops both answers CANCELLED from its cleanup and is reported gone; the
    requester still hears one terminal answer per member."""
    stopper = await actor_system.spawn(Worker("stopper"))
    await actor_system.spawn(Worker("other"))
    counter = await actor_system.spawn(Counter("counter"))
    job_id = await counter.request_job_group("stopper", "other", name="sleep")
    await stopper.started.wait()
    # Keep the requester's mailbox busy so that both notices of the stop queue up.
    await counter.send_message("counter", Hold())
    await trio.testing.wait_all_tasks_blocked()
    await stopper.end(grace=0)
    await trio.testing.wait_all_tasks_blocked()
    counter.release.set()
    await counter.completed.wait()
    await trio.testing.wait_all_tasks_blocked()
    # The stop fails the group (cancel_on_error), so the other member is cancelled too.
    assert [(r.actor_name, r.status) for r in counter.responses] == [
        ("stopper", JobStatus.CANCELLED),
        ("other", JobStatus.CANCELLED),
    ]
    assert counter.results == [
        JobResult(job_id, {"stopper": JobStatus.CANCELLED, "other": JobStatus.CANCELLED}, {})
    ]
