"""Fire-and-forget jobs: `request_job*` return the job id and answers arrive on the hooks."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSystem,
    JobEvent,
    JobEventType,
    JobRequest,
    JobResponse,
    JobResult,
    JobStatus,
    JobTimeout,
    job,
)

from actor_support import open_jobs


class Worker(Actor):
    """Streams, answers or fails, after `delay` seconds."""

    def __init__(self, name: str, *, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__(name)
        self.delay = delay
        self.fail = fail
        self.requests: list[JobRequest[Any]] = []

    @job
    async def answer(self, request: JobRequest[Any]) -> Any:
        self.requests.append(request)
        await trio.sleep(self.delay)
        if self.fail:
            raise ValueError(f"{self.name} failed")
        return f"{self.name} answered {request.payload}"

    @job(name="stream")
    async def stream(self, request: JobRequest[Any]) -> None:
        await self.send_job_update(request.job_id, "progress")
        await self.send_job_stream_start(request.job_id, "start")
        await self.send_job_stream_data(request.job_id, 1)
        await self.send_job_stream_data(request.job_id, 2)
        await self.send_job_stream_end(request.job_id, "end")


class Requester(Actor):
    """Records every hook call, in order, as ``(hook, ...)`` tuples."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls: list[tuple[Any, ...]] = []
        self.completed: dict[str, JobResult] = {}
        self.changed = trio.Event()

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        self.changed.set()
        self.changed = trio.Event()

    async def on_job_response(self, response: JobResponse) -> None:
        await super().on_job_response(response)
        self._record("response", response.actor_name, response.status, response.response)

    async def on_job_update(self, event: JobEvent) -> None:
        await super().on_job_update(event)
        self._record("update", event.actor_name, event.data)

    async def on_job_stream_start(self, event: JobEvent) -> None:
        await super().on_job_stream_start(event)
        self._record("stream_start", event.actor_name, event.data)

    async def on_job_stream_data(self, event: JobEvent) -> None:
        await super().on_job_stream_data(event)
        self._record("stream_data", event.actor_name, event.data)

    async def on_job_stream_end(self, event: JobEvent) -> None:
        await super().on_job_stream_end(event)
        assert event.type is JobEventType.STREAM_END
        self._record("stream_end", event.actor_name, event.data)

    async def on_job_error(self, response: JobResponse) -> None:
        await super().on_job_error(response)
        self._record("error", response.actor_name, response.status, response.error)

    async def on_job_completed(self, result: JobResult) -> None:
        await super().on_job_completed(result)
        self.completed[result.job_id] = result
        self._record("completed", result.job_id)

    async def wait_completed(self, job_id: str) -> JobResult:
        while job_id not in self.completed:
            await self.changed.wait()
        return self.completed[job_id]


async def test_request_job_returns_the_id_and_answers_arrive_on_hooks(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`request_job` returns at once with the job id; the answer reaches `on_job_response`
    and then `on_job_completed`."""
    worker = await actor_system.spawn(Worker("worker", delay=5))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job("worker", payload="q")
    assert trio.current_time() == 0
    assert isinstance(job_id, str)
    result = await requester.wait_completed(job_id)
    assert trio.current_time() == 5
    assert worker.requests[0].job_id == job_id
    assert worker.requests[0].sender == "requester"
    assert result == JobResult(
        job_id, {"worker": JobStatus.COMPLETED}, {"worker": "worker answered q"}
    )
    assert requester.calls == [
        ("response", "worker", JobStatus.COMPLETED, "worker answered q"),
        ("completed", job_id),
    ]
    assert open_jobs(requester) == {}


async def test_stream_hooks_fire_in_order(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Update and stream hooks fire in the order the worker sent; the end completes the job."""
    await actor_system.spawn(Worker("worker"))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job("worker", name="stream")
    result = await requester.wait_completed(job_id)
    assert requester.calls == [
        ("update", "worker", "progress"),
        ("stream_start", "worker", "start"),
        ("stream_data", "worker", 1),
        ("stream_data", "worker", 2),
        ("stream_end", "worker", "end"),
        ("response", "worker", JobStatus.COMPLETED, "end"),
        ("completed", job_id),
    ]
    assert result.responses == {"worker": "end"}


async def test_request_job_group_reports_each_member_then_completion(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`request_job_group` returns one id; each member's answer and the JobResult arrive."""
    for name, delay in (("a", 2.0), ("b", 1.0)):
        await actor_system.spawn(Worker(name, delay=delay))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job_group("a", "b", payload="p")
    result = await requester.wait_completed(job_id)
    assert requester.calls == [
        ("response", "b", JobStatus.COMPLETED, "b answered p"),
        ("response", "a", JobStatus.COMPLETED, "a answered p"),
        ("completed", job_id),
    ]
    assert result.statuses == {"a": JobStatus.COMPLETED, "b": JobStatus.COMPLETED}
    assert result.responses == {"a": "a answered p", "b": "b answered p"}


async def test_on_job_error_fires_for_a_failing_group_member(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A failing member of a group (cancel_on_error) reaches `on_job_error`, the others are
    cancelled, and `on_job_completed` has every status."""
    await actor_system.spawn(Worker("ok", delay=1))
    await actor_system.spawn(Worker("failing", delay=2, fail=True))
    await actor_system.spawn(Worker("slow", delay=100))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job_group("ok", "failing", "slow")
    result = await requester.wait_completed(job_id)
    assert trio.current_time() == 2
    assert result.statuses == {
        "ok": JobStatus.COMPLETED,
        "failing": JobStatus.ERROR,
        "slow": JobStatus.CANCELLED,
    }
    assert result.responses == {"ok": "ok answered None"}
    assert requester.calls == [
        ("response", "ok", JobStatus.COMPLETED, "ok answered None"),
        ("response", "failing", JobStatus.ERROR, None),
        ("error", "failing", JobStatus.ERROR, "ValueError: failing failed"),
        ("response", "slow", JobStatus.CANCELLED, None),
        ("completed", job_id),
    ]


async def test_group_without_cancel_on_error_lets_the_others_finish(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """With cancel_on_error=False a failing member does not cancel the others or call
    `on_job_error`; `on_job_completed` still has its ERROR."""
    await actor_system.spawn(Worker("failing", delay=1, fail=True))
    await actor_system.spawn(Worker("slow", delay=3))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job_group("failing", "slow", cancel_on_error=False)
    result = await requester.wait_completed(job_id)
    assert trio.current_time() == 3
    assert result.statuses == {"failing": JobStatus.ERROR, "slow": JobStatus.COMPLETED}
    assert [call[0] for call in requester.calls] == ["response", "response", "completed"]


async def test_fire_and_forget_timeout_reports_cancelled(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A fire-and-forget job whose deadline passes at the worker is answered CANCELLED on the
    hooks, at the deadline, without `on_job_error` (a timeout is not a member's failure)."""
    await actor_system.spawn(Worker("slow", delay=100))
    requester = await actor_system.spawn(Requester("requester"))
    job_id = await requester.request_job("slow", timeout=2)
    result = await requester.wait_completed(job_id)
    assert trio.current_time() == 2
    assert result.statuses == {"slow": JobStatus.CANCELLED}
    assert requester.calls == [
        ("response", "slow", JobStatus.CANCELLED, None),
        ("completed", job_id),
    ]


async def test_request_job_to_a_never_ready_worker_times_out(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`request_job` waits for readiness within its timeout and raises JobTimeout after it,
    leaving no job state and no readiness wait behind."""
    requester = await actor_system.spawn(Requester("requester"))
    with pytest.raises(
        JobTimeout, match=r"timed out: 'ghost' was never registered \(no actor of that name\)$"
    ):
        await requester.request_job("ghost", timeout=3)
    assert trio.current_time() == 3
    assert open_jobs(requester) == {}
    assert actor_system.registry.waiter_count() == 0
    assert requester.calls == []
