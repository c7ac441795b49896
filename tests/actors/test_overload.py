"""Issue 8, overload and waits that cannot succeed: full mailboxes, floods, self-requests.

Every test runs on the autojump clock, so "longer than a second" costs nothing real.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSystem,
    Envelope,
    EnvelopeCodec,
    JobCancellation,
    JobError,
    JobRequest,
    JobResponse,
    JobResult,
    JobStatus,
    job,
)
from actors._runtime import peers as system_module
from actors._wire.envelope import AgentGone, AgentInfo, AgentReady, JobCancel, RegistryQuery
from actors.testing import open_test_system, wait_ready
from transports import Delivery, MemoryTransport

from actor_support import Note, held_jobs, open_jobs

CODEC = EnvelopeCodec()
_ids = itertools.count(1)


class Blocker(Actor):
    """An actor whose mailbox stays full: its handler waits for `release`, and one message waits
    behind it (mailbox_size=1)."""

    def __init__(self, name: str, **options: Any) -> None:
        options.setdefault("mailbox_size", 1)
        super().__init__(name, **options)
        self.release = trio.Event()
        self.blocked = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        self.blocked.set()
        await self.release.wait()


async def fill_mailbox(sender: Actor, target: Blocker) -> None:
    """Block `target` in its handler and fill its one-slot mailbox behind it."""
    await sender.send_message(target.name, Note("block"))
    await target.blocked.wait()
    await sender.send_message(target.name, Note("queued"))
    assert target._mailbox is not None
    assert target._mailbox.statistics().queued == 1


class Workers(Actor):
    """Jobs by name: ``ok`` answers, ``fail`` raises, ``stall`` waits until cancelled, and
    ``stream`` streams until cancelled; records its cancellations."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.cancelled: list[JobCancellation] = []

    @job(name="ok")
    async def ok(self, request: JobRequest[Any]) -> Any:
        await trio.sleep(0.5)
        return request.payload

    @job(name="fail")
    async def fail(self, request: JobRequest[Any]) -> None:
        await trio.sleep(0.5)
        raise RuntimeError("failed on purpose")

    @job(name="stall")
    async def stall(self, request: JobRequest[Any]) -> None:
        await trio.sleep_forever()

    @job(name="stream")
    async def stream(self, request: JobRequest[Any]) -> None:
        await self.send_job_stream_start(request.job_id)
        for n in itertools.count():
            await self.send_job_stream_data(request.job_id, n)

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancelled.append(cancellation)


class HookedBlocker(Blocker):
    """A `Blocker` that requests jobs fire-and-forget and records every outcome hook."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.responses: list[JobResponse] = []
        self.completed: list[JobResult] = []

    async def on_job_response(self, response: JobResponse) -> None:
        await super().on_job_response(response)
        self.responses.append(response)

    async def on_job_completed(self, result: JobResult) -> None:
        await super().on_job_completed(result)
        self.completed.append(result)


# --- item 1 ------------------------------------------------------------------------------------


async def test_fire_and_forget_answers_reach_a_requester_whose_mailbox_stays_full(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """A `request_job` requester whose mailbox stays full for many seconds still gets every
    answer (COMPLETED, ERROR, CANCELLED, from local and remote workers): each job's outcome
    hooks run exactly once, and nothing of the requests is left."""
    async with (
        open_test_system("home", transport=strict_transport) as home,
        open_test_system("away", transport=strict_transport) as away,
    ):
        await home.spawn(Workers("local"))
        await away.spawn(Workers("remote"))
        requester = await home.spawn(HookedBlocker("requester"))
        sender = await home.spawn(Blocker("sender"))
        await wait_ready(home, "remote")
        await fill_mailbox(sender, requester)
        ids: list[str] = []
        cancel: list[str] = []
        for worker in ("local", "remote"):
            for name in ("ok", "fail", "stall", "ok", "fail", "stall"):
                job_id = await requester.request_job(worker, name=name, payload=name)
                ids.append(job_id)
                if name == "stall":
                    cancel.append(job_id)
        for job_id in cancel:
            await requester.cancel_job(job_id)
        await trio.sleep(10)
        # The mailbox never had room the whole time.
        assert requester._mailbox is not None
        assert requester._mailbox.statistics().queued == 1
        assert Counter(r.job_id for r in requester.responses) == Counter(ids)
        assert sorted(r.job_id for r in requester.completed) == sorted(ids)
        assert Counter(r.status for r in requester.responses) == {
            JobStatus.COMPLETED: 4,
            JobStatus.ERROR: 4,
            JobStatus.CANCELLED: 4,
        }
        assert open_jobs(requester) == {}
        requester.release.set()
        sender.release.set()


# --- item 2 ------------------------------------------------------------------------------------


async def test_cancelling_a_big_group_under_load_stops_every_member(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """A group of 60 streaming members on a peer system is left by an exception once every
    worker's mailbox is full: every member gets its own cancel, answers CANCELLED and runs its
    `on_job_cancelled`; no handler is left waiting for credits."""

    class BusyWorkers(Workers, Blocker):
        pass

    members = [f"w{n}" for n in range(60)]
    async with (
        open_test_system("home", transport=strict_transport) as home,
        open_test_system("away", transport=strict_transport) as away,
    ):
        workers = [await away.spawn(BusyWorkers(name)) for name in members]
        sender = await away.spawn(Blocker("sender", mailbox_size=1000))
        await wait_ready(home, *members)
        with trio.fail_after(30), pytest.raises(KeyError):
            async with home.job_group(*members, name="stream") as group:
                async for event in group:
                    if event.data == 100:
                        # Requests queue behind a full mailbox; cancels must not.
                        for worker in workers:
                            await fill_mailbox(sender, worker)
                        raise KeyError("leave the block")
        await trio.sleep(5)
        assert [len(worker.cancelled) for worker in workers] == [1] * len(members)
        assert open_jobs(home) == {}
        for worker in workers:
            worker.release.set()
        sender.release.set()


# --- item 3 ------------------------------------------------------------------------------------


async def test_end_with_a_short_grace_is_bounded_under_load(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """An actor holding 300 running jobs for local and remote requesters, with its message
    handler stuck and a full mailbox of queued requests behind it, ends within its grace
    period of 0.02 s; every request, running or queued, is answered."""

    class Loaded(Workers, Blocker):
        pass

    async with (
        open_test_system("home", transport=strict_transport) as home,
        open_test_system("away", transport=strict_transport) as away,
    ):
        loaded = await home.spawn(Loaded("loaded", mailbox_size=50))
        sender = await home.spawn(Blocker("sender"))
        await wait_ready(away, "loaded")
        for requester in (home, away):
            for _ in range(150):
                await requester.request_job("loaded", name="stall")
        await trio.testing.wait_all_tasks_blocked()
        assert len(held_jobs(loaded)) == 300
        await fill_mailbox(sender, loaded)
        for _ in range(49):
            await away.request_job("loaded", name="stall")
        await trio.testing.wait_all_tasks_blocked()
        assert loaded._mailbox is not None
        assert loaded._mailbox.statistics().queued == 50
        started = trio.current_time()
        with trio.fail_after(10):
            await loaded.end(grace=0.02)
        assert trio.current_time() - started <= 0.02 + 1e-9
        await trio.sleep(1)
        assert open_jobs(home) == {} and open_jobs(away) == {}
        sender.release.set()


# --- item 11 -----------------------------------------------------------------------------------


async def test_a_message_handler_can_await_a_job_of_its_own_actor(
    actor_system: ActorSystem,
) -> None:
    """`on_message` awaiting a job to its own actor completes: the request starts at once
    instead of queueing behind the very message being handled."""

    class Selfish(Workers):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.answers: list[Any] = []

        async def on_message(self, envelope: Envelope) -> None:
            async with self.job(self.name, name="ok", payload=envelope.body.text) as j:
                pass
            self.answers.append(j.response)

    selfish = await actor_system.spawn(Selfish("selfish"))
    sender = await actor_system.spawn(Blocker("sender"))
    for text in ("a", "b"):
        await sender.send_message("selfish", Note(text))
    await trio.sleep(5)
    assert selfish.answers == ["a", "b"]


async def test_a_bounded_handler_awaiting_its_own_actor_raises_at_once(
    actor_system: ActorSystem,
) -> None:
    """A `sequential` handler (or any handler of a `max_concurrent_jobs=1` actor) awaiting a
    job of its own actor that needs the place it holds raises `ActorStateError` at once."""

    class Recursive(Actor):
        @job(name="seq", sequential=True)
        async def seq(self, request: JobRequest[Any]) -> str:
            if request.payload:
                async with self.job(self.name, name="seq", payload=False):
                    pass
            return "leaf"

        @job
        async def default(self, request: JobRequest[Any]) -> str:
            if request.payload:
                async with self.job(self.name, payload=False):
                    pass
            return "leaf"

    await actor_system.spawn(Recursive("seq"))
    await actor_system.spawn(Recursive("one", max_concurrent_jobs=1))
    for worker, name in (("seq", "seq"), ("one", None)):
        with trio.fail_after(1), pytest.raises(JobError) as caught:
            async with actor_system.job(worker, name=name, payload=True):
                pass
        assert caught.value.status is JobStatus.ERROR
        assert "ActorStateError" in str(caught.value)
        assert "asked a job of itself" in str(caught.value)
    # Without the bound, the same recursion is fine.
    async with actor_system.job("one", name="seq", payload=False) as j:
        pass
    assert j.response == "leaf"


async def test_senders_blocked_on_each_others_full_mailboxes_are_reported(
    actor_system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """Two actors sending into each other's full mailboxes are stuck (inherent to bounded
    mailboxes); once a send has waited longer than the system's threshold, a warning names
    both actors, and the statistics count the blocked senders."""

    class Pusher(Actor):
        def __init__(self, name: str, peer: str) -> None:
            super().__init__(name, mailbox_size=1)
            self.peer = peer

        async def on_message(self, envelope: Envelope) -> None:
            for n in range(3):
                await self.send_message(self.peer, Note(str(n)))

    await actor_system.spawn(Pusher("ping", "pong"))
    await actor_system.spawn(Pusher("pong", "ping"))
    starter = await actor_system.spawn(Blocker("starter"))
    with caplog.at_level(logging.WARNING, logger="actors._routing.router"):
        await starter.send_message("ping", Note("go"))
        await starter.send_message("pong", Note("go"))
        await trio.sleep(actor_system.slow_send_warning + 1)
    warnings = [r.getMessage() for r in caplog.records if "waited" in r.getMessage()]
    assert any("'ping'" in w and "'pong'" in w for w in warnings)
    assert actor_system.statistics().blocked_senders == 2
    for name in ("ping", "pong"):
        actor_system.actors[name].cancel()


# --- item 12 -----------------------------------------------------------------------------------


async def test_late_cancels_leave_tombstones_that_expire_with_time(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """Cancels for jobs the worker never holds (late, or forged) leave tombstones, visible in
    the statistics, that expire with time without any further traffic; past a bound on their
    number a cancel leaves none (counted as hostile)."""
    async with open_test_system("home", transport=strict_transport) as home:
        worker = await home.spawn(Workers("w"))
        async with strict_transport.connect("evil") as evil:
            for n in range(100):
                envelope = Envelope(
                    id=f"c{n}",
                    sender="system:evil",
                    recipient="w",
                    body=JobCancel(reason="late"),
                    job_id=f"gone-{n}",
                    deadline=None if n % 2 else 5.0,
                )
                await evil.send("w", CODEC.encode(envelope), control=True)
            await trio.testing.wait_all_tasks_blocked()
            assert home.statistics().tombstones == 100
            # A flood of them is bounded by count too: past the bound a cancel leaves none.
            assert worker._worker is not None
            worker._worker.table.max_tombstones = 100
            for n in range(100, 150):
                envelope = Envelope(
                    id=f"c{n}",
                    sender="system:evil",
                    recipient="w",
                    body=JobCancel(reason="flood"),
                    job_id=f"gone-{n}",
                )
                await evil.send("w", CODEC.encode(envelope), control=True)
            await trio.testing.wait_all_tasks_blocked()
            assert home.statistics().tombstones == 100
            assert home.statistics().hostile == 50
            await trio.sleep(10)
            assert home.statistics().tombstones == 50  # those that carried a 5 s budget are gone
            await trio.sleep(300)
            assert home.statistics().tombstones == 0


async def test_a_registry_query_flood_is_answered_at_most_once_per_interval(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """10,000 registry queries in one second, under a thousand forged sender names, get one
    answer per second (each of our actors announced once per second), not one per query."""
    async with open_test_system("home", transport=strict_transport) as home:
        for name in ("a", "b", "c"):
            await home.spawn(Workers(name))
        async with strict_transport.connect("evil") as evil:
            started = trio.current_time()
            for n in range(10_000):
                envelope = Envelope(
                    id=f"q{n}",
                    sender=f"forged-{n % 1000}",
                    recipient=None,
                    body=RegistryQuery(system=f"forged-{n % 1000}"),
                )
                await evil.broadcast(CODEC.encode(envelope))
                if n % 100 == 99:
                    await trio.sleep(0.01)
            flood = trio.current_time() - started
            await trio.sleep(5)
            announced: Counter[str] = Counter()
            with trio.move_on_after(0.1):
                while True:
                    item = await evil.receive()
                    if isinstance(item, Delivery) and isinstance(item.packet, bytes):
                        body = CODEC.decode(item.packet).body
                        if isinstance(body, AgentReady):
                            announced[body.info.name] += 1
        # One answer at the first query, then one at the end of each interval with queries.
        assert set(announced) == {"a", "b", "c"}
        assert max(announced.values()) <= flood / 1.0 + 2
        await wait_ready(home, "a")


async def test_statistics_show_in_flight_jobs_by_side_and_hostile_traffic(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """`system.statistics()` counts jobs in flight at requesters and at workers, blocked
    senders, tombstones, dead letters and dropped hostile packets."""
    async with open_test_system("home", transport=strict_transport) as home:
        await home.spawn(Workers("w"))
        job_id = await home.request_job("w", name="stall")
        await trio.testing.wait_all_tasks_blocked()
        stats = home.statistics()
        assert (stats.jobs_requested, stats.jobs_held) == (1, 1)
        await home.cancel_job(job_id)
        await trio.sleep(1)
        stats = home.statistics()
        assert (stats.jobs_requested, stats.jobs_held, stats.unacknowledged) == (0, 0, 0)
        for field in ("tombstones", "dead_letters", "hostile", "decode_errors", "blocked_senders"):
            assert getattr(stats, field) == 0


async def test_a_flood_past_the_link_window_is_bounded_per_actor(
    autojump_clock: MockClock, strict_transport: MemoryTransport
) -> None:
    """Messages a peer passes off as control packets, and broadcasts, skip the link's per-name
    window; flooding a blocked actor with them fills its backlog only up to the router's bound,
    past which they are dropped and counted as hostile. The actor then gets what was kept."""
    async with open_test_system("home", transport=strict_transport) as home:
        home._router.backlog_limit = 100
        blocked = await home.spawn(HookedBlocker("blocked"))
        sender = await home.spawn(Blocker("sender"))
        await fill_mailbox(sender, blocked)
        async with strict_transport.connect("evil") as evil:
            for n in range(300):
                envelope = Envelope(
                    id=f"m{n}", sender="evil", recipient="blocked", body=Note(str(n))
                )
                await evil.send("blocked", CODEC.encode(envelope), control=True)
                broadcast = Envelope(id=f"b{n}", sender="evil", recipient=None, body=Note("b"))
                await evil.broadcast(CODEC.encode(broadcast))
            await trio.testing.wait_all_tasks_blocked()
            stats = home.statistics()
            # "blocked" (mailbox full already): of 300 messages and 300 broadcasts, 100 wait
            # in its backlog. "sender" gets the broadcasts: one blocks its handler, one fills
            # its mailbox, 100 wait in its backlog.
            assert stats.hostile == (600 - 100) + (300 - 2 - 100)
            blocked.release.set()
            sender.release.set()
            await trio.sleep(1)
            await probe_job(home)
        assert home.statistics().unacknowledged == 0


async def probe_job(system: ActorSystem) -> None:
    """The system still serves a job."""
    await system.spawn(Workers("probe"))
    with trio.fail_after(5):
        async with system.job("probe", name="ok", payload="probe") as j:
            pass
    assert j.response == "probe"


async def test_a_peer_cannot_announce_actors_without_end(
    autojump_clock: MockClock, strict_transport: MemoryTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry holds at most `MAX_ACTORS_PER_PEER` actors of one peer system; what it
    announces beyond is ignored and counted, until some of its actors are gone again."""
    monkeypatch.setattr(system_module, "MAX_ACTORS_PER_PEER", 10)
    async with open_test_system("home", transport=strict_transport) as home:
        await home.spawn(Workers("w"))
        async with strict_transport.connect("evil") as evil:
            for n in range(20):
                info = AgentInfo(name=f"fake{n}", system="evil", incarnation="1")
                envelope = Envelope(
                    id=f"r{n}", sender="evil", recipient=None, body=AgentReady(info=info)
                )
                await evil.broadcast(CODEC.encode(envelope))
            await trio.testing.wait_all_tasks_blocked()
            assert home.registry.count_on("evil") == 10
            assert home.statistics().hostile == 10
            gone = Envelope(
                id="g", sender="evil", recipient=None, body=AgentGone(name="fake0", system="evil")
            )
            await evil.broadcast(CODEC.encode(gone))
            again = Envelope(
                id="r-again",
                sender="evil",
                recipient=None,
                body=AgentReady(info=AgentInfo(name="fake19", system="evil", incarnation="1")),
            )
            await evil.broadcast(CODEC.encode(again))
            await trio.testing.wait_all_tasks_blocked()
            assert "fake19" in home.registry and "fake0" not in home.registry
        await trio.testing.wait_all_tasks_blocked()
        assert home.registry.count_on("evil") == 0
        await probe_job(home)
