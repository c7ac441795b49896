"""Transport-independent job and lifecycle behaviour, run over every transport.

Two actor systems share one transport: "front" asks, "back" works. The same scenarios run on
the in-memory transport in both modes and on a real Redis server started by the fixture, so a
transport that passes the link conformance suite also carries the actor runtime correctly.
Real time is involved for Redis: every scenario is bounded with `trio.fail_after`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

from actors import (
    Actor,
    ActorSystem,
    Envelope,
    EnvelopeCodec,
    JobError,
    JobEvent,
    JobGroupError,
    JobRequest,
    JobStatus,
    JobTimeout,
    job,
    open_actor_system,
)
from transports import MemoryTransport, RedisTransport, Transport
from transports.testing import RedisServerFactory

from actor_support import Note, Recorder, held_jobs, open_jobs

BOUND = 20.0
"""Seconds any scenario may take, on a loaded machine, with Redis."""


class Worker(Actor):
    """Echoes, streams, fails, sleeps or crashes on request."""

    @job
    async def echo(self, request: JobRequest[Any]) -> Any:
        return request.payload

    @job(name="stream")
    async def stream(self, request: JobRequest[int]) -> str:
        await self.send_job_update(request.job_id, "starting")
        await self.send_job_stream_start(request.job_id)
        for index in range(request.payload):
            await self.send_job_stream_data(request.job_id, index)
        await self.send_job_stream_end(request.job_id, "streamed")
        return "unused"

    @job(name="fail")
    async def fail(self, request: JobRequest[Any]) -> None:
        raise ValueError("bad input")

    @job(name="sleep")
    async def sleep(self, request: JobRequest[float]) -> str:
        await trio.sleep(request.payload)
        return "slept"

    @job(name="crash")
    async def crash(self, request: JobRequest[Any]) -> None:
        # Crash the actor itself (not just the job): a background task that raises.
        async def boom() -> None:
            raise RuntimeError("worker crashed")

        self.start_soon(boom)
        await trio.sleep_forever()


TransportFactory = Callable[[], Transport]


@pytest.fixture(params=["memory-strict", "memory-objects", "redis"])
async def make_transport(
    request: pytest.FixtureRequest, redis_server_factory: RedisServerFactory
) -> TransportFactory:
    """A factory of one shared transport per scenario, for each kind of transport."""
    if request.param == "memory-strict":
        shared: Transport = MemoryTransport(strict=True)
    elif request.param == "memory-objects":
        shared = MemoryTransport(strict=False)
    else:
        server = await redis_server_factory()
        shared = RedisTransport(server.url, namespace="over-transports", heartbeat=0.2)
    return lambda: shared


@asynccontextmanager
async def two_systems(
    make_transport: TransportFactory,
) -> AsyncIterator[tuple[ActorSystem, ActorSystem]]:
    transport = make_transport()
    async with AsyncExitStack() as stack:
        back = await stack.enter_async_context(open_actor_system("back", transport=transport))
        front = await stack.enter_async_context(open_actor_system("front", transport=transport))
        yield front, back


async def test_job_with_updates_and_a_stream(make_transport: TransportFactory) -> None:
    """A remote job streams its chunks in order and completes with the stream's end data."""
    with trio.fail_after(BOUND):
        async with two_systems(make_transport) as (front, back):
            await back.spawn(Worker("worker"))
            events: list[JobEvent] = []
            async with front.job("worker", name="stream", payload=5, timeout=BOUND) as j:
                async for event in j:
                    events.append(event)
            assert j.status is JobStatus.COMPLETED
            assert j.response == "streamed"
            assert [event.data for event in events if event.type is JobEvent.STREAM_DATA] == [
                0,
                1,
                2,
                3,
                4,
            ]
            assert events[0].type is JobEvent.UPDATE


async def test_group_with_a_failing_member(make_transport: TransportFactory) -> None:
    """A remote member that raises fails the group; the sleeping member is cancelled."""
    with trio.fail_after(BOUND):
        async with two_systems(make_transport) as (front, back):
            await back.spawn(Worker("fails"))
            await back.spawn(Worker("sleeps"))
            with pytest.raises(JobGroupError) as caught:
                async with front.job_group("fails", "sleeps", name="fail", timeout=BOUND):
                    pass
            assert caught.value.statuses["fails"] is JobStatus.ERROR
            assert "ValueError: bad input" in caught.value.errors["fails"]


async def test_cancel_and_timeout_reach_the_remote_handler(
    make_transport: TransportFactory,
) -> None:
    """`cancel_job` and `timeout=` both cancel the remote handler; nothing is left held."""
    with trio.fail_after(BOUND):
        async with two_systems(make_transport) as (front, back):
            worker = await back.spawn(Worker("worker"))
            with pytest.raises(JobError, match="CANCELLED"):
                async with front.job("worker", name="sleep", payload=1000.0) as j:
                    await front.cancel_job(j.job_id, "changed my mind")
            with pytest.raises(JobTimeout):
                async with front.job("worker", name="sleep", payload=1000.0, timeout=0.3):
                    pass
            await worker._require_worker().wait_idle()
            assert held_jobs(worker) == {}
            assert open_jobs(front) == {}


async def test_a_crashed_remote_worker_ends_its_job_failed(
    make_transport: TransportFactory,
) -> None:
    """A worker that crashes mid-job ends that job FAILED at the requester, without waiting
    for a timeout."""
    with trio.fail_after(BOUND):
        async with two_systems(make_transport) as (front, back):
            await back.spawn(Worker("worker"))
            with pytest.raises(JobError) as caught:
                async with front.job("worker", name="crash"):
                    pass
            assert caught.value.status is JobStatus.FAILED


async def test_messages_keep_per_sender_order_across_systems(
    make_transport: TransportFactory,
) -> None:
    """Messages from one remote sender arrive in the order they were sent."""
    with trio.fail_after(BOUND):
        async with two_systems(make_transport) as (front, back):
            target = await back.spawn(Recorder("target"))
            sender = await front.spawn(Recorder("sender"))
            await front.registry.wait_ready("target")
            for index in range(50):
                await sender.send_message("target", Note(str(index)))
            await target.wait_until(lambda: len(target.messages) == 50)
            assert [note.text for note in target.messages] == [str(i) for i in range(50)]


async def test_malformed_and_duplicate_packets_are_survived(
    make_transport: TransportFactory,
) -> None:
    """Garbage bytes are counted and dropped; an envelope delivered twice is handled once."""
    transport = make_transport()
    with trio.fail_after(BOUND):
        async with open_actor_system("back", transport=transport) as back:
            target = await back.spawn(Recorder("target"))
            async with transport.connect("raw") as raw:
                await raw.send("target", b"\x93garbage that is not an envelope")
                envelope = Envelope(
                    id="dup-1", sender="raw-sender", recipient="target", body=Note("once")
                )
                packet = EnvelopeCodec().encode(envelope)
                await raw.send("target", packet)
                await raw.send("target", packet)
                # Per-sender order: once the probe is handled, so is everything sent before it.
                probe = Envelope(
                    id="probe-1", sender="raw-sender", recipient="target", body=Note("probe")
                )
                await raw.send("target", EnvelopeCodec().encode(probe))
                await target.wait_until(lambda: len(target.messages) >= 2)
            assert target.messages == [Note("once"), Note("probe")]
            statistics = back.statistics()
            assert statistics.decode_errors == 1
            assert statistics.duplicates == 1


class Asker(Actor):
    """Asks a group of two sleeping workers from inside an actor."""

    async def ask(self) -> None:
        async with self.job_group("worker1", "worker2", name="sleep", payload=1e6):
            await trio.sleep_forever()


async def test_cancelling_a_requester_system_mid_group_returns_and_says_goodbye(
    redis_server_factory: RedisServerFactory,
) -> None:
    """A requester system cancelled from outside while one of its actors awaits a group on a
    peer leaves promptly (its Redis client does not spin reconnecting into a cancelled
    nursery), says goodbye (the peer hears of it long before a 5 s heartbeat could tell),
    and the peer's handlers are cancelled."""
    server = await redis_server_factory()
    transport = RedisTransport(server.url, namespace="cancelled-requester", heartbeat=5.0)
    with trio.fail_after(BOUND):
        async with open_actor_system("back", transport=transport) as back:
            first = await back.spawn(Worker("worker1"))
            second = await back.spawn(Worker("worker2"))
            left_at = math.inf
            with trio.move_on_after(1.0):
                async with open_actor_system("front", transport=transport) as front:
                    asker = await front.spawn(Asker("asker"))
                    await asker.ask()
            left_at = trio.current_time()
            await first._require_worker().wait_idle()
            await second._require_worker().wait_idle()
            while "asker" in back.registry:  # noqa: ASYNC110 - no event to wait on here
                await trio.sleep(0.05)
            assert trio.current_time() - left_at < 4.0
