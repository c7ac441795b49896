"""A bounded job storm (issue 8): thousands of jobs, every kind of ending, nothing left over.

Two actor systems on one strict `MemoryTransport` (so half the traffic crosses systems as
bytes), six workers, four requester actors plus both systems as requesters. Jobs mix `job()`,
`job_group()` and fire-and-forget `request_job` / `request_job_group` with hooks; they end by
completing, by a handler error, by the requester cancelling (`cancel_job`, or leaving the block
with an exception), by their timeout, and by their worker stopping or crashing (a chaos task
ends or crashes workers and starts them again). Time is virtual (autojump clock).

Checked: every requester got exactly one outcome per member of every job (and fire-and-forget
jobs exactly one `on_job_completed`); afterwards no job is requested or held anywhere, nothing
is unacknowledged, no sender is blocked, and once their time is up no tombstone is left. Run
with ``-s`` to see the figures.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import attrs
import msgspec
import trio
from trio.testing import MockClock

from actors import (
    Actor,
    ActorSystem,
    Envelope,
    JobError,
    JobRequest,
    JobResponse,
    JobResult,
    JobStatus,
    job,
)
from actors._jobs.table import TOMBSTONE_SECONDS
from actors.testing import open_test_system, wait_ready
from transports import MemoryTransport

SEED = 8
JOBS = 3000
SPACING = 0.01
"""Virtual seconds between two job starts (about 300 jobs are in flight at a time)."""


class Abandon(Exception):
    """Raised inside a job block: the requester gives up on the job."""


class Crash(msgspec.Struct, frozen=True):
    """Makes a `StormWorker` crash."""


class StormWorker(Actor):
    """Sends `updates` updates, sleeps `delay`, then answers or (if `fail`) raises; crashes
    on a `Crash` message."""

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.body, Crash):
            raise RuntimeError("storm crash")
        await super().on_message(envelope)

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        delay, fail, updates = request.payload
        for n in range(updates):
            await self.send_job_update(request.job_id, n)
        await trio.sleep(delay)
        if fail:
            raise RuntimeError("storm failure")
        return delay


class StormRequester(Actor):
    """Records the outcome hooks of its fire-and-forget jobs."""

    def __init__(self, name: str, tally: Tally) -> None:
        super().__init__(name)
        self.tally = tally

    async def on_job_response(self, response: JobResponse) -> None:
        await super().on_job_response(response)
        self.tally.hook_response(response)

    async def on_job_completed(self, result: JobResult) -> None:
        await super().on_job_completed(result)
        self.tally.completed[result.job_id] += 1


class SystemHooks:
    """Routes a system's fire-and-forget hooks to the tally (systems are requesters too)."""

    @staticmethod
    def install(system: ActorSystem, tally: Tally) -> None:
        async def on_job_response(response: JobResponse) -> None:
            tally.hook_response(response)

        async def on_job_completed(result: JobResult) -> None:
            tally.completed[result.job_id] += 1

        system.on_job_response = on_job_response  # type: ignore[method-assign]
        system.on_job_completed = on_job_completed  # type: ignore[method-assign]


def ending(status: JobStatus, error: str | None) -> str:
    """Classify one member's outcome: how it ended, and for CANCELLED, why."""
    if status is not JobStatus.CANCELLED:
        return status.name
    text = error or ""
    if "deadline" in text:
        return "CANCELLED by timeout"
    if "stopped" in text or "stopping" in text or "gone" in text:
        return "CANCELLED by the worker stopping"
    return "CANCELLED by the requester"


@attrs.define
class Tally:
    """Outcomes per (job, member), and what was asked."""

    members: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    outcomes: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    endings: Counter[str] = attrs.field(factory=Counter)
    completed: Counter[str] = attrs.field(factory=Counter)
    fire_and_forget: set[str] = attrs.field(factory=set)
    kinds: Counter[str] = attrs.field(factory=Counter)
    requester_cancels: Counter[str] = attrs.field(factory=Counter)
    timeouts: int = 0
    unexpected: list[BaseException] = attrs.field(factory=list)

    def record(self, job_id: str, statuses: dict[str, JobStatus], errors: dict[str, str]) -> None:
        for member, status in statuses.items():
            self.outcomes[job_id, member] += 1
            self.endings[ending(status, errors.get(member))] += 1

    def abandoned(self, job_id: str) -> None:
        for member in self.members[job_id]:
            self.outcomes[job_id, member] += 1
            self.endings["abandoned by the requester (left the block)"] += 1

    def hook_response(self, response: JobResponse) -> None:
        self.outcomes[response.job_id, response.actor_name] += 1
        self.endings[ending(response.status, response.error)] += 1


async def run_job(requester: Actor | ActorSystem, plan: dict[str, Any], tally: Tally) -> None:
    """Run one planned job to its end, recording its outcome."""
    members: tuple[str, ...] = plan["members"]
    payload = plan["payload"]
    timeout = plan["timeout"]
    kind = plan["kind"]
    tally.kinds[kind] += 1
    job_id = None
    try:
        if kind == "request":
            if len(members) == 1:
                job_id = await requester.request_job(members[0], payload=payload, timeout=timeout)
            else:
                job_id = await requester.request_job_group(
                    *members, payload=payload, timeout=timeout, cancel_on_error=plan["coe"]
                )
            tally.members[job_id] = members
            tally.fire_and_forget.add(job_id)
            if plan["cancel_after"] is not None:
                await trio.sleep(plan["cancel_after"])
                tally.requester_cancels["cancel_job"] += 1
                await requester.cancel_job(job_id, "storm cancel")
            return
        context = (
            requester.job(members[0], payload=payload, timeout=timeout)
            if kind == "job"
            else requester.job_group(
                *members, payload=payload, timeout=timeout, cancel_on_error=plan["coe"]
            )
        )
        async with context as block:
            job_id = block.job_id
            tally.members[job_id] = members
            if plan["cancel_after"] is not None:
                await trio.sleep(plan["cancel_after"])
                tally.requester_cancels["left the block"] += 1
                raise Abandon
            async for _ in block:
                pass
        tally.record(job_id, block.statuses, block.errors)
    except Abandon:
        assert job_id is not None
        tally.abandoned(job_id)
    except JobError as error:
        if isinstance(error, TimeoutError):
            tally.timeouts += 1
        tally.members.setdefault(error.job_id, members)
        tally.record(error.job_id, error.statuses, error.errors)
    except Exception as error:
        tally.unexpected.append(error)


async def chaos(
    systems: dict[str, ActorSystem], workers: list[str], crasher: Actor, rng: random.Random
) -> None:
    """Every few seconds end a worker at once, or crash it, and start a new one of that name
    soon after."""
    while True:
        await trio.sleep(rng.uniform(2, 5))
        name = rng.choice(workers)
        system = systems[name]
        actor = system.actors.get(name)
        if actor is None:
            continue
        if rng.random() < 0.5:
            await crasher.send_message(name, Crash(), urgent=True)
            await trio.sleep(0.1)
        await actor.end(grace=0)
        await trio.sleep(rng.uniform(0.1, 1.0))
        await system.spawn(StormWorker(name))


def plan_jobs(rng: random.Random, workers: list[str], requesters: int) -> list[dict[str, Any]]:
    plans = []
    for _ in range(JOBS):
        kind = rng.choices(["job", "group", "request"], weights=[4, 3, 3])[0]
        size = 1 if kind == "job" else rng.choice([1, 2, 3])
        cancel = rng.random() < (0.1 if kind != "request" else 0.2)
        plans.append(
            {
                "requester": rng.randrange(requesters),
                "kind": kind,
                "members": tuple(rng.sample(workers, size)),
                "payload": (rng.uniform(0, 3), rng.random() < 0.1, rng.randrange(4)),
                "timeout": None if rng.random() < 0.6 else rng.uniform(0.5, 4),
                "coe": rng.random() < 0.5,
                "cancel_after": rng.uniform(0, 2) if cancel else None,
            }
        )
    return plans


async def test_job_storm_every_outcome_once_and_nothing_left(autojump_clock: MockClock) -> None:
    """A few thousand jobs of every kind and ending: one outcome per member, no leaks."""
    rng = random.Random(SEED)
    tally = Tally()
    transport = MemoryTransport(strict=True)
    workers = [f"w{n}" for n in range(6)]
    wall = trio.current_time()
    async with (
        open_test_system("a", transport=transport) as a,
        open_test_system("b", transport=transport) as b,
    ):
        systems = {name: (a if n % 2 else b) for n, name in enumerate(workers)}
        for name, system in systems.items():
            await system.spawn(StormWorker(name))
        requesters: list[Actor | ActorSystem] = [a, b]
        for n in range(4):
            requesters.append(await (a, b)[n % 2].spawn(StormRequester(f"r{n}", tally)))
        for system in (a, b):
            SystemHooks.install(system, tally)
        await wait_ready(a, *workers)
        await wait_ready(b, *workers)
        plans = plan_jobs(rng, workers, len(requesters))
        async with trio.open_nursery() as nursery:
            crasher = requesters[2]
            assert isinstance(crasher, Actor)
            nursery.start_soon(chaos, systems, workers, crasher, random.Random(SEED + 1))
            async with trio.open_nursery() as jobs:
                for plan in plans:
                    jobs.start_soon(run_job, requesters[plan["requester"]], plan, tally)
                    await trio.sleep(SPACING)
            # Fire-and-forget jobs end on their hooks; every job's work takes under 3 s, and a
            # restarted worker is back within a second.
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
        storm_time = trio.current_time() - wall - 30
        await trio.sleep(5)
        after = {name: system.statistics() for name, system in (("a", a), ("b", b))}
        peak_tombstones = sum(stats.tombstones for stats in after.values())
        await trio.sleep(TOMBSTONE_SECONDS + 1)
        expired = {name: system.statistics() for name, system in (("a", a), ("b", b))}

    members_total = sum(len(members) for members in tally.members.values())
    wrong = {key: count for key, count in tally.outcomes.items() if count != 1}
    missing = [
        (job_id, member)
        for job_id, members in tally.members.items()
        for member in members
        if (job_id, member) not in tally.outcomes
    ]
    not_completed = [job_id for job_id in tally.fire_and_forget if tally.completed[job_id] != 1]
    leaks = {
        name: {
            "jobs_requested": stats.jobs_requested,
            "jobs_held": stats.jobs_held,
            "unacknowledged": stats.unacknowledged,
            "blocked_senders": stats.blocked_senders,
            "tombstones_after_expiry": stats.tombstones,
        }
        for name, stats in expired.items()
    }
    print()
    print(f"storm: {JOBS} jobs, {members_total} members, {storm_time:.0f} virtual seconds")
    print(f"  kinds: {dict(tally.kinds)}")
    print(f"  cancels by the requester: {dict(tally.requester_cancels)}")
    print(f"  jobs ended by JobTimeout: {tally.timeouts}")
    for name, count in sorted(tally.endings.items()):
        print(f"  {name}: {count}")
    print(f"  tombstones 5 s after the storm: {peak_tombstones}")
    print(f"  outcomes missing: {len(missing)}, duplicated: {len(wrong)}")
    print(f"  fire-and-forget jobs without exactly one on_job_completed: {len(not_completed)}")
    print(f"  leaks: {leaks}")
    print(f"  dead letters: {[s.dead_letters for s in expired.values()]}")
    assert tally.unexpected == []
    assert len(tally.members) == JOBS
    assert missing == [] and wrong == {}
    assert not_completed == []
    for stats in expired.values():
        assert stats.jobs_requested == 0
        assert stats.jobs_held == 0
        assert stats.unacknowledged == 0
        assert stats.blocked_senders == 0
        assert stats.tombstones == 0
    # Every kind of ending happened.
    for name in (
        "COMPLETED",
        "ERROR",
        "CANCELLED by timeout",
        "CANCELLED by the requester",
        "CANCELLED by the worker stopping",
        "FAILED",
    ):
        assert tally.endings[name] > 0, name
