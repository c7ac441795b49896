"""Jobs across two actor systems on one strict MemoryTransport: local equals remote."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    Envelope,
    JobCancellation,
    JobError,
    JobEventType,
    JobRequest,
    JobStatus,
    JobTimeout,
    job,
)
from actors.testing import open_test_system, wait_ready
from transports import MemoryTransport

from actor_support import held_jobs, open_jobs


class Crash(msgspec.Struct, frozen=True):
    """Makes a `RemoteWorker` crash in `on_message`."""


class RemoteWorker(Actor):
    """Streams a little, then waits `delay` seconds; crashes on a `Crash` message."""

    def __init__(self, name: str, *, delay: float = 0.0) -> None:
        super().__init__(name)
        self.delay = delay
        self.requests: list[JobRequest[Any]] = []
        self.started = trio.Event()
        self.cancelled: list[JobCancellation] = []

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        self.requests.append(request)
        await self.send_job_stream_start(request.job_id, "start")
        await self.send_job_stream_data(request.job_id, {"chunk": request.payload})
        self.started.set()
        await trio.sleep(self.delay)
        await self.send_job_stream_end(request.job_id, f"{self.name} done")

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled.append(cancellation)

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, Crash):
            raise RuntimeError("remote worker crashed")


async def test_job_to_a_worker_on_another_system(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """A requester on system A runs a job on system B's worker: events, response and the
    deadline cross the transport."""
    async with (
        open_test_system("a", transport=strict_transport) as system_a,
        open_test_system("b", transport=strict_transport) as system_b,
    ):
        worker = await system_b.spawn(RemoteWorker("worker", delay=1))
        with trio.fail_after(1):
            await wait_ready(system_a, "worker")
        start = trio.current_time()
        async with system_a.job("worker", payload=7, timeout=10) as j:
            events = [(e.type, e.actor_name, e.data) async for e in j]
        assert events == [
            (JobEventType.STREAM_START, "worker", "start"),
            (JobEventType.STREAM_DATA, "worker", {"chunk": 7}),
            (JobEventType.STREAM_END, "worker", "worker done"),
        ]
        assert (j.status, j.response) == (JobStatus.COMPLETED, "worker done")
        assert worker.requests[0].sender == system_a.address
        assert worker.requests[0].deadline == start + 10
        assert open_jobs(system_a) == {}
        await trio.testing.wait_all_tasks_blocked()
        assert held_jobs(worker) == {}


async def test_remote_worker_crash_fails_the_job_at_once(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """When the worker on system B crashes mid-job, the requester on A gets FAILED promptly."""
    async with (
        open_test_system("a", transport=strict_transport) as system_a,
        open_test_system("b", transport=strict_transport) as system_b,
    ):
        worker = await system_b.spawn(RemoteWorker("worker", delay=1000))
        await wait_ready(system_a, "worker")
        start = trio.current_time()
        with pytest.raises(JobError, match=r"ended FAILED") as caught:
            async with system_a.job("worker", timeout=100):
                await worker.started.wait()
                await worker.send_message("worker", Crash())
        assert trio.current_time() == start
        assert caught.value.statuses == {"worker": JobStatus.FAILED}
        assert not isinstance(caught.value, JobTimeout)


async def test_remote_system_closing_cancels_the_job(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """When system B closes while its worker holds A's job, A's job ends CANCELLED at once."""
    started = trio.Event()
    close_b = trio.Event()

    async def run_b() -> None:
        async with open_test_system("b", transport=strict_transport) as system_b:
            worker = await system_b.spawn(RemoteWorker("worker", delay=1000))
            await worker.started.wait()
            started.set()
            await close_b.wait()

    async with (
        open_test_system("a", transport=strict_transport) as system_a,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(run_b)
        with pytest.raises(JobError, match=r"ended CANCELLED") as caught:
            async with system_a.job("worker", timeout=100):
                await started.wait()
                close_b.set()
        assert trio.current_time() == 0
        assert caught.value.statuses == {"worker": JobStatus.CANCELLED}


async def test_remote_cancel_reaches_the_worker(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """`cancel_job` on A cancels the handler on B, whose `on_job_cancelled` runs."""
    async with (
        open_test_system("a", transport=strict_transport) as system_a,
        open_test_system("b", transport=strict_transport) as system_b,
    ):
        worker = await system_b.spawn(RemoteWorker("worker", delay=1000))
        await wait_ready(system_a, "worker")
        with pytest.raises(JobError, match=r"ended CANCELLED") as caught:
            async with system_a.job("worker") as j:
                await worker.started.wait()
                await system_a.cancel_job(j.job_id)
        assert caught.value.status is JobStatus.CANCELLED
        await trio.testing.wait_all_tasks_blocked()
        assert [c.job_id for c in worker.cancelled] == [j.job_id]
        assert held_jobs(worker) == {}


async def test_work_requested_by_a_vanished_system_is_cancelled(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """When a requesting system vanishes without goodbye, its jobs at our workers stop."""
    from actors import EnvelopeCodec
    from actors._wire.envelope import Envelope as WireEnvelope
    from actors._wire.envelope import JobRequestMessage

    async with open_test_system("workers", transport=strict_transport) as workers:
        worker = await workers.spawn(RemoteWorker("w", delay=100))
        # A system that dies mid-job: it never gets to cancel what it asked for.
        with pytest.raises(RuntimeError, match="process died"):
            async with strict_transport.connect("ghost") as ghost:
                await ghost.claim("system:ghost")
                request = WireEnvelope(
                    id="1",
                    sender="system:ghost",
                    recipient="w",
                    body=JobRequestMessage(payload=1),
                    job_id="orphan",
                )
                await ghost.send("w", EnvelopeCodec().encode(request))
                await worker.started.wait()
                raise RuntimeError("process died")
        with trio.fail_after(1):
            await worker._require_worker().wait_idle()
        assert [c.job_id for c in worker.cancelled] == ["orphan"]
        assert trio.current_time() < 1
