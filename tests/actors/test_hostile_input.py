"""Issue 8, hostile or broken packets from a peer: no packet may crash, stall or fool a system.

A hostile peer is a raw link on the shared strict `MemoryTransport` that sends crafted
envelopes (encoded with `EnvelopeCodec`, or raw msgpack) next to the system under test. Each
test ends by checking that the system still serves a probe job.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSpec,
    ActorSystem,
    DecodeError,
    EncodeError,
    Envelope,
    EnvelopeCodec,
    JobError,
    JobRequest,
    JobStatus,
    job,
    open_actor_system,
)
from actors._wire.envelope import (
    AgentActivation,
    AgentGone,
    AgentInfo,
    AgentReady,
    BridgeAck,
    BridgeFrame,
    JobCancel,
    JobCredit,
    JobRequestMessage,
    JobResponseMessage,
    SystemGone,
)
from actors.testing import open_test_system
from supervision import Restart
from transports import Delivery, MemoryTransport, TransportLink

from actor_support import Note, Recorder, held_jobs

CODEC = EnvelopeCodec()
_ids = itertools.count(1)


class Echo(Actor):
    """Answers every default job with its payload."""

    @job
    async def echo(self, request: JobRequest[Any]) -> Any:
        return request.payload


def forged(sender: str, recipient: str | None, body: Any, **header: Any) -> bytes:
    """Encode an envelope as a hostile peer would send it."""
    envelope = Envelope(
        id=f"evil-{next(_ids)}", sender=sender, recipient=recipient, body=body, **header
    )
    return CODEC.encode(envelope)


@asynccontextmanager
async def evil_peer(transport: MemoryTransport, name: str = "evil") -> AsyncIterator[TransportLink]:
    """A raw link that claims ``system:<name>`` so that answers to its requests reach it."""
    async with transport.connect(name) as link:
        await link.claim(f"system:{name}")
        yield link


async def answer_of(link: TransportLink, job_id: str) -> JobResponseMessage:
    """Read `link` until the terminal answer of `job_id` arrives; return it."""
    while True:
        item = await link.receive()
        if not isinstance(item, Delivery) or item.recipient is None:
            continue
        assert isinstance(item.packet, bytes)
        envelope = CODEC.decode(item.packet)
        await link.ack(item)
        if envelope.job_id == job_id and isinstance(envelope.body, JobResponseMessage):
            return envelope.body


async def probe(system: ActorSystem, worker: str = "w") -> None:
    """The system still serves a job."""
    with trio.fail_after(5):
        async with system.job(worker, payload="probe") as j:
            pass
    assert j.response == "probe"


# --- item 4 ------------------------------------------------------------------------------------


async def test_a_peer_cannot_speak_for_our_actors(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """Registry news a peer sends about our own actors (gone, moved, deactivated, or our whole
    system gone) is ignored and counted; the actors stay registered and keep serving jobs."""
    async with open_test_system("home", transport=strict_transport) as home:
        worker = await home.spawn(Echo("w"))
        before = home.registry.get("w")
        assert before is not None
        async with evil_peer(strict_transport) as evil:
            stolen = AgentInfo(name="w", system="evil", incarnation="stolen")
            for body in (
                AgentGone(name="w", system="home", crashed=True),
                AgentReady(info=stolen),
                AgentActivation(name="w", active=False),
                SystemGone(system="home", crashed=True),
            ):
                await evil.broadcast(forged("evil", None, body))
            # A forged sender naming our own system is no better.
            await evil.broadcast(forged("home", None, AgentGone(name="w", system="home")))
            await trio.testing.wait_all_tasks_blocked()
            assert home.registry.get("w") == before
            assert worker.ready
            assert home.statistics().hostile == 5
            await probe(home)


# --- item 5 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "status"),
    [
        (math.nan, JobStatus.ERROR),
        (math.inf, JobStatus.ERROR),
        (-math.inf, JobStatus.ERROR),
        (-1.0, JobStatus.CANCELLED),
    ],
)
async def test_a_request_with_a_bad_deadline_budget_is_answered_not_fatal(
    autojump_clock: MockClock, strict_transport: MemoryTransport, budget: float, status: JobStatus
) -> None:
    """A job request whose deadline budget is NaN, infinite or negative is answered at once
    (ERROR for a budget that is not a number of seconds, CANCELLED for one already spent); the
    handler never runs and the worker goes on."""

    class Counting(Echo):
        runs = 0

        @job(name="count")
        async def count(self, request: JobRequest[Any]) -> None:
            type(self).runs += 1

    async with open_test_system("home", transport=strict_transport) as home:
        worker = await home.spawn(Counting("w"))
        async with evil_peer(strict_transport) as evil:
            request = JobRequestMessage(name="count", payload=1)
            await evil.send("w", forged("system:evil", "w", request, job_id="bad", deadline=budget))
            # A cancel with the same kind of budget is harmless too.
            await evil.send(
                "w",
                forged("system:evil", "w", JobCancel(), job_id="other", deadline=budget),
                control=True,
            )
            # So is a credit grant of any size for a job the worker does not hold.
            await evil.send(
                "w",
                forged("system:evil", "w", JobCredit(count=-(2**62)), job_id="bad"),
                control=True,
            )
            with trio.fail_after(5):
                answer = await answer_of(evil, "bad")
        assert answer.status is status
        assert Counting.runs == 0
        assert worker.ready and held_jobs(worker) == {}
        await probe(home)


# --- item 6 ------------------------------------------------------------------------------------


class Frame(msgspec.Struct, frozen=True):
    n: int


async def test_stray_and_broken_bridge_frames_are_dropped_not_fatal(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """Frames for a bridge that is not open, of an unknown type, with malformed bytes, and acks
    nobody asked for, are counted, logged and dropped; the bridged actor goes on."""

    class Agent(Echo):
        def __init__(self, name: str) -> None:
            super().__init__(name, bridged=())
            self.frames: list[Any] = []
            self.arrived = trio.Event()

        async def on_frame(self, frame: Any, bridge: str) -> None:
            self.frames.append(frame)
            self.arrived.set()
            self.arrived = trio.Event()

    async with open_test_system("home", transport=strict_transport) as home:
        agent = await home.spawn(Agent("w"))
        async with evil_peer(strict_transport) as evil:
            good_type, good_data = CODEC.encode_value(Frame(1))
            for frame in (
                # Handed back or acknowledged to a bridge that is not open.
                BridgeFrame(bridge="closed", seq=1, epoch=1, frame_type=good_type, data=good_data),
                BridgeFrame(
                    bridge="closed", seq=2, epoch=1, frame_type="no.such:Type", data=good_data
                ),
                BridgeFrame(
                    bridge="closed",
                    seq=3,
                    epoch=1,
                    frame_type=good_type,
                    data=msgspec.Raw(msgspec.msgpack.encode({"n": "not an int"})),
                ),
            ):
                await evil.send("w", forged("bridge:closed", "w", frame))
            await evil.send(
                "w", forged("bridge:closed", "w", BridgeAck(bridge="x", seq=9, epoch=1))
            )
            await trio.testing.wait_all_tasks_blocked()
        assert agent.ready
        assert agent.frames == [Frame(1)]
        assert home.statistics().hostile == 2
        # A real bridge still works with the same actor, and survives forged traffic too:
        # acks for frames it never sent and outbound frames nobody can read.
        async with home.open_bridge("voice") as bridge, evil_peer(strict_transport) as evil:
            for body in (
                BridgeAck(bridge="voice", seq=99, epoch=7),
                BridgeAck(bridge="voice", seq=-1, epoch=-1, returned=True),
                BridgeFrame(bridge="voice", seq=0, epoch=0, frame_type="x:Y", data=good_data),
            ):
                await evil.send("bridge:voice", forged("w", "bridge:voice", body))
            await trio.testing.wait_all_tasks_blocked()
            assert bridge.statistics()["bad_frames"] == 1
            await bridge.send(Frame(2))
            with trio.fail_after(5):
                while agent.frames[-1] != Frame(2):
                    await agent.arrived.wait()
        await probe(home)


# --- item 7 ------------------------------------------------------------------------------------


class Poison(msgspec.Struct, frozen=True):
    pass


STARTS: list[str] = []


class Fragile(Echo):
    """Raises in every handler for `Poison`; counts its starts."""

    def __init__(self, name: str) -> None:
        super().__init__(name, bridged=("voice",))
        self.frames: list[int] = []
        self.notes: list[str] = []

    async def on_ready(self) -> None:
        await super().on_ready()
        STARTS.append(self.name)

    async def on_frame(self, frame: Any, bridge: str) -> None:
        if isinstance(frame, Poison):
            raise RuntimeError("poison frame")
        self.frames.append(frame.n)

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, Poison):
            raise RuntimeError("poison message")
        self.notes.append(envelope.body.text)


async def test_a_poison_frame_is_dead_lettered_after_bounded_attempts(
    actor_system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame whose handler raises every time is delivered at most twice (the first crash
    may be bad luck; at-least-once), then dead-lettered: logged with the bridge and the frame
    type, counted, and the restarted actor goes on with the next frames."""
    STARTS.clear()
    spec = ActorSpec(lambda: Fragile("fragile"), restart=Restart.PERMANENT)
    await actor_system.spawn(spec)
    with caplog.at_level(logging.WARNING):
        async with actor_system.open_bridge("voice") as bridge:
            await bridge.send(Frame(1))
            await bridge.send(Poison())
            await bridge.send(Frame(2))
            await bridge.send(Frame(3))
            with trio.fail_after(30):
                while True:
                    current = actor_system.actors.get("fragile")
                    if isinstance(current, Fragile) and current.frames[-1:] == [3]:
                        break
                    await trio.sleep(0.01)
            assert bridge.statistics()["dead_letters"] == 1
    assert len(STARTS) == 3  # the first instance and two restarts, then no more
    assert current.frames == [2, 3]
    assert actor_system.statistics().dead_letters == 1
    dead = [r.getMessage() for r in caplog.records if "dead-letter" in r.getMessage()]
    assert len(dead) == 1 and "Poison" in dead[0] and "voice" in dead[0]


async def test_a_poison_message_crashes_its_actor_once_per_copy(
    actor_system: ActorSystem,
) -> None:
    """A message whose handler raises is acknowledged and never delivered again: the actor
    crashes once for it, is restarted, and handles the next message; no crash loop."""
    STARTS.clear()
    spec = ActorSpec(lambda: Fragile("fragile"), restart=Restart.PERMANENT)
    await actor_system.spawn(spec)
    sender = await actor_system.spawn(Recorder("sender"))
    await sender.send_message("fragile", Poison())
    await trio.sleep(1)
    await actor_system.registry.wait_ready("fragile")
    await sender.send_message("fragile", Note("after"))
    await trio.sleep(1)
    current = actor_system.actors["fragile"]
    assert isinstance(current, Fragile) and current.notes == ["after"]
    assert len(STARTS) == 2
    assert actor_system.statistics().dead_letters == 1
    assert actor_system.statistics().unacknowledged == 0


# --- item 8 ------------------------------------------------------------------------------------


async def test_a_packet_that_would_decode_into_millions_of_objects_is_refused_fast(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """A 4 MiB packet of nested empty arrays (a legal msgpack bomb that costs about 1.5 s and
    300 MB to decode) is refused by the codec's shape bound in milliseconds, and the system goes
    on; so is one nested deeper than the bound."""
    count = 4 * 1024 * 1024 - 64
    wide = b"\xdd" + count.to_bytes(4, "big") + b"\x90" * count
    deep = b"\x91" * 100_000 + b"\x90"
    started = time.perf_counter()
    for packet in (wide, deep):
        with pytest.raises(DecodeError, match=r"too many values|nested too deeply"):
            CODEC.decode(packet)
    assert time.perf_counter() - started < 0.5
    # The same bomb inside a well-formed job request's payload.
    request = forged("system:evil", "w", JobRequestMessage(payload=[]), job_id="bomb")
    bomb = request.replace(b"\x90", b"\xdd" + count.to_bytes(4, "big") + b"\x90" * count, 1)
    async with open_test_system("home", transport=strict_transport) as home:
        await home.spawn(Echo("w"))
        async with evil_peer(strict_transport) as evil:
            for packet in (wide, deep, bomb):
                await evil.send("w", packet)
            await trio.testing.wait_all_tasks_blocked()
        assert home.statistics().decode_errors == 3
        await probe(home)
        # A sender is told at once, with an error it can act on; the bound is configurable.
        with pytest.raises(EncodeError, match=r"too many values .*raise max_message_items$"):
            async with home.job("w", payload=list(range(100_001))):
                pass
    async with open_actor_system(
        "roomy", transport=strict_transport, max_message_items=200_000
    ) as roomy:
        await roomy.spawn(Echo("big"))
        async with roomy.job("big", payload=list(range(100_001))) as j:
            pass
        assert len(j.response) == 100_001


# --- item 9 ------------------------------------------------------------------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("cannot render")


async def test_an_exception_that_cannot_be_described_only_fails_its_own_job(
    actor_system: ActorSystem,
) -> None:
    """A handler raising an exception whose ``__str__`` raises answers ERROR naming its type;
    the worker's other jobs complete and the worker goes on."""

    class Worker(Echo):
        @job(name="bad")
        async def bad(self, request: JobRequest[Any]) -> None:
            await trio.sleep(1)
            raise Unprintable

        @job(name="slow")
        async def slow(self, request: JobRequest[Any]) -> str:
            await trio.sleep(2)
            return "done"

    worker = await actor_system.spawn(Worker("w"))
    async with trio.open_nursery() as nursery:
        results: list[Any] = []

        async def slow() -> None:
            async with actor_system.job("w", name="slow") as j:
                pass
            results.append(j.response)

        nursery.start_soon(slow)
        with pytest.raises(JobError) as caught:
            async with actor_system.job("w", name="bad"):
                pass
    assert caught.value.status is JobStatus.ERROR
    assert "Unprintable" in str(caught.value)
    assert results == ["done"]
    assert worker.ready
    await probe(actor_system)
