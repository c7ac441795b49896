"""The worker side: typed payloads, concurrency, `sequential`, `max_concurrent_jobs`, update
requests, and answers that cannot cross a process boundary."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSystem,
    JobError,
    JobEventType,
    JobRequest,
    JobStatus,
    job,
)

from actor_support import held_jobs


class ResearchArgs(msgspec.Struct, frozen=True):
    """A typed job payload."""

    topic: str
    depth: int = 1


class Researcher(Actor):
    """Takes a typed payload; records what its handler received."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.received: list[Any] = []

    @job(name="research")
    async def research(self, request: JobRequest[ResearchArgs]) -> Any:
        self.received.append(request.payload)
        return f"{request.payload.topic} at depth {request.payload.depth}"


class Tracker(Actor):
    """Each handler run waits `delay` seconds; tracks running counts and start order."""

    def __init__(self, name: str, *, delay: float = 1.0, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.delay = delay
        self.running = 0
        self.max_running = 0
        self.started: list[Any] = []
        self.start_times: dict[Any, float] = {}

    async def _track(self, request: JobRequest[Any]) -> Any:
        self.started.append(request.payload)
        self.start_times[request.payload] = trio.current_time()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await trio.sleep(self.delay)
        finally:
            self.running -= 1
        return request.payload

    @job
    async def concurrent(self, request: JobRequest[Any]) -> Any:
        return await self._track(request)

    @job(name="one-at-a-time", sequential=True)
    async def one_at_a_time(self, request: JobRequest[Any]) -> Any:
        return await self._track(request)


async def test_typed_payload_is_validated_into_the_struct(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A handler annotated `JobRequest[ResearchArgs]` receives a validated ResearchArgs."""
    researcher = await actor_system.spawn(Researcher("researcher"))
    async with actor_system.job(
        "researcher", name="research", payload={"topic": "trio", "depth": 3}
    ) as j:
        pass
    assert j.response == "trio at depth 3"
    async with actor_system.job("researcher", name="research", payload=ResearchArgs("actors")) as k:
        pass
    assert k.response == "actors at depth 1"
    assert researcher.received == [ResearchArgs("trio", 3), ResearchArgs("actors", 1)]


async def test_invalid_typed_payload_answers_error_without_running(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A payload that does not validate answers ERROR with msgspec's message and `$.` path,
    and the handler never runs."""
    researcher = await actor_system.spawn(Researcher("researcher"))
    with pytest.raises(
        JobError,
        match=r"ended ERROR: invalid payload: Expected `int`, got `str` - at `\$\.depth`$",
    ) as caught:
        async with actor_system.job(
            "researcher", name="research", payload={"topic": "trio", "depth": "deep"}
        ):
            pass
    assert caught.value.status is JobStatus.ERROR
    assert "$.depth" in caught.value.errors["researcher"]
    with pytest.raises(JobError, match=r"Object missing required field `topic`"):
        async with actor_system.job("researcher", name="research", payload={}):
            pass
    assert researcher.received == []


async def test_jobs_run_concurrently_by_default(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Requests for an ordinary handler run at the same time."""
    tracker = await actor_system.spawn(Tracker("tracker", delay=1))
    async with trio.open_nursery() as nursery:
        for index in range(6):
            nursery.start_soon(_run_job, actor_system, "tracker", None, index)
    assert trio.current_time() == 1
    assert tracker.max_running == 6
    assert sorted(tracker.started) == [0, 1, 2, 3, 4, 5]


async def test_sequential_handler_runs_one_at_a_time_in_arrival_order(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`@job(name=..., sequential=True)` runs that name's requests one by one, in arrival order."""
    tracker = await actor_system.spawn(Tracker("tracker", delay=1))
    requester = await actor_system.spawn(Actor("requester"))
    for index in range(4):
        await requester.request_job("tracker", name="one-at-a-time", payload=index)
    await trio.sleep(10)
    assert tracker.started == [0, 1, 2, 3]
    assert tracker.max_running == 1
    assert held_jobs(tracker) == {}


async def test_sequential_handler_completes_each_job_in_turn(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Callers of a sequential handler finish one second apart; other names are not held up."""
    await actor_system.spawn(Tracker("tracker", delay=1))
    finished: dict[Any, float] = {}

    async def one(payload: Any, name: str | None) -> None:
        async with actor_system.job("tracker", name=name, payload=payload) as j:
            pass
        finished[j.response] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(one, index, "one-at-a-time")
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(one, "free", None)
    assert finished == {0: 1.0, 1: 2.0, 2: 3.0, "free": 1.0}


async def test_max_concurrent_jobs_bounds_the_handlers(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """With `max_concurrent_jobs=2` at most two handlers run; the rest wait in arrival order."""
    tracker = await actor_system.spawn(Tracker("tracker", delay=1, max_concurrent_jobs=2))
    requester = await actor_system.spawn(Actor("requester"))
    for index in range(6):
        await requester.request_job("tracker", payload=index)
    await trio.testing.wait_all_tasks_blocked()
    assert tracker.running == 2
    await trio.sleep(10)
    # Admitted two at a time in arrival order (the two of a wave start in the same instant).
    assert tracker.start_times == {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
    assert tracker.max_running == 2


async def test_max_concurrent_jobs_completes_in_waves(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Six one-second jobs with a bound of two take three seconds in all."""
    await actor_system.spawn(Tracker("tracker", delay=1, max_concurrent_jobs=2))
    async with trio.open_nursery() as nursery:
        for index in range(6):
            nursery.start_soon(_run_job, actor_system, "tracker", None, index)
    assert trio.current_time() == 3


async def test_a_cancelled_job_waiting_for_admission_never_runs(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A request waiting behind `sequential` is cancelled without its handler running."""
    tracker = await actor_system.spawn(Tracker("tracker", delay=5))
    requester = await actor_system.spawn(Actor("requester"))
    await requester.request_job("tracker", name="one-at-a-time", payload="first")
    second = await requester.request_job("tracker", name="one-at-a-time", payload="second")
    await trio.testing.wait_all_tasks_blocked()
    assert second in held_jobs(tracker)
    await requester.cancel_job(second)
    await trio.sleep(10)
    assert tracker.started == ["first"]
    assert held_jobs(tracker) == {}


async def test_request_job_update_reaches_the_worker_and_its_update_comes_back(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`request_job_update` calls the worker's `on_job_update_requested`, whose
    `send_job_update` arrives at the requester as an UPDATE event."""

    class Reporter(Actor):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.progress = 0
            self.asked: list[str] = []
            self.finish = trio.Event()

        @job
        async def work(self, request: JobRequest[Any]) -> Any:
            self.progress = 40
            await self.finish.wait()
            return "finished"

        async def on_job_update_requested(self, request: JobRequest[Any]) -> None:
            await super().on_job_update_requested(request)
            self.asked.append(request.job_id)
            await self.send_job_update(request.job_id, {"progress": self.progress})

    reporter = await actor_system.spawn(Reporter("reporter"))
    async with actor_system.job("reporter") as j:
        await trio.testing.wait_all_tasks_blocked()
        await actor_system.request_job_update(j.job_id, "reporter")
        async for event in j:
            assert (event.type, event.actor_name, event.data) == (
                JobEventType.UPDATE,
                "reporter",
                {"progress": 40},
            )
            reporter.finish.set()
    assert reporter.asked == [j.job_id]
    assert j.response == "finished"


async def test_response_that_cannot_cross_a_process_answers_error(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """In strict mode a handler returning something the codec cannot encode answers ERROR at
    once instead of leaving the requester waiting."""

    class Leaky(Actor):
        @job
        async def work(self, request: JobRequest[Any]) -> Any:
            return object()

    leaky = await actor_system.spawn(Leaky("leaky"))
    with pytest.raises(JobError, match=r"ended ERROR: EncodeError") as caught:
        async with actor_system.job("leaky", timeout=100):
            pass
    assert trio.current_time() == 0
    assert caught.value.status is JobStatus.ERROR
    await trio.testing.wait_all_tasks_blocked()
    assert held_jobs(leaky) == {}


def test_job_decorator_refuses_a_plain_function() -> None:
    """`@job` on something that is not an async function is a TypeError."""
    with pytest.raises(TypeError, match=r"^@job handlers must be async functions, got"):

        @job
        def not_async(self: Any, request: JobRequest[Any]) -> None:  # pragma: no cover
            pass


def test_two_handlers_for_one_name_are_refused() -> None:
    """A class that marks two methods for the same job name fails when it is defined."""
    with pytest.raises(TypeError, match=r"has two handlers for job 'x': 'first' and 'second'$"):

        class Confused(Actor):
            @job(name="x")
            async def first(self, request: JobRequest[Any]) -> None:  # pragma: no cover
                pass

            @job(name="x")
            async def second(self, request: JobRequest[Any]) -> None:  # pragma: no cover
                pass


def test_subclass_handler_overrides_the_base_one() -> None:
    """A subclass's `@job(name=...)` replaces its base class's handler for that name."""

    class Base(Actor):
        @job(name="x")
        async def base(self, request: JobRequest[Any]) -> None:  # pragma: no cover
            pass

    class Derived(Base):
        @job(name="x")
        async def derived(self, request: JobRequest[Any]) -> None:  # pragma: no cover
            pass

    assert Derived._job_table["x"][0] == "derived"
    assert Base._job_table["x"][0] == "base"


async def _run_job(system: ActorSystem, worker: str, name: str | None, payload: Any) -> None:
    async with system.job(worker, name=name, payload=payload) as j:
        pass
    assert j.response == payload
