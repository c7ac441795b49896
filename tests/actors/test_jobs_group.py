"""Job groups: one job fanned out to several workers, `cancel_on_error`, and group outcomes."""

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
    JobEventType,
    JobGroupError,
    JobRequest,
    JobStatus,
    job,
)

from actor_support import open_jobs


class Member(Actor):
    """Sends an update naming itself, waits `delay` seconds, then answers or raises."""

    def __init__(self, name: str, *, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__(name)
        self.delay = delay
        self.fail = fail
        self.started = trio.Event()
        self.cancelled: list[JobCancellation] = []
        self.completed = 0

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        self.started.set()
        await self.send_job_update(request.job_id, f"{self.name} started")
        await trio.sleep(self.delay)
        if self.fail:
            raise RuntimeError(f"{self.name} gave up on {request.payload}")
        self.completed += 1
        return f"{self.name}: {request.payload}"

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled.append(cancellation)


async def test_group_collects_every_response_and_status(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`g.responses` and `g.statuses` hold every member; events name the member that sent them."""
    for name, delay in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        await actor_system.spawn(Member(name, delay=delay))
    async with actor_system.job_group("a", "b", "c", payload="topic") as g:
        events = [(event.type, event.actor_name, event.data) async for event in g]
    assert sorted(events) == [
        (JobEventType.UPDATE, "a", "a started"),
        (JobEventType.UPDATE, "b", "b started"),
        (JobEventType.UPDATE, "c", "c started"),
    ]
    assert g.statuses == dict.fromkeys("abc", JobStatus.COMPLETED)
    assert g.responses == {"a": "a: topic", "b": "b: topic", "c": "c: topic"}
    assert trio.current_time() == 3.0
    assert g.job_id


async def test_group_error_cancels_the_siblings(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """With cancel_on_error, a failing member cancels the others (their `on_job_cancelled`
    runs) and JobGroupError carries every member's status and the responses that arrived."""
    fast = await actor_system.spawn(Member("fast", delay=1.0))
    await actor_system.spawn(Member("failing", delay=2.0, fail=True))
    slow = await actor_system.spawn(Member("slow", delay=100.0))
    with pytest.raises(
        JobGroupError,
        match=r"'failing' ended ERROR \(RuntimeError: failing gave up on x\); the other members",
    ) as caught:
        async with actor_system.job_group("fast", "failing", "slow", payload="x") as g:
            pass
    assert trio.current_time() == 2.0
    error = caught.value
    assert error.job_id == g.job_id
    assert error.statuses == {
        "fast": JobStatus.COMPLETED,
        "failing": JobStatus.ERROR,
        "slow": JobStatus.CANCELLED,
    }
    assert error.responses == {"fast": "fast: x"}
    assert error.errors["failing"] == "RuntimeError: failing gave up on x"
    assert g.statuses == error.statuses
    await trio.testing.wait_all_tasks_blocked()
    assert [c.job_id for c in slow.cancelled] == [g.job_id]
    assert slow.completed == 0
    assert fast.cancelled == []


async def test_group_without_cancel_on_error_reports_every_status(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """With cancel_on_error=False the block does not raise and every member finishes."""
    await actor_system.spawn(Member("ok1", delay=3.0))
    await actor_system.spawn(Member("failing", delay=1.0, fail=True))
    await actor_system.spawn(Member("ok2", delay=5.0))
    async with actor_system.job_group(
        "ok1", "failing", "ok2", payload="y", cancel_on_error=False
    ) as g:
        pass
    assert trio.current_time() == 5.0
    assert g.statuses == {
        "ok1": JobStatus.COMPLETED,
        "failing": JobStatus.ERROR,
        "ok2": JobStatus.COMPLETED,
    }
    assert g.responses == {"ok1": "ok1: y", "ok2": "ok2: y"}


async def test_group_cancel_job_fails_the_group(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Cancelling a group (no reason given) ends every member CANCELLED and the block raises."""
    members = [await actor_system.spawn(Member(name, delay=100.0)) for name in ("a", "b")]
    with pytest.raises(JobGroupError, match=r"ended CANCELLED") as caught:
        async with actor_system.job_group("a", "b") as g:
            for member in members:
                await member.started.wait()
            await actor_system.cancel_job(g.job_id)
    assert caught.value.statuses == {"a": JobStatus.CANCELLED, "b": JobStatus.CANCELLED}
    assert trio.current_time() == 0.0
    await trio.testing.wait_all_tasks_blocked()
    assert [len(member.cancelled) for member in members] == [1, 1]


async def test_group_member_stopping_cancels_the_rest(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A member whose actor stops answers CANCELLED; with cancel_on_error that fails the
    group at once: the siblings are cancelled instead of being waited for."""
    stopper = await actor_system.spawn(Member("stopper", delay=100.0))
    other = await actor_system.spawn(Member("other", delay=100.0))
    with pytest.raises(JobGroupError, match=r"'stopper' ended CANCELLED") as caught:
        async with actor_system.job_group("stopper", "other"):
            await stopper.started.wait()
            await other.started.wait()
            stopper.end(grace=0)
    assert trio.current_time() == 0.0
    assert caught.value.statuses == {
        "stopper": JobStatus.CANCELLED,
        "other": JobStatus.CANCELLED,
    }
    await trio.testing.wait_all_tasks_blocked()
    assert len(other.cancelled) == 1


async def test_single_job_error_is_a_job_error_not_a_group_error(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`job()` raises plain JobError for a failing worker; JobGroupError is for groups."""
    await actor_system.spawn(Member("failing", fail=True))
    with pytest.raises(JobError, match=r"on 'failing' ended ERROR: RuntimeError: fail") as caught:
        async with actor_system.job("failing", payload="z"):
            pass
    assert not isinstance(caught.value, JobGroupError)
    assert caught.value.status is JobStatus.ERROR


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ((), r"^a job needs at least one worker name$"),
        (("a", "a"), r"^a job group names each worker once, got \('a', 'a'\)$"),
    ],
    ids=["no-worker", "repeated-worker"],
)
async def test_group_needs_distinct_workers(
    actor_system: ActorSystem,
    autojump_clock: MockClock,
    names: tuple[str, ...],
    message: str,
) -> None:
    """A group with no worker, or one worker named twice, is refused before anything is sent."""
    with pytest.raises(ValueError, match=message):
        async with actor_system.job_group(*names):
            pass
    assert open_jobs(actor_system) == {}
