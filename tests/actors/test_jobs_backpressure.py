"""Backpressure: a requester that does not read slows its worker instead of queueing without end."""

from __future__ import annotations

from typing import Any

import msgspec
import trio
from trio.testing import MockClock

from actors import Actor, ActorSystem, Envelope, JobEvent, JobEventType, JobRequest, job
from actors._jobs.types import CREDIT_WINDOW


class Hold(msgspec.Struct, frozen=True):
    """Keeps the recipient's mailbox loop busy until its `release` event is set."""


class Streamer(Actor):
    """Streams `request.payload` chunks and counts how many `send_job_stream_data` returned."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.sent = 0

    @job
    async def stream(self, request: JobRequest[Any]) -> str:
        for index in range(request.payload):
            await self.send_job_stream_data(request.job_id, index)
            self.sent += 1
        await self.send_job_stream_end(request.job_id, "end")
        return "unused"


class SlowReader(Actor):
    """A fire-and-forget requester whose hooks can be held busy; counts stream chunks."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.chunks: list[Any] = []
        self.release = trio.Event()
        self.done = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, Hold):
            await self.release.wait()

    async def on_job_stream_data(self, event: JobEvent) -> None:
        await super().on_job_stream_data(event)
        if not self.chunks:
            await self.release.wait()
        self.chunks.append(event.data)

    async def on_job_stream_end(self, event: JobEvent) -> None:
        await super().on_job_stream_end(event)
        self.done.set()


async def test_unread_events_stall_the_worker_at_the_credit_window(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """A worker may have at most CREDIT_WINDOW (64) update/stream events unread at one
    requester, per job: while the requester sleeps inside the block without iterating, the
    worker's `send_job_stream_data` waits after 64 chunks; once the requester iterates,
    every chunk arrives in order and the job completes."""
    assert CREDIT_WINDOW == 64
    streamer = await actor_system.spawn(Streamer("streamer"))
    async with actor_system.job("streamer", payload=500) as j:
        await trio.sleep(10)
        assert streamer.sent == CREDIT_WINDOW
        await trio.sleep(10)
        assert streamer.sent == CREDIT_WINDOW
        events = [event async for event in j]
    assert trio.current_time() == 20
    assert streamer.sent == 500
    assert [e.data for e in events] == [*range(500), "end"]
    assert [e.type for e in events[-2:]] == [JobEventType.STREAM_DATA, JobEventType.STREAM_END]
    assert j.response == "end"


async def test_a_full_window_still_delivers_the_stream_end(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Exactly CREDIT_WINDOW unread chunks and then the end: the STREAM_END event is kept too."""
    await actor_system.spawn(Streamer("streamer"))
    async with actor_system.job("streamer", payload=CREDIT_WINDOW) as j:
        await trio.sleep(10)
        events = [event async for event in j]
    assert len(events) == CREDIT_WINDOW + 1
    assert events[-1].type is JobEventType.STREAM_END
    assert j.response == "end"


async def test_a_block_that_never_iterates_still_completes(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Leaving the block without iterating discards the events and grants their credits, so a
    long stream still completes."""
    streamer = await actor_system.spawn(Streamer("streamer"))
    async with actor_system.job("streamer", payload=1000) as j:
        pass
    assert streamer.sent == 1000
    assert j.response == "end"


async def test_a_busy_fire_and_forget_requester_stalls_the_worker(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """Hooks are reads too: while a fire-and-forget requester's hooks are busy, the worker
    stalls at CREDIT_WINDOW chunks, and it finishes once the requester handles them. A busy
    mailbox (on_message) does not hold hooks up: answers are taken on delivery."""
    streamer = await actor_system.spawn(Streamer("streamer"))
    reader = await actor_system.spawn(SlowReader("reader"))
    await reader.send_message("reader", Hold())
    await reader.request_job("streamer", payload=300)
    await trio.sleep(10)
    assert streamer.sent == CREDIT_WINDOW
    reader.release.set()
    await reader.done.wait()
    assert reader.chunks == list(range(300))
    assert streamer.sent == 300
