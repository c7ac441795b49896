"""Core correctness (issue 7): one test per item, each through the public API.

Each test is named after the behaviour it proves and says which item of the issue it covers.
Time is virtual everywhere (autojump clock), so a hang shows up as a jump in `current_time()`
or as a test timeout, never as a slow test.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from actors import (
    Actor,
    ActorNotFound,
    ActorStateError,
    ActorSystem,
    DecodeError,
    EncodeError,
    Envelope,
    JobCancellation,
    JobError,
    JobRequest,
    JobResponse,
    JobStatus,
    JobTimeout,
    job,
    open_actor_system,
)
from actors.testing import wait_ready
from supervision import Restart, RestartIntensity
from transports import Delivery, MemoryTransport, PeerLost, Transport, TransportLink

from actor_support import Note, Recorder, held_jobs, open_jobs, tombstones


class Sleeper(Actor):
    """Answers after `delay` seconds; counts the cancellations its handler saw."""

    def __init__(self, name: str, *, delay: float = 0.0, **options: Any) -> None:
        super().__init__(name, **options)
        self.delay = delay
        self.saw_cancelled = 0

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        try:
            await trio.sleep(self.delay)
        except trio.Cancelled:
            self.saw_cancelled += 1
            raise
        return f"{self.name} done"


# --- 1. cancelling the system block from outside -----------------------------------------------


@pytest.mark.parametrize("grace", [0.0, 10.0])
async def test_1_cancelling_the_system_block_from_outside_returns_promptly(
    autojump_clock: MockClock, grace: float
) -> None:
    """A deadline around `open_actor_system` with a live root actor (one holding a job, too)
    leaves the block at that deadline, whatever its grace: nothing the runtime starts keeps
    it open."""
    with trio.move_on_after(0.5) as scope:
        async with open_actor_system("s", grace=grace) as system:
            await system.spawn(Actor("x"))
            worker = await system.spawn(Sleeper("busy", delay=1000))
            await system.request_job("busy")
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 0.5
    assert worker.saw_cancelled == 1


async def test_1_an_error_in_a_sibling_task_stops_the_system_promptly(
    autojump_clock: MockClock,
) -> None:
    """A sibling task that fails cancels the system block, which returns at once; the
    sibling's error comes out."""

    async def fail_soon() -> None:
        await trio.sleep(0.25)
        raise KeyError("sibling")

    async def run_system() -> None:
        async with open_actor_system("s") as system:
            await system.spawn(Actor("x"))
            await trio.sleep_forever()

    with pytest.RaisesGroup(pytest.RaisesExc(KeyError, match="sibling")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_system)
            nursery.start_soon(fail_soon)
    assert trio.current_time() == 0.25


async def test_1_keyboard_interrupt_in_the_block_stops_the_system_promptly(
    autojump_clock: MockClock,
) -> None:
    """Ctrl-C (a KeyboardInterrupt raised in the block) comes out as itself, at once."""
    with pytest.raises(KeyboardInterrupt):
        async with open_actor_system("s", grace=10) as system:
            worker = await system.spawn(Sleeper("busy", delay=1000))
            await system.request_job("busy")
            await trio.sleep(1)
            raise KeyboardInterrupt
    assert trio.current_time() == 1
    assert worker.saw_cancelled == 1


# --- 2. a full mailbox stalls only its own senders ---------------------------------------------


class Relay(Actor):
    """On Note("go") awaits a job on `target` (its mailbox loop is busy meanwhile)."""

    def __init__(self, name: str, target: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.target = target
        self.answers: list[Any] = []
        self.other_messages = 0
        self.answered = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        if envelope.body == Note("go"):
            async with self.job(self.target, timeout=50) as j:
                pass
            self.answers.append(j.response)
            self.answered.set()
        else:
            self.other_messages += 1


class Flooder(Actor):
    """Sends `notes` to `target` from a background task, in order."""

    def __init__(self, name: str, target: str, notes: Sequence[Note]) -> None:
        super().__init__(name)
        self.target = target
        self.notes = list(notes)

    async def on_ready(self) -> None:
        await super().on_ready()
        self.start_soon(self._flood)

    async def _flood(self) -> None:
        for note in self.notes:
            await self.send_message(self.target, note)


async def test_2_a_flooded_small_mailbox_still_gets_its_job_answers(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """Actor A (mailbox_size=2), busy awaiting a remote job while a peer floods it, gets the
    answer; jobs between other actors of the same two systems keep flowing meanwhile."""
    async with (
        open_actor_system("a", transport=strict_transport) as system_a,
        open_actor_system("b", transport=strict_transport) as system_b,
    ):
        await system_b.spawn(Sleeper("remote-worker", delay=10))
        await system_b.spawn(Sleeper("other-worker", delay=1))
        relay = await system_a.spawn(Relay("A", "remote-worker", mailbox_size=2))
        await wait_ready(system_a, "remote-worker", "other-worker")
        await wait_ready(system_b, "A")
        await system_b.spawn(Flooder("starter", "A", [Note("go")]))
        await trio.sleep(0.5)
        await system_b.spawn(Flooder("flooder", "A", [Note(f"flood {i}") for i in range(200)]))
        await trio.sleep(1)
        # A's mailbox is full and its loop busy; other traffic between the systems flows.
        for _ in range(3):
            async with system_a.job("other-worker", timeout=5) as other:
                pass
            assert other.response == "other-worker done"
        with trio.fail_after(20):
            await relay.answered.wait()
        assert relay.answers == ["remote-worker done"]
        await trio.sleep(60)
        assert relay.other_messages == 200
        assert system_a.statistics().unacknowledged == 0


# --- 3. waits that end promptly, with a clear error --------------------------------------------


async def test_3_jobs_after_the_system_closed_are_refused_at_once(
    autojump_clock: MockClock,
) -> None:
    """`system.job(...)` (and `request_job`) after the block closed raise ActorStateError at
    once instead of waiting for ever."""
    async with open_actor_system("closed") as system:
        await system.spawn(Sleeper("w"))
    with pytest.raises(ActorStateError, match=r"cannot open jobs: actor system 'closed'"):
        system.job("w")
    with pytest.raises(ActorStateError, match=r"cannot open jobs"):
        await system.request_job("w")
    assert trio.current_time() == 0


async def test_3_ending_an_actor_that_was_never_started_raises() -> None:
    """`end()` and `cancel()` on an actor never spawned raise ActorStateError at once."""
    actor = Actor("x")
    with pytest.raises(ActorStateError, match=r"^actor 'x' was never started$"):
        await actor.end()
    with pytest.raises(ActorStateError, match=r"^actor 'x' was never started$"):
        await actor.cancel()


class FlakyStart(Actor):
    """Crashes on a "crash" message; every start after the first one fails in `on_ready`."""

    starts = 0

    async def on_ready(self) -> None:
        await super().on_ready()
        FlakyStart.starts += 1
        if FlakyStart.starts > 1:
            raise RuntimeError("cannot start again")

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        raise RuntimeError("crash")

    @job
    async def work(self, request: JobRequest[Any]) -> str:
        return "done"


class GivingUpParent(Recorder):
    """A supervisor that gives up on the second failure of a child."""

    intensity = RestartIntensity(max_restarts=1, within=60)


async def test_3_a_job_to_a_child_whose_supervisor_gave_up_fails_promptly(
    actor_system: ActorSystem,
) -> None:
    """A job sent while a PERMANENT child restarts ends at once, FAILED with a clear error,
    when the restart fails and the supervisor gives up (no waiting for a timeout)."""
    FlakyStart.starts = 0
    root = await actor_system.spawn(Recorder("root"))
    parent = await root.add_child(GivingUpParent("parent"))
    await parent.add_child(FlakyStart("flaky"), restart=Restart.PERMANENT)
    start = trio.current_time()
    await root.send_message("flaky", Note("crash"))
    with pytest.raises((JobError, ActorNotFound)) as caught:
        async with actor_system.job("flaky", timeout=100):
            pass
    assert trio.current_time() - start < 1
    assert "'flaky' is gone (its supervisor gave up on it" in str(caught.value)
    if isinstance(caught.value, JobError):
        assert caught.value.statuses == {"flaky": JobStatus.FAILED}


class SlowStart(Actor):
    """Takes 10 seconds in `on_ready`."""

    async def on_ready(self) -> None:
        await super().on_ready()
        await trio.sleep(10)


async def test_3_job_timeout_says_why_it_waited(actor_system: ActorSystem) -> None:
    """JobTimeout names, per member, why the job could not finish: not registered, not ready
    yet, or still working."""
    await actor_system.spawn(Sleeper("busy", delay=100))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.spawn, SlowStart("starting"))
        await trio.sleep(1)
        with pytest.raises(JobTimeout) as caught:
            async with actor_system.job_group("busy", "starting", "ghost", timeout=2):
                pass
        with pytest.raises(JobTimeout, match=r"'busy' was still working$"):
            async with actor_system.job("busy", timeout=2):
                pass
    message = str(caught.value)
    assert "'busy' was ready; the request waited for the other members" in message
    assert "'starting' was not ready yet" in message
    assert "'ghost' was never registered (no actor of that name)" in message


# --- 4. a one-shot worker's answer is never overtaken by its end --------------------------------


class OneShot(Actor):
    """Answers COMPLETED, then ends itself."""

    @job
    async def work(self, request: JobRequest[Any]) -> None:
        await self.send_job_response(request.job_id, f"{self.name} done")
        self.end(grace=0)


class BusyRequester(Actor):
    """On Note(worker) asks `worker` for a job and then stays busy; records every hook."""

    def __init__(self, name: str, *, direct: bool) -> None:
        super().__init__(name)
        self.direct = direct
        self.responses: list[JobResponse] = []
        self.errors: list[JobResponse] = []
        self.completed: list[dict[str, JobStatus]] = []
        self.direct_statuses: list[JobStatus | None] = []
        self.done = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        worker = envelope.body.text
        if self.direct:
            async with self.job(worker) as j:
                await trio.sleep(1)  # busy while the worker answers and ends
            self.direct_statuses.append(j.status)
            self.done.set()
        else:
            await self.request_job(worker)
        await trio.sleep(5)  # busy: the mailbox loop is occupied

    async def on_job_response(self, response: JobResponse) -> None:
        await super().on_job_response(response)
        self.responses.append(response)

    async def on_job_error(self, response: JobResponse) -> None:
        await super().on_job_error(response)
        self.errors.append(response)

    async def on_job_completed(self, result: Any) -> None:
        await super().on_job_completed(result)
        self.completed.append(dict(result.statuses))
        self.done.set()


@pytest.mark.parametrize("direct", [False, True], ids=["fire_and_forget", "job_block"])
@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
async def test_4_a_worker_that_answers_then_ends_is_reported_completed(
    strict_transport: MemoryTransport, autojump_clock: MockClock, direct: bool, remote: bool
) -> None:
    """A one-shot worker answering COMPLETED and then ending is reported COMPLETED, never
    CANCELLED, and no on_job_error fires, while its requester is busy."""
    async with (
        open_actor_system("a", transport=strict_transport) as system_a,
        open_actor_system("b", transport=strict_transport) as system_b,
    ):
        worker_system = system_b if remote else system_a
        await worker_system.spawn(OneShot("one-shot"))
        requester = await system_a.spawn(BusyRequester("requester", direct=direct))
        await wait_ready(system_a, "one-shot")
        trigger = await system_a.spawn(Recorder("trigger"))
        await trigger.send_message("requester", Note("one-shot"))
        with trio.fail_after(10):
            await requester.done.wait()
        if direct:
            assert requester.direct_statuses == [JobStatus.COMPLETED]
        else:
            assert [r.status for r in requester.responses] == [JobStatus.COMPLETED]
            assert requester.completed == [{"one-shot": JobStatus.COMPLETED}]
        assert requester.errors == []


# --- 5. a graceful end is never a crash ---------------------------------------------------------


class Ending(Actor):
    """Holds "work" jobs for 100 s; a "relay" job opens a job on `slow-peer` once the actor
    was asked to end (so the inner job inherits the grace deadline); "quick" answers at once."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.fatal_errors: list[str] = []
        self.relay_outcome: list[str] = []
        self.asked_to_end = trio.Event()

    @job
    async def work(self, request: JobRequest[Any]) -> str:
        await trio.sleep(100)
        return "never"

    @job(name="quick")
    async def quick(self, request: JobRequest[Any]) -> str:
        return "quick"

    @job(name="relay")
    async def relay(self, request: JobRequest[Any]) -> str:
        await self.asked_to_end.wait()
        try:
            async with self.job("slow-peer") as j:
                pass
        except BaseException as exc:
            self.relay_outcome.append(type(exc).__name__)
            raise
        return str(j.response)

    async def on_error(self, error: str, fatal: bool) -> None:
        await super().on_error(error, fatal)
        if fatal:
            self.fatal_errors.append(error)


@pytest.mark.parametrize("restart", [Restart.TRANSIENT, Restart.PERMANENT])
async def test_5_jobs_cut_off_by_a_graceful_end_answer_cancelled(
    actor_system: ActorSystem, restart: Restart
) -> None:
    """`end(grace)` is never a crash: jobs whose work outlives the grace (one of them opened a
    job of its own after `end`, inheriting the grace deadline) answer CANCELLED, not
    JobTimeout; no on_error(fatal=True) runs, the parent hears of no crash, and a TRANSIENT
    actor is not restarted. (A PERMANENT one is, as after any normal end, and a request that
    came after `end` waits for the new instance: items 5 and 6 together.)"""
    await actor_system.spawn(Sleeper("slow-peer", delay=1000))
    parent = await actor_system.spawn(Recorder("parent"))
    ending = await parent.add_child(Ending("ending"), restart=restart)
    outcomes: dict[str, JobError | str] = {}

    async def run(label: str, name: str | None) -> None:
        try:
            async with actor_system.job("ending", name=name, timeout=50) as j:
                pass
            outcomes[label] = str(j.response)
        except JobError as exc:
            outcomes[label] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "held", None)
        nursery.start_soon(run, "relay", "relay")
        await trio.testing.wait_all_tasks_blocked()
        ended_at = trio.current_time()
        ending.end(grace=2)
        ending.asked_to_end.set()
        nursery.start_soon(run, "after end", "quick")
    assert trio.current_time() == ended_at + 2
    for label in ("held", "relay"):
        error = outcomes[label]
        assert isinstance(error, JobError) and not isinstance(error, JobTimeout), label
        assert error.statuses == {"ending": JobStatus.CANCELLED}, label
    assert ending.relay_outcome == ["Cancelled"]
    assert ending.fatal_errors == []
    await trio.sleep(1)
    assert [e for e in parent.agent_errors if e.fatal] == []
    if restart is Restart.TRANSIENT:
        after_end = outcomes["after end"]
        assert isinstance(after_end, JobError)
        assert after_end.statuses == {"ending": JobStatus.CANCELLED}
        assert "ending" not in actor_system.actors
    else:
        assert outcomes["after end"] == "quick"
        assert actor_system.actors["ending"] is not ending


# --- 6. jobs sent right after a crash wait for the restarted instance ---------------------------


class Crashy(Actor):
    """Crashes on any message; answers jobs."""

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        raise RuntimeError("crash on purpose")

    @job
    async def work(self, request: JobRequest[Any]) -> str:
        return "done"


class Lenient(Recorder):
    """A supervisor that restarts its children however often they crash."""

    intensity = RestartIntensity(max_restarts=100, within=1)


async def test_6_jobs_right_after_a_crash_wait_for_the_new_instance(
    actor_system: ActorSystem,
) -> None:
    """Right after a PERMANENT child crashes, jobs to its name wait for the new instance and
    complete: every one of 20 tries, whatever the exact moment."""
    parent = await actor_system.spawn(Lenient("parent"))
    await parent.add_child(Crashy("w"), restart=Restart.PERMANENT)
    for attempt in range(20):
        await actor_system.registry.wait_ready("w")
        await parent.send_message("w", Note("crash"))
        for _ in range(attempt % 5):
            await trio.lowlevel.checkpoint()
        async with actor_system.job("w", timeout=5) as j:
            pass
        assert j.status is JobStatus.COMPLETED, attempt
        await trio.sleep(2)


# --- 7. a registry watch fires once per incarnation ---------------------------------------------


async def test_7_a_watch_fires_once_per_incarnation_when_peers_reannounce(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """Systems joining make peers re-announce their actors; watches, local and remote, still
    fire once per start of the watched actor."""
    async with (
        open_actor_system("a", transport=strict_transport) as system_a,
        open_actor_system("b", transport=strict_transport) as system_b,
    ):
        await system_a.spawn(Actor("watched"))
        local: list[str] = []
        remote: list[str] = []
        system_a.registry.watch("watched", lambda info: local.append(info.incarnation))
        await system_b.registry.wait_ready("watched")
        system_b.registry.watch("watched", lambda info: remote.append(info.incarnation))
        for index in range(3):
            async with open_actor_system(f"joiner-{index}", transport=strict_transport) as joiner:
                await joiner.registry.wait_ready("watched")
                await trio.sleep(2)
        assert len(local) == 1
        assert len(remote) == 1
        assert local == remote


# --- 8. an undecodable bridged frame is counted, logged and dropped -----------------------------


class Frame(msgspec.Struct, frozen=True):
    text: str


class Listener(Actor):
    """Bridged to "voice"; records frames and fatal errors."""

    def __init__(self, name: str) -> None:
        super().__init__(name, bridged=("voice",))
        self.frames: list[Any] = []
        self.errors: list[str] = []
        self.got_frame = trio.Event()

    async def on_frame(self, frame: Any, bridge: str) -> None:
        await super().on_frame(frame, bridge)
        self.frames.append(frame)
        self.got_frame.set()

    async def on_error(self, error: str, fatal: bool) -> None:
        await super().on_error(error, fatal)
        self.errors.append(error)


async def test_8_an_undecodable_bridged_frame_is_counted_logged_and_dropped(
    strict_transport: MemoryTransport,
    autojump_clock: MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bridged frame nobody can decode, sent from a peer to the bridged actor and to the
    bridge itself, is counted and logged; neither crashes, and the next frame gets through."""
    from actors._wire.envelope import BridgeFrame

    async with (
        open_actor_system("a", transport=strict_transport) as system_a,
        open_actor_system("b", transport=strict_transport) as peer,
        system_a.open_bridge("voice") as bridge,
    ):
        listener = await system_a.spawn(Listener("listener"))
        await wait_ready(peer, "listener")
        frame_type, _ = system_a.codec.encode_value(Frame("typed"))
        not_a_frame = msgspec.Raw(msgspec.msgpack.encode(42))
        bad_frames = [
            # A type this process does not know, and a known type with a body that does not fit.
            BridgeFrame(
                bridge="voice", seq=1, epoch=1, frame_type="nowhere:Nothing", data=not_a_frame
            ),
            BridgeFrame(bridge="voice", seq=2, epoch=1, frame_type=frame_type, data=not_a_frame),
        ]
        with caplog.at_level(logging.WARNING, logger="actors"):
            for bad in bad_frames:
                await peer._send("intruder", "listener", bad)
                await peer._send("intruder", "bridge:voice", bad)
            await trio.sleep(1)
        assert listener.ready and listener.errors == []
        assert system_a.statistics().hostile >= 2
        assert bridge.statistics()["bad_frames"] == 2
        dropped = [r for r in caplog.records if "undecodable frame" in r.getMessage()]
        assert len(dropped) == 4
        await bridge.send(Frame("hello"))
        with trio.fail_after(5):
            await listener.got_frame.wait()
        assert listener.frames == [Frame("hello")]
        await listener.send_frame(Frame("answer"))
        with trio.fail_after(5):
            assert await bridge.receive() == Frame("answer")


# --- 9. every delivery is acknowledged exactly once --------------------------------------------


class CountingLink(TransportLink):
    """Wraps a link and counts acknowledgements per delivery."""

    def __init__(self, inner: TransportLink) -> None:
        self.inner = inner
        self.system = inner.system
        self.carries_objects = inner.carries_objects
        self.window = inner.window
        self.delivered: dict[int, Delivery] = {}
        self.acks: Counter[int] = Counter()

    async def claim(self, name: str) -> None:
        await self.inner.claim(name)

    async def release(self, name: str) -> None:
        await self.inner.release(name)

    async def send(
        self, recipient: str, packet: object, *, control: bool = False, ack: Delivery | None = None
    ) -> None:
        await self.inner.send(recipient, packet, control=control)
        if ack is not None:
            await self.ack(ack)

    async def send_batch(
        self, items: Sequence[tuple[str, object]], *, control: bool = False
    ) -> None:
        await self.inner.send_batch(items, control=control)

    async def broadcast(self, packet: object) -> None:
        await self.inner.broadcast(packet)

    async def receive(self) -> Delivery | PeerLost:
        item = await self.inner.receive()
        if isinstance(item, Delivery) and item.token is not None:
            self.delivered[id(item.token)] = item
        return item

    async def ack(self, delivery: Delivery) -> None:
        if delivery.token is not None:
            self.acks[id(delivery.token)] += 1
        await self.inner.ack(delivery)


class CountingTransport(Transport):
    """A transport whose links count acknowledgements (over a shared `MemoryTransport`)."""

    def __init__(self, inner: MemoryTransport) -> None:
        self.inner = inner
        self.links: dict[str, CountingLink] = {}

    @asynccontextmanager
    async def connect(self, system: str) -> AsyncIterator[TransportLink]:
        async with self.inner.connect(system) as link:
            counting = self.links[system] = CountingLink(link)
            yield counting


class Stuck(Actor):
    """Blocks in its first message until it ends; crashes on Note("crash")."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.blocked = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        if envelope.body == Note("crash"):
            raise RuntimeError("crash on purpose")
        self.blocked.set()
        await trio.sleep_forever()


async def test_9_every_delivery_is_acknowledged_exactly_once(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """Messages left in a mailbox at an actor's end, messages that waited for room in a
    mailbox that then closed, a message whose handler crashed, and job requests are each
    acknowledged exactly once."""
    counting = CountingTransport(strict_transport)
    async with (
        open_actor_system("a", transport=counting) as system_a,
        open_actor_system("b", transport=strict_transport) as peer,
    ):
        stuck = await system_a.spawn(Stuck("stuck", mailbox_size=1))
        crasher = await system_a.spawn(Stuck("crasher"))
        await system_a.spawn(Sleeper("worker"))
        await wait_ready(peer, "stuck", "crasher", "worker")
        await peer.spawn(Flooder("flooder", "stuck", [Note(f"n{i}") for i in range(20)]))
        await peer.spawn(Flooder("crash", "crasher", [Note("crash")]))
        for _ in range(3):
            async with peer.job("worker") as j:
                pass
            assert j.status is JobStatus.COMPLETED
        await stuck.blocked.wait()
        await trio.sleep(1)
        await stuck.end(grace=0)
        await crasher.end()
        await trio.sleep(1)
        link = counting.links["a"]
        assert len(link.delivered) >= 24
        assert set(link.acks) == set(link.delivered)
        assert set(link.acks.values()) == {1}
        assert system_a.statistics().unacknowledged == 0


# --- 10. Trio's cancel scopes around a job ------------------------------------------------------


async def test_10_enclosing_cancel_scopes_and_timeouts_around_a_job(
    actor_system: ActorSystem, autojump_clock: MockClock
) -> None:
    """`move_on_after` around a job moves on, `fail_after` raises TooSlowError, `timeout=`
    raises JobTimeout; the worker is cancelled each time. (tests/actors/test_jobs_deadline.py
    covers each case in more detail, readiness waits included.)"""
    worker = await actor_system.spawn(Sleeper("worker", delay=100))
    with trio.move_on_after(1) as scope:
        async with actor_system.job("worker"):
            pass
    assert scope.cancelled_caught
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(1):
            async with actor_system.job("worker"):
                pass
    with pytest.raises(JobTimeout, match=r"'worker' was still working$"):
        async with actor_system.job("worker", timeout=1):
            pass
    assert trio.current_time() == 3
    await trio.testing.wait_all_tasks_blocked()
    assert worker.saw_cancelled == 3
    assert held_jobs(worker) == {}
    assert open_jobs(actor_system) == {}


# --- 11. isolation by default -------------------------------------------------------------------


class Mutator(Actor):
    """Changes the payload it was given, and answers with it."""

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        request.payload["changed"] = True
        return request.payload


class Topic(msgspec.Struct, frozen=True):
    topic: str


class TypedSlow(Actor):
    """A typed handler that never finishes; records the payload its cancellation carries."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.cancelled_payloads: list[Any] = []

    @job
    async def work(self, request: JobRequest[Topic]) -> None:
        await trio.sleep_forever()

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled_payloads.append(cancellation.request.payload)


async def test_11_the_default_system_isolates_payloads(autojump_clock: MockClock) -> None:
    """In a system opened with no transport a worker cannot change its requester's dict, and a
    payload that could not cross a process fails at send time."""
    async with open_actor_system("default") as system:
        await system.spawn(Mutator("mutator"))
        payload: dict[str, Any] = {"items": [1, 2]}
        async with system.job("mutator", payload=payload) as j:
            pass
        assert payload == {"items": [1, 2]}
        assert j.response == {"items": [1, 2], "changed": True}
        # A set crosses as what a peer would get, a list (DESIGN 12), never the same object.
        async with system.job("mutator", payload={"tags": {1, 2}}) as j:
            pass
        assert j.response == {"tags": [1, 2], "changed": True}
        with pytest.raises(EncodeError, match=r"cannot encode envelope"):
            async with system.job("mutator", payload={"handle": object()}):
                pass  # pragma: no cover


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "shared"])
async def test_11_a_typed_handler_gets_its_type_in_on_job_cancelled(
    autojump_clock: MockClock, strict: bool
) -> None:
    """`JobCancellation.request.payload` is the handler's declared Struct in both modes."""
    async with open_actor_system("typed", transport=MemoryTransport(strict=strict)) as system:
        worker = await system.spawn(TypedSlow("typed"))
        with trio.move_on_after(1):
            async with system.job("typed", payload={"topic": "trio"}):
                pass
        await trio.testing.wait_all_tasks_blocked()
        assert worker.cancelled_payloads == [Topic("trio")]


# --- 12. pipecat's habits -----------------------------------------------------------------------


class CustomRouting(Actor):
    """Overrides on_job_request, calling the base first, and answers explicitly."""

    async def on_job_request(self, request: JobRequest[Any]) -> Any:
        await super().on_job_request(request)
        await self.send_job_response(request.job_id, f"handled {request.name}")


class Failing(Actor):
    @job
    async def work(self, request: JobRequest[Any]) -> None:
        raise ValueError(f"{self.name} refuses")


async def test_12_pipecat_habits_work(
    actor_system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """on_activated(None) once at start for an active actor (not for an inactive one); root
    actors hear of each other; the base on_job_request plus send_job_response completes;
    g.errors names each failed member's error; the system activates and deactivates agents;
    bridged="voice" is refused; two active agents on one bridge are warned about."""
    first = await actor_system.spawn(Recorder("first"))
    second = await actor_system.spawn(Recorder("second"))
    sleeper = await actor_system.spawn(Recorder("sleeper", active=False))
    await first.wait_until(lambda: "first:agent_ready:second" in first.log)
    await second.wait_until(lambda: "second:agent_ready:first" in second.log)
    assert first.log.count("first:activated") == 1
    assert "sleeper:activated" not in sleeper.log

    await actor_system.spawn(CustomRouting("custom"))
    async with actor_system.job("custom", name="anything") as j:
        pass
    assert (j.status, j.response) == (JobStatus.COMPLETED, "handled anything")

    await actor_system.spawn(Failing("failing"))
    async with actor_system.job_group("custom", "failing", cancel_on_error=False) as g:
        pass
    assert g.statuses == {"custom": JobStatus.COMPLETED, "failing": JobStatus.ERROR}
    assert g.errors == {"failing": "ValueError: failing refuses"}

    await actor_system.activate_agent("sleeper", args={"topic": "trio"})
    await sleeper.wait_until(lambda: sleeper.active)
    assert sleeper.activation_args == {"topic": "trio"}
    await actor_system.deactivate_agent("sleeper")
    await sleeper.wait_until(lambda: "sleeper:deactivated" in sleeper.log)
    assert not sleeper.active
    assert sleeper.log.count("sleeper:activated") == 1
    assert sleeper.log.count("sleeper:deactivated") == 1

    with pytest.raises(TypeError, match=r"bridged takes a tuple of bridge names"):
        Actor("x", bridged="voice")  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, logger="actors"):
        async with actor_system.open_bridge("voice"):
            await actor_system.spawn(Listener("listener-1"))
            await actor_system.spawn(Listener("listener-2"))
            await trio.sleep(1)
    warnings = [r.getMessage() for r in caplog.records if "active bridged agents" in r.getMessage()]
    assert len(warnings) == 1
    assert "'listener-1'" in warnings[0] and "'listener-2'" in warnings[0]


# --- 13. logs -----------------------------------------------------------------------------------


class Flaky(Actor):
    """Crashes on any message; its job handler raises."""

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        raise RuntimeError("flaky crashed")

    @job
    async def work(self, request: JobRequest[Any]) -> None:
        raise KeyError("no such thing")


async def test_13_logs_name_actors_and_jobs_once(
    actor_system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler's exception is logged once, with its traceback, naming actor and job (for a
    fire-and-forget job too); lifecycle events are logged at DEBUG; no record names an
    internal supervision key like 'flaky#20'."""
    caplog.set_level(logging.DEBUG)
    parent = await actor_system.spawn(Recorder("parent"))
    await parent.add_child(Flaky("flaky"), restart=Restart.PERMANENT)
    with pytest.raises(JobError):
        async with actor_system.job("flaky") as j:
            pass
    fire_and_forget = await actor_system.request_job("flaky")
    await trio.sleep(1)
    for job_id in (j.job_id, fire_and_forget):
        failures = [r for r in caplog.records if job_id in r.getMessage() and r.exc_info]
        assert len(failures) == 1, job_id
        assert "'flaky'" in failures[0].getMessage()
        assert "KeyError" in failures[0].getMessage()

    await parent.send_message("flaky", Note("crash"))
    await trio.sleep(1)
    await actor_system.registry.wait_ready("flaky")
    talker = await actor_system.spawn(Recorder("talker", active=False))
    await actor_system.activate_agent("talker")
    await talker.wait_until(lambda: talker.active)
    await actor_system.spawn(Recorder("target", active=False))
    await talker.handoff_to("target")
    await trio.sleep(1)
    await talker.end()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    for wording in (
        "actor 'talker' spawned",
        "actor 'talker' ready",
        "actor 'talker' activated",
        "actor 'talker' hands off to 'target'",
        "actor 'talker' deactivated",
        "actor 'target' activated",
        "actor 'flaky' restarting",
        "actor 'talker' ended",
    ):
        assert any(message.startswith(wording) for message in debug), wording
    assert not [r.getMessage() for r in caplog.records if "#" in r.getMessage()]


# --- 14. clear errors ---------------------------------------------------------------------------


def test_14_mistakes_in_a_class_fail_when_it_is_defined() -> None:
    """`@job("research")` says to use name=; a handler named `job`, a handler with a wrong
    signature and a hook that is not async are refused at class definition."""
    with pytest.raises(TypeError, match=r"write @job\(name='research'\)"):
        job("research")  # type: ignore[call-overload]

    with pytest.raises(TypeError, match=r"hides Actor\.job"):

        class HidesJob(Actor):
            @job
            async def job(self, request: JobRequest[Any]) -> None:  # type: ignore[override]
                pass

    with pytest.raises(TypeError, match=r"must take \(self, request\)"):

        class WrongSignature(Actor):
            @job
            async def work(self, request: JobRequest[Any], extra: int) -> None:
                pass

    with pytest.raises(TypeError, match=r"on_ready must be an async function"):

        class SyncHook(Actor):
            def on_ready(self) -> None:  # type: ignore[override]
                pass


async def test_14_runtime_errors_are_clear(autojump_clock: MockClock) -> None:
    """Spawning an instance twice says "already started"; an exception raised in the system
    block comes out as itself, not wrapped in exception groups."""
    with pytest.raises(KeyError, match=r"raised in the block"):
        async with open_actor_system("errors") as system:
            actor = await system.spawn(Actor("once"))
            with pytest.raises(ActorStateError, match=r"already started"):
                await system.spawn(actor)
            raise KeyError("raised in the block")


# --- 15. bounded bookkeeping --------------------------------------------------------------------


async def test_15_tombstones_expire_and_live_ones_stay(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """Cancels whose request never comes leave tombstones that expire with the cancelled
    job's deadline, or after TOMBSTONE_SECONDS without one; none is evicted early."""
    from actors._jobs.table import TOMBSTONE_SECONDS
    from actors._wire.envelope import JobCancel

    async with (
        open_actor_system("a", transport=strict_transport) as system_a,
        open_actor_system("b", transport=strict_transport) as peer,
    ):
        worker = await system_a.spawn(Sleeper("worker"))
        await wait_ready(peer, "worker")

        async def lost_cancel(job_id: str, budget: float | None) -> None:
            envelope = peer._router.envelope(
                "requester", "worker", JobCancel(reason="lost"), job_id=job_id, deadline=budget
            )
            await peer._router.send(envelope)

        await lost_cancel("with-deadline", 10.0)
        for index in range(1000):
            await lost_cancel(f"without-{index}", None)
        await trio.sleep(0.1)
        assert len(tombstones(worker)) == 1001
        await trio.sleep(12)
        await lost_cancel("late", None)
        await trio.sleep(0.1)
        assert "with-deadline" not in tombstones(worker)
        assert len(tombstones(worker)) == 1001
        await trio.sleep(TOMBSTONE_SECONDS - 12)
        assert system_a.statistics().tombstones == 1
        await lost_cancel("trigger", None)
        await trio.sleep(0.1)
        assert set(tombstones(worker)) == {"late", "trigger"}
        await trio.sleep(TOMBSTONE_SECONDS)
        assert system_a.statistics().tombstones == 0


async def test_15_per_child_and_per_actor_tables_stay_bounded(actor_system: ActorSystem) -> None:
    """Children that come and go, and actors whose readiness an actor heard of, leave nothing
    behind in the tables kept per child or per actor seen."""
    parent = await actor_system.spawn(Recorder("parent"))
    for index in range(300):
        child = await parent.add_child(Recorder(f"child-{index}"))
        if index % 2:
            await child.end()
        else:
            await parent.remove_child(child.name)
    await trio.sleep(1)
    assert parent.children == []
    assert parent._child_keys == {}
    assert len(parent._seen_ready) <= 64 + 2 * len(actor_system.registry.names())


async def test_15_unknown_type_names_from_a_peer_are_rejected_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of unknown user type names does not walk the Struct class tree per name; a
    class defined afterwards is still found."""
    from actors._wire import codec as codec_module

    walks = 0
    rescan = codec_module._USER_TYPES._rescan

    def counting_rescan() -> None:
        nonlocal walks
        walks += 1
        rescan()

    monkeypatch.setattr(codec_module._USER_TYPES, "_rescan", counting_rescan)
    codec = codec_module.EnvelopeCodec()
    payload = msgspec.msgpack.encode(1)
    for index in range(1000):
        with pytest.raises(DecodeError, match=r"unknown message type"):
            codec.decode_value(f"somewhere:Unknown{index}", payload)
    assert walks <= 1

    class DefinedLater(msgspec.Struct, frozen=True):
        value: int

    name = codec_module.type_name(DefinedLater)
    assert codec.decode_value(name, msgspec.msgpack.encode(DefinedLater(3))) == DefinedLater(3)


async def test_15_a_receive_wakes_one_waiting_sender(autojump_clock: MockClock) -> None:
    """Under backpressure each item taken from a lane wakes one sender of that lane, not all
    of them; every sender still gets in, in turn."""
    from actors import Mailbox

    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.send_nowait(0)
    woken: Counter[str] = Counter()

    class CountWakeups(trio.abc.Instrument):
        def task_scheduled(self, task: trio.lowlevel.Task) -> None:
            if task.name.startswith("sender"):
                woken[task.name] += 1

    async with trio.open_nursery() as nursery:
        for index in range(10):
            nursery.start_soon(mailbox.send, index + 1, name=f"sender {index}")
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.statistics().senders_waiting == 10
        instrument = CountWakeups()
        trio.lowlevel.add_instrument(instrument)
        try:
            assert mailbox.receive_nowait() == 0
            await trio.testing.wait_all_tasks_blocked()
        finally:
            trio.lowlevel.remove_instrument(instrument)
        assert len(woken) == 1
        assert mailbox.statistics().senders_waiting == 9
        received = [await mailbox.receive() for _ in range(10)]
    assert sorted(received) == list(range(1, 11))


async def test_6_remote_jobs_right_after_a_crash_wait_for_the_new_instance(
    strict_transport: MemoryTransport, autojump_clock: MockClock
) -> None:
    """The same from another system: the worker's crash notice does not fail the jobs its
    next instance will run."""
    async with (
        open_actor_system("workers", transport=strict_transport) as workers,
        open_actor_system("requesters", transport=strict_transport) as requesters,
    ):
        parent = await workers.spawn(Lenient("parent"))
        await parent.add_child(Crashy("w"), restart=Restart.PERMANENT)
        crasher = await requesters.spawn(Recorder("crasher"))
        for attempt in range(20):
            await requesters.registry.wait_ready("w")
            await crasher.send_message("w", Note("crash"))
            for _ in range(attempt % 5):
                await trio.lowlevel.checkpoint()
            async with requesters.job("w", timeout=5) as j:
                pass
            assert j.status is JobStatus.COMPLETED, attempt
            await trio.sleep(2)
