"""The actor system as a requester: `system.job`, `job_group`, `request_job`, `cancel_job`."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSystem,
    JobCancellation,
    JobError,
    JobRequest,
    JobResponse,
    JobResult,
    JobStatus,
    job,
)

from actor_support import held_jobs, open_jobs


class Worker(Actor):
    """Answers after `delay` seconds; records requests and cancellations."""

    def __init__(self, name: str, *, delay: float = 0.0) -> None:
        super().__init__(name)
        self.delay = delay
        self.requests: list[JobRequest[Any]] = []
        self.cancelled: list[JobCancellation] = []
        self.started = trio.Event()

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        self.requests.append(request)
        self.started.set()
        await trio.sleep(self.delay)
        return f"{self.name}: {request.payload}"

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled.append(cancellation)


async def test_system_job_and_job_group(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`system.job` and `system.job_group` work as an actor's do; the sender is the system."""
    worker = await actor_system.spawn(Worker("a", delay=1))
    await actor_system.spawn(Worker("b", delay=2))
    async with actor_system.job("a", payload=1) as j:
        pass
    assert (j.status, j.response) == (JobStatus.COMPLETED, "a: 1")
    async with actor_system.job_group("a", "b", payload=2) as g:
        pass
    assert g.responses == {"a": "a: 2", "b": "b: 2"}
    assert trio.current_time() == 3
    assert {r.sender for r in worker.requests} == {actor_system.address}


async def test_system_request_job_reports_on_its_hooks(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`system.request_job` returns the job id at once; the answer reaches the system's hooks
    and the system stops tracking the job once it has ended."""
    await actor_system.spawn(Worker("a", delay=1))
    responses: list[JobResponse] = []
    results: list[JobResult] = []
    done = trio.Event()

    async def on_job_response(response: JobResponse) -> None:
        responses.append(response)

    async def on_job_completed(result: JobResult) -> None:
        results.append(result)
        done.set()

    actor_system.on_job_response = on_job_response  # type: ignore[method-assign]
    actor_system.on_job_completed = on_job_completed  # type: ignore[method-assign]
    job_id = await actor_system.request_job("a", payload="x")
    assert trio.current_time() == 0
    await done.wait()
    assert trio.current_time() == 1
    assert [(r.actor_name, r.status, r.response) for r in responses] == [
        ("a", JobStatus.COMPLETED, "a: x")
    ]
    assert results == [JobResult(job_id, {"a": JobStatus.COMPLETED}, {"a": "a: x"})]
    assert open_jobs(actor_system) == {}


async def test_system_cancel_job(actor_system: ActorSystem, autojump_clock: MockClock) -> None:
    """`system.cancel_job` cancels a job the system requested, fire-and-forget or in a block."""
    worker = await actor_system.spawn(Worker("a", delay=100))
    job_id = await actor_system.request_job("a")
    await worker.started.wait()
    await actor_system.cancel_job(job_id)
    await trio.testing.wait_all_tasks_blocked()
    assert [c.job_id for c in worker.cancelled] == [job_id]
    assert open_jobs(actor_system) == {}

    worker.started = trio.Event()
    with pytest.raises(JobError, match=r"ended CANCELLED"):
        async with actor_system.job("a") as j:
            await worker.started.wait()
            await actor_system.cancel_job(j.job_id)
    assert trio.current_time() == 0
    await trio.testing.wait_all_tasks_blocked()
    assert len(worker.cancelled) == 2
    assert held_jobs(worker) == {}


async def test_system_request_job_group(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`system.request_job_group` sends one job to every member and returns its id."""
    workers = [await actor_system.spawn(Worker(name, delay=1)) for name in ("a", "b")]
    job_id = await actor_system.request_job_group("a", "b", payload="y")
    await trio.sleep(5)
    assert [[r.job_id for r in w.requests] for w in workers] == [[job_id], [job_id]]
    assert open_jobs(actor_system) == {}


async def test_system_hooks_hear_of_a_worker_that_stops(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker that stops while holding the system's fire-and-forget job: the system's hooks
    get one CANCELLED answer, and the job is no longer tracked."""
    worker = await actor_system.spawn(Worker("a", delay=100))
    responses: list[JobResponse] = []
    done = trio.Event()

    async def on_job_response(response: JobResponse) -> None:
        responses.append(response)

    async def on_job_completed(result: JobResult) -> None:
        done.set()

    actor_system.on_job_response = on_job_response  # type: ignore[method-assign]
    actor_system.on_job_completed = on_job_completed  # type: ignore[method-assign]
    await actor_system.request_job("a")
    await worker.started.wait()
    await worker.cancel()
    await done.wait()
    await trio.testing.wait_all_tasks_blocked()
    assert [(r.actor_name, r.status) for r in responses] == [("a", JobStatus.CANCELLED)]
    assert trio.current_time() == 0
    assert open_jobs(actor_system) == {}


async def test_leaving_the_system_cancels_its_outstanding_jobs(
    autojump_clock: MockClock,
) -> None:
    """Closing the system while one of its fire-and-forget jobs runs cancels the job."""
    from actors.testing import open_test_system

    async with open_test_system("closing") as system:
        worker = await system.spawn(Worker("a", delay=100))
        await system.request_job("a")
        await worker.started.wait()
    assert trio.current_time() == 0
    assert len(worker.cancelled) == 1
    assert held_jobs(worker) == {}
