"""Jobs with one worker: `job()`, its events, routing with `@job`, and what a handler sees."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSystem,
    JobError,
    JobEvent,
    JobEventType,
    JobRequest,
    JobStatus,
    job,
)


class Echo(Actor):
    """Answers the default job with its payload; `research` and `stream` are named jobs."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.requests: list[JobRequest[Any]] = []

    @job
    async def default(self, request: JobRequest[Any]) -> Any:
        self.requests.append(request)
        return {"echo": request.payload}

    @job(name="research")
    async def research(self, request: JobRequest[Any]) -> Any:
        self.requests.append(request)
        return f"researched {request.payload}"

    @job(name="progress")
    async def progress(self, request: JobRequest[Any]) -> Any:
        await self.send_job_update(request.job_id, "a quarter")
        await self.send_job_update(request.job_id, "a half")
        return "done"

    @job(name="stream")
    async def stream(self, request: JobRequest[Any]) -> None:
        await self.send_job_update(request.job_id, "starting")
        await self.send_job_stream_start(request.job_id, "header")
        for index in range(3):
            await self.send_job_stream_data(request.job_id, index)
        await self.send_job_stream_end(request.job_id, "footer")

    @job(name="explicit")
    async def explicit(self, request: JobRequest[Any]) -> Any:
        await self.send_job_response(request.job_id, {"explicit": True})
        return "ignored: the job was already answered"

    @job(name="whoami")
    async def whoami(self, request: JobRequest[Any]) -> Any:
        return self.job_id


class Fallback(Actor):
    """Has no `@job` handlers; handles every request in an overridden `on_job_request`."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: list[str | None] = []

    async def on_job_request(self, request: JobRequest[Any]) -> Any:
        self.seen.append(request.name)
        return f"fallback handled {request.name}"


async def test_job_returns_the_response_and_completed(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A handler's return value is the job's response, with status COMPLETED."""
    await actor_system.spawn(Echo("echo"))
    async with actor_system.job("echo", payload=[1, 2]) as j:
        pass
    assert j.status is JobStatus.COMPLETED
    assert j.response == {"echo": [1, 2]}
    assert j.actor_name == "echo"
    assert isinstance(j.job_id, str) and j.job_id


async def test_job_events_arrive_in_order_and_the_stream_end_completes(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Events come in the order sent, with actor name and data; STREAM_END's data answers."""
    await actor_system.spawn(Echo("echo"))
    events: list[JobEvent] = []
    async with actor_system.job("echo", name="stream") as j:
        async for event in j:
            events.append(event)
    assert [(e.type, e.actor_name, e.data) for e in events] == [
        (JobEventType.UPDATE, "echo", "starting"),
        (JobEventType.STREAM_START, "echo", "header"),
        (JobEventType.STREAM_DATA, "echo", 0),
        (JobEventType.STREAM_DATA, "echo", 1),
        (JobEventType.STREAM_DATA, "echo", 2),
        (JobEventType.STREAM_END, "echo", "footer"),
    ]
    assert all(e.job_id == j.job_id for e in events)
    assert JobEvent.STREAM_END is JobEventType.STREAM_END
    assert j.status is JobStatus.COMPLETED
    assert j.response == "footer"


async def test_job_updates_then_the_return_value(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Updates are yielded as UPDATE events and the iteration ends when the handler returns."""
    await actor_system.spawn(Echo("echo"))
    async with actor_system.job("echo", name="progress") as j:
        seen = [(event.type, event.data) async for event in j]
    assert seen == [(JobEventType.UPDATE, "a quarter"), (JobEventType.UPDATE, "a half")]
    assert (j.status, j.response) == (JobStatus.COMPLETED, "done")


async def test_send_job_response_answers_once(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """An explicit `send_job_response` is the answer; the handler's later return is ignored."""
    await actor_system.spawn(Echo("echo"))
    async with actor_system.job("echo", name="explicit") as j:
        pass
    assert (j.status, j.response) == (JobStatus.COMPLETED, {"explicit": True})


async def test_named_handler_routing(actor_system: ActorSystem, autojump_clock: MockClock) -> None:
    """`@job(name=...)` gets the requests for that name; the bare `@job` gets the unnamed ones."""
    echo = await actor_system.spawn(Echo("echo"))
    async with actor_system.job("echo", name="research", payload="trio") as named:
        pass
    async with actor_system.job("echo", payload="trio") as unnamed:
        pass
    assert named.response == "researched trio"
    assert unnamed.response == {"echo": "trio"}
    assert [r.name for r in echo.requests] == ["research", None]


async def test_unknown_name_answers_error_by_default(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A name with no handler reaches the default `on_job_request`, which answers ERROR."""
    await actor_system.spawn(Echo("echo"))
    with pytest.raises(JobError, match=r"ended ERROR: LookupError: .*no handler for job 'nope'"):
        async with actor_system.job("echo", name="nope"):
            pass


async def test_overridden_on_job_request_handles_every_name(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """An actor without `@job` handlers handles named and unnamed jobs in `on_job_request`."""
    fallback = await actor_system.spawn(Fallback("fallback"))
    async with actor_system.job("fallback", name="anything") as named:
        pass
    async with actor_system.job("fallback") as unnamed:
        pass
    assert named.response == "fallback handled anything"
    assert unnamed.response == "fallback handled None"
    assert fallback.seen == ["anything", None]


async def test_handler_sees_the_request_fields(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """The handler's JobRequest carries the job id, name, payload, sender and deadline."""
    echo = await actor_system.spawn(Echo("echo"))
    start = trio.current_time()
    async with actor_system.job("echo", name="research", payload={"q": 1}, timeout=7) as j:
        pass
    (request,) = echo.requests
    assert request.job_id == j.job_id
    assert request.name == "research"
    assert request.payload == {"q": 1}
    assert request.sender == actor_system.address
    assert request.deadline == start + 7


async def test_handler_without_deadline_sees_none(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Without a timeout or an enclosing deadline, the request's deadline is None."""
    echo = await actor_system.spawn(Echo("echo"))
    async with actor_system.job("echo"):
        pass
    assert echo.requests[0].deadline is None


async def test_job_id_property_inside_a_handler(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`self.job_id` in a handler is the id of the job it is handling."""
    await actor_system.spawn(Echo("echo"))
    async with actor_system.job("echo", name="whoami") as j:
        pass
    assert j.response == j.job_id


async def test_actor_as_requester(actor_system: ActorSystem, autojump_clock: MockClock) -> None:
    """An actor awaits a job from inside its own job handler without deadlocking its mailbox."""

    class Boss(Actor):
        @job
        async def delegate(self, request: JobRequest[Any]) -> Any:
            async with self.job("echo", payload=request.payload) as inner:
                pass
            return inner.response

    echo = await actor_system.spawn(Echo("echo"))
    await actor_system.spawn(Boss("boss"))
    async with actor_system.job("boss", payload="x") as j:
        pass
    assert j.response == {"echo": "x"}
    assert echo.requests[0].sender == "boss"


async def test_job_context_outside_the_block_is_an_error(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Reading a job's results before entering its block is a clear error."""
    context = actor_system.job("anyone")
    with pytest.raises(RuntimeError, match=r"^the job has not been started; use it with"):
        _ = context.response
    assert "not started" in repr(context)
