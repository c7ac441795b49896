"""Cancellation: a cancel never loses to its own request, and leaving a job's block by an
exception or a cancellation leaves no worker running."""

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
    JobRequest,
    JobResponse,
    JobResult,
    JobStatus,
    job,
)

from actor_support import held_jobs, open_jobs, tombstones


class Hold(msgspec.Struct, frozen=True):
    """Keeps the recipient's mailbox loop busy until its `release` event is set."""


class Worker(Actor):
    """Records every handler run and cancellation; `quick` answers without a checkpoint."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ran: list[str] = []
        self.started = trio.Event()
        self.saw_cancelled: list[str] = []
        self.cancelled: list[JobCancellation] = []
        self.release = trio.Event()
        self.holding = trio.Event()

    @job
    async def slow(self, request: JobRequest[Any]) -> Any:
        self.ran.append(request.job_id)
        self.started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.saw_cancelled.append(request.job_id)
            raise

    @job(name="quick")
    async def quick(self, request: JobRequest[Any]) -> Any:
        self.ran.append(request.job_id)
        return "quick answer"

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled.append(cancellation)

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, Hold):
            self.holding.set()
            await self.release.wait()


class Requester(Actor):
    """A fire-and-forget requester recording its terminal answers by job id."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.responses: dict[str, list[JobResponse]] = {}
        self.results: dict[str, JobResult] = {}
        self.changed = trio.Event()

    async def on_job_response(self, response: JobResponse) -> None:
        await super().on_job_response(response)
        self.responses.setdefault(response.job_id, []).append(response)

    async def on_job_completed(self, result: JobResult) -> None:
        await super().on_job_completed(result)
        self.results[result.job_id] = result
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, job_id: str) -> JobResult:
        while job_id not in self.results:
            await self.changed.wait()
        return self.results[job_id]


async def test_cancel_of_a_queued_request_leaves_a_tombstone(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A cancel that arrives while its request is still queued (the worker's mailbox is busy)
    goes ahead of it; the request is then answered CANCELLED and its handler never runs."""
    worker = await actor_system.spawn(Worker("worker"))
    requester = await actor_system.spawn(Requester("requester"))
    await requester.send_message("worker", Hold())
    await worker.holding.wait()
    job_id = await requester.request_job("worker", name="quick")
    await requester.cancel_job(job_id)
    assert tombstones(worker) == {job_id: "cancelled by the requester"}
    worker.release.set()
    result = await requester.wait_for(job_id)
    assert result.statuses == {"worker": JobStatus.CANCELLED}
    assert [r.status for r in requester.responses[job_id]] == [JobStatus.CANCELLED]
    assert worker.ran == []
    assert tombstones(worker) == {}
    assert held_jobs(worker) == {}


async def test_job_block_cancel_of_a_queued_request(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """The same tombstone rule holds for `job()`: cancelling inside the block before the worker
    took the request raises JobError (CANCELLED) and the handler never runs."""
    worker = await actor_system.spawn(Worker("worker"))
    await worker.send_message("worker", Hold())
    await worker.holding.wait()
    with pytest.raises(JobError, match=r"ended CANCELLED: cancelled by the requester$"):
        async with actor_system.job("worker", name="quick") as j:
            await actor_system.cancel_job(j.job_id)
            worker.release.set()
    assert worker.ran == []


async def test_cancel_right_after_request_never_completes(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A cancel sent right after its request wins, even against a handler that would answer
    without a checkpoint: every job ends CANCELLED and no handler runs."""
    worker = await actor_system.spawn(Worker("worker"))
    requester = await actor_system.spawn(Requester("requester"))
    job_ids = []
    for _ in range(40):
        job_id = await requester.request_job("worker", name="quick")
        await requester.cancel_job(job_id)
        job_ids.append(job_id)
    results = [await requester.wait_for(job_id) for job_id in job_ids]
    assert [r.statuses for r in results] == [{"worker": JobStatus.CANCELLED}] * 40
    assert all(len(requester.responses[job_id]) == 1 for job_id in job_ids)
    assert worker.ran == []
    assert held_jobs(worker) == {}


async def test_cancel_beats_a_handler_that_finishes_anyway(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A handler that shields itself and returns after its job was cancelled is answered
    CANCELLED, not COMPLETED: once a cancel reaches the worker, the job cannot succeed."""

    class Stubborn(Actor):
        started = trio.Event()

        @job
        async def work(self, request: JobRequest[Any]) -> Any:
            self.started.set()
            with trio.CancelScope(shield=True):
                await trio.sleep(1)
            return "finished anyway"

    stubborn = await actor_system.spawn(Stubborn("stubborn"))
    with pytest.raises(JobError, match=r"ended CANCELLED") as caught:
        async with actor_system.job("stubborn") as j:
            await stubborn.started.wait()
            await actor_system.cancel_job(j.job_id)
    assert trio.current_time() == 1
    assert caught.value.responses == {}
    await trio.testing.wait_all_tasks_blocked()
    assert held_jobs(stubborn) == {}


async def test_cancel_of_a_running_job(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Cancelling a running job cancels its handler's scope and calls `on_job_cancelled`."""
    worker = await actor_system.spawn(Worker("worker"))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job("worker")
    await worker.started.wait()
    await requester.cancel_job(job_id, reason="changed my mind")
    result = await requester.wait_for(job_id)
    assert result.statuses == {"worker": JobStatus.CANCELLED}
    assert requester.responses[job_id][0].error == "changed my mind"
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == [job_id]
    assert [(c.job_id, c.reason) for c in worker.cancelled] == [(job_id, "changed my mind")]
    assert held_jobs(worker) == {}


async def test_cancel_of_an_unknown_job_is_ignored(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`cancel_job` for an id the requester does not know does nothing."""
    await actor_system.cancel_job("no-such-job")
    assert open_jobs(actor_system) == {}


async def test_exception_in_the_block_cancels_every_worker(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """An exception inside `async with job_group(...)` cancels every worker and propagates."""
    workers = [await actor_system.spawn(Worker(name)) for name in ("a", "b")]
    with pytest.raises(RuntimeError, match=r"^the caller gave up$"):
        async with actor_system.job_group("a", "b") as g:
            for worker in workers:
                await worker.started.wait()
            raise RuntimeError("the caller gave up")
    await trio.testing.wait_all_tasks_blocked()
    for worker in workers:
        assert worker.saw_cancelled == [g.job_id]
        assert [c.job_id for c in worker.cancelled] == [g.job_id]
        assert held_jobs(worker) == {}
    assert g.statuses == {"a": JobStatus.CANCELLED, "b": JobStatus.CANCELLED}
    assert open_jobs(actor_system) == {}


async def test_exception_in_a_single_job_block_cancels_the_worker(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """An exception inside `async with job(...)` cancels the worker and propagates unchanged."""
    worker = await actor_system.spawn(Worker("worker"))
    with pytest.raises(KeyError, match=r"^'missing'$"):
        async with actor_system.job("worker"):
            await worker.started.wait()
            raise KeyError("missing")
    await trio.testing.wait_all_tasks_blocked()
    assert len(worker.cancelled) == 1
    assert held_jobs(worker) == {}


async def test_requester_cancelled_in_aexit_leaves_no_worker_running(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A requester cancelled while waiting for the answer in `__aexit__` cancels the worker:
    its handler sees Cancelled and it holds no job afterwards."""
    worker = await actor_system.spawn(Worker("worker"))
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:

            async def cancel_later() -> None:
                await worker.started.wait()
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()

            nursery.start_soon(cancel_later)
            async with actor_system.job("worker") as j:
                pass
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == [j.job_id]
    assert held_jobs(worker) == {}
    assert open_jobs(actor_system) == {}
    assert j.status is JobStatus.CANCELLED


async def test_requester_cancelled_while_iterating_leaves_no_worker_running(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A requester cancelled inside `async for event in g` cancels the worker too."""
    worker = await actor_system.spawn(Worker("worker"))
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:

            async def cancel_later() -> None:
                await worker.started.wait()
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()

            nursery.start_soon(cancel_later)
            async with actor_system.job_group("worker", cancel_on_error=False) as g:
                async for _ in g:
                    pass  # pragma: no cover - the worker sends no events
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == [g.job_id]
    assert held_jobs(worker) == {}
    assert open_jobs(actor_system) == {}


async def test_actor_requester_ending_cancels_its_jobs(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """When a requester actor ends, the jobs it still has out are cancelled at the workers."""
    worker = await actor_system.spawn(Worker("worker"))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job("worker")
    await worker.started.wait()
    await requester.end(grace=0)
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == [job_id]
    assert held_jobs(worker) == {}
