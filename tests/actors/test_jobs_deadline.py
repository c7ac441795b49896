"""One deadline: `timeout=` or an enclosing Trio deadline covers readiness and work, travels
to the worker, and however it expires the requester sees `JobTimeout`."""

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
    JobStatus,
    JobTimeout,
    job,
)

from actor_support import held_jobs, open_jobs


class Sleeper(Actor):
    """Answers after `delay` seconds; records requests, cancellations and whether it finished."""

    def __init__(self, name: str, *, delay: float = 0.0) -> None:
        super().__init__(name)
        self.delay = delay
        self.requests: list[JobRequest[Any]] = []
        self.cancelled: list[JobCancellation] = []
        self.saw_cancelled = 0

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        self.requests.append(request)
        try:
            await trio.sleep(self.delay)
        except trio.Cancelled:
            self.saw_cancelled += 1
            raise
        return f"{self.name} done"

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled.append(cancellation)


async def test_never_ready_worker_times_out_at_the_deadline(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Waiting for a worker that never appears ends in JobTimeout exactly at the deadline."""
    await trio.sleep(5)
    with pytest.raises(JobTimeout, match=r"timed out") as caught:
        async with actor_system.job("ghost", timeout=1):
            pass  # pragma: no cover - the block is never entered
    assert trio.current_time() == 6
    assert caught.value.statuses == {"ghost": JobStatus.CANCELLED}
    assert caught.value.responses == {}
    assert isinstance(caught.value, JobError)
    assert isinstance(caught.value, TimeoutError)


async def test_readiness_waits_are_released_after_a_timeout(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A timed-out readiness wait leaves no registry waiter and no job state behind."""
    with pytest.raises(
        JobTimeout,
        match=(
            r"timed out: 'ghost1' was never registered \(no actor of that name\); "
            r"'ghost2' was never registered \(no actor of that name\)$"
        ),
    ):
        async with actor_system.job_group("ghost1", "ghost2", timeout=1):
            pass  # pragma: no cover
    assert actor_system.registry.waiter_count() == 0
    assert open_jobs(actor_system) == {}


async def test_worker_spawned_after_the_deadline_is_too_late(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker that becomes ready after the deadline never gets the request."""
    late = Sleeper("late")
    async with trio.open_nursery() as nursery:

        async def spawn_late() -> None:
            await trio.sleep(2)
            await actor_system.spawn(late)

        nursery.start_soon(spawn_late)
        with pytest.raises(
            JobTimeout, match=r"timed out: 'late' was never registered \(no actor of that name\)$"
        ):
            async with actor_system.job("late", timeout=1):
                pass  # pragma: no cover
        assert trio.current_time() == 1
    assert trio.current_time() == 2
    assert late.requests == []


async def test_worker_spawned_before_the_deadline_gets_the_rest_of_the_budget(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker that appears while the requester waits runs under the original deadline."""
    worker = Sleeper("worker", delay=1)
    async with trio.open_nursery() as nursery:

        async def spawn_later() -> None:
            await trio.sleep(2)
            await actor_system.spawn(worker)

        nursery.start_soon(spawn_later)
        async with actor_system.job("worker", timeout=5) as j:
            pass
    assert trio.current_time() == 3
    assert j.response == "worker done"
    assert worker.requests[0].deadline == 5


async def test_slow_handler_times_out_and_is_cancelled(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A handler slower than `timeout=` ends in JobTimeout at the deadline, and the worker's
    job is cancelled: its handler saw Cancelled, `on_job_cancelled` ran, nothing is held."""
    worker = await actor_system.spawn(Sleeper("worker", delay=100))
    with pytest.raises(JobTimeout, match=r"timed out") as caught:
        async with actor_system.job("worker", timeout=2):
            pass
    assert trio.current_time() == 2
    assert caught.value.statuses == {"worker": JobStatus.CANCELLED}
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == 1
    assert [c.job_id for c in worker.cancelled] == [caught.value.job_id]
    assert held_jobs(worker) == {}
    assert open_jobs(actor_system) == {}


async def test_request_carries_the_requesters_deadline(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """The worker's `JobRequest.deadline` is the requester's deadline: the budget travels."""
    worker = await actor_system.spawn(Sleeper("worker"))
    await trio.sleep(3)
    async with actor_system.job("worker", timeout=4):
        pass
    assert worker.requests[0].deadline == 7
    with trio.move_on_after(6):
        async with actor_system.job("worker"):
            pass
    assert worker.requests[1].deadline == 9


async def test_deadline_that_passes_while_the_block_runs_is_a_job_timeout(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """When the worker's copy of the deadline cancels it while the block is still busy, leaving
    the block raises JobTimeout, not a plain JobError."""
    worker = await actor_system.spawn(Sleeper("worker", delay=100))
    with pytest.raises(JobTimeout, match=r"timed out: 'worker' was still working$") as caught:
        async with actor_system.job("worker", timeout=3):
            await trio.sleep(10)
            assert worker.saw_cancelled == 1
    assert trio.current_time() == 10
    assert caught.value.statuses == {"worker": JobStatus.CANCELLED}


async def test_move_on_after_around_a_job_moves_on_and_cancels_the_worker(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """An enclosing `move_on_after` (no `timeout=`) moves on, as everywhere in Trio: no
    JobTimeout escapes it, the worker ran under that deadline and was cancelled by it."""
    worker = await actor_system.spawn(Sleeper("worker", delay=100))
    with trio.move_on_after(3) as scope:
        async with actor_system.job("worker"):
            pass
    assert scope.cancelled_caught
    assert trio.current_time() == 3
    assert worker.requests[0].deadline == 3
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == 1
    assert held_jobs(worker) == {}
    assert open_jobs(actor_system) == {}


async def test_fail_after_around_a_job_raises_too_slow(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """An enclosing `fail_after` raises `trio.TooSlowError`, and the worker is cancelled."""
    worker = await actor_system.spawn(Sleeper("worker", delay=100))
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(3):
            async with actor_system.job("worker"):
                pass
    assert trio.current_time() == 3
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == 1
    assert held_jobs(worker) == {}


@pytest.mark.parametrize("scope", ["move_on_after", "fail_after"])
async def test_enclosing_deadline_while_waiting_for_readiness_leaves_through_cancelled(
    actor_system: ActorSystem, autojump_clock: MockClock, scope: str
) -> None:
    """An enclosing deadline that passes while the worker is not ready leaves the block the
    Trio way (moved on, or TooSlowError), and releases the readiness wait."""
    if scope == "move_on_after":
        with trio.move_on_after(2) as cancel_scope:
            async with actor_system.job("ghost"):
                pass  # pragma: no cover
        assert cancel_scope.cancelled_caught
    else:
        with pytest.raises(trio.TooSlowError), trio.fail_after(2):
            async with actor_system.job("ghost"):
                pass  # pragma: no cover
    assert trio.current_time() == 2
    assert actor_system.registry.waiter_count() == 0
    assert open_jobs(actor_system) == {}


async def test_enclosing_deadline_while_iterating_events_is_a_job_timeout(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A deadline that passes during `async for event in j` raises JobTimeout too."""

    class Chatty(Actor):
        @job
        async def chat(self, request: JobRequest[Any]) -> None:
            for index in range(10):
                await self.send_job_update(request.job_id, index)
                await trio.sleep(1)

    await actor_system.spawn(Chatty("chatty"))
    seen: list[Any] = []
    with pytest.raises(JobTimeout, match=r"timed out: 'chatty' was still working$"):
        async with actor_system.job("chatty", timeout=3.5) as j:
            async for event in j:
                seen.append(event.data)
    assert trio.current_time() == 3.5
    assert seen == [0, 1, 2, 3]


async def test_timeout_carries_what_did_arrive(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """JobTimeout has every member's status and the responses of members that finished."""
    await actor_system.spawn(Sleeper("fast", delay=1))
    slow = await actor_system.spawn(Sleeper("slow", delay=100))
    with pytest.raises(
        JobTimeout, match=r"timed out: 'ghost' was never registered \(no actor of that name\)$"
    ) as caught:
        async with actor_system.job_group("ghost", timeout=2):
            pass  # pragma: no cover - 'ghost' never becomes ready
    assert trio.current_time() == 2
    assert caught.value.statuses == {"ghost": JobStatus.CANCELLED}

    with pytest.raises(JobTimeout, match=r"timed out: 'slow' was still working$") as caught:
        async with actor_system.job_group("fast", "slow", timeout=2):
            pass
    assert trio.current_time() == 4
    assert caught.value.statuses == {"fast": JobStatus.COMPLETED, "slow": JobStatus.CANCELLED}
    assert caught.value.responses == {"fast": "fast done"}
    await trio.testing.wait_all_tasks_blocked()
    assert slow.saw_cancelled == 1


async def test_zero_timeout_times_out_at_once(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`timeout=0` times out at once, even for a ready worker."""
    worker = await actor_system.spawn(Sleeper("worker", delay=1))
    with pytest.raises(JobTimeout, match=r"timed out: 'worker' was still working$"):
        async with actor_system.job("worker", timeout=0):
            pass
    assert trio.current_time() == 0
    await trio.testing.wait_all_tasks_blocked()
    assert held_jobs(worker) == {}


@pytest.mark.parametrize("bad_timeout", [-1.0, float("nan")])
async def test_invalid_timeout_is_refused(
    actor_system: ActorSystem, autojump_clock: MockClock, bad_timeout: float
) -> None:
    """A negative or NaN timeout is a ValueError before anything is sent."""
    with pytest.raises(ValueError, match=r"^timeout must be >= 0, got"):
        async with actor_system.job("anyone", timeout=bad_timeout):
            pass  # pragma: no cover
