"""Benchmarks: trio-actors beside raw Trio baselines measured in the same run.

Prints one JSON object. Each figure is the median of several runs; each comparison reports
our rate, the baseline's rate and their ratio (ours / baseline), because absolute numbers
move from machine to machine.

Usage: ``python bench/run.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec
import trio
import trio.lowlevel

from actors import Actor, ActorSpec, Envelope, JobRequest, job, open_actor_system
from supervision import Restart, RestartIntensity
from transports import MemoryTransport

Bench = Callable[[int], Awaitable[float]]


class Ping(msgspec.Struct, frozen=True):
    """The benchmark message."""

    n: int


# --- message round trips ---------------------------------------------------------------------


async def raw_ping_pong(count: int) -> float:
    """Round trips/s between two tasks over bounded(100) Trio memory channels."""
    to_server, server_inbox = trio.open_memory_channel[int](100)
    to_client, client_inbox = trio.open_memory_channel[int](100)

    async def server() -> None:
        async for value in server_inbox:
            await to_client.send(value + 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        start = time.perf_counter()
        for i in range(count):
            await to_server.send(i)
            await client_inbox.receive()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed


class Echo(Actor):
    async def on_message(self, envelope: Envelope) -> None:
        await self.send_message(envelope.sender, envelope.body)


class Pinger(Actor):
    """Sends a message to "echo" and, on each answer, the next one, `count` times."""

    def __init__(self, name: str, count: int) -> None:
        super().__init__(name)
        self.remaining = count
        self.done = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        self.remaining -= 1
        if self.remaining:
            await self.send_message("echo", envelope.body)
        else:
            self.done.set()


async def actor_ping_pong(count: int, *, strict: bool = True) -> float:
    """Round trips/s of custom messages between two actors (through their mailbox loops)."""
    async with open_actor_system("bench", transport=MemoryTransport(strict=strict)) as system:
        await system.spawn(Echo("echo"))
        pinger = await system.spawn(Pinger("pinger", count))
        assert isinstance(pinger, Pinger)
        start = time.perf_counter()
        await pinger.send_message("echo", Ping(1))
        await pinger.done.wait()
        return count / (time.perf_counter() - start)


# --- jobs ----------------------------------------------------------------------------------


async def raw_job_skeleton(count: int) -> float:
    """Round trips/s: request into a mailbox channel, reply through a per-request Event."""
    send, receive = trio.open_memory_channel[tuple[int, trio.Event, list[int]]](100)

    async def worker() -> None:
        async for value, done, out in receive:
            out.append(value + 1)
            done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        start = time.perf_counter()
        for i in range(count):
            done, out = trio.Event(), list[int]()
            await send.send((i, done, out))
            await done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed


async def raw_group_skeleton(count: int, width: int = 10) -> float:
    """Groups/s: fan a request out to `width` mailbox channels, wait for every reply."""
    channels = [trio.open_memory_channel[tuple[int, Any]](100) for _ in range(width)]

    async def worker(receive: trio.MemoryReceiveChannel[tuple[int, Any]]) -> None:
        async for value, reply in receive:
            reply(value)

    async with trio.open_nursery() as nursery:
        for _, receive in channels:
            nursery.start_soon(worker, receive)
        start = time.perf_counter()
        for i in range(count):
            done = trio.Event()
            results: dict[int, int] = {}

            def reply(
                value: int, results: dict[int, int] = results, done: trio.Event = done
            ) -> None:
                results[len(results)] = value
                if len(results) == width:
                    done.set()

            for send, _ in channels:
                await send.send((i, reply))
            await done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed


class Worker(Actor):
    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        return request.payload


async def actor_jobs(count: int, *, strict: bool = True) -> float:
    """Sequential `job()` round trips/s from the system to one worker."""
    async with open_actor_system("bench", transport=MemoryTransport(strict=strict)) as system:
        await system.spawn(Worker("worker"))
        start = time.perf_counter()
        for i in range(count):
            async with system.job("worker", payload=i) as j:
                pass
            assert j.response == i
        return count / (time.perf_counter() - start)


async def actor_groups(count: int, width: int = 10, idle: int = 0, *, strict: bool = True) -> float:
    """`job_group()` to `width` workers per second, with `idle` other actors alive."""
    async with open_actor_system("bench", transport=MemoryTransport(strict=strict)) as system:
        names = [f"w{i}" for i in range(width)]
        for name in names:
            await system.spawn(Worker(name))
        for i in range(idle):
            await system.spawn(Actor(f"idle{i}"))
        start = time.perf_counter()
        for i in range(count):
            async with system.job_group(*names, payload=i) as g:
                pass
            assert len(g.responses) == width
        return count / (time.perf_counter() - start)


# --- supervision ---------------------------------------------------------------------------


class Fragile(Actor):
    @job
    async def crash(self, request: JobRequest[Any]) -> None:
        raise RuntimeError("crash on purpose")

    async def on_message(self, envelope: Envelope) -> None:
        raise RuntimeError("crash on purpose")


class Tolerant(Actor):
    """A parent that restarts its children however often they crash."""

    intensity = RestartIntensity(max_restarts=1_000_000, within=1.0)


async def restart_latency(count: int) -> float:
    """Median seconds from a child's crash until its restarted instance is ready."""
    samples: list[float] = []
    async with open_actor_system("bench") as system:
        parent = await system.spawn(Tolerant("parent"))
        await parent.add_child(ActorSpec(lambda: Fragile("fragile"), restart=Restart.PERMANENT))
        for _ in range(count):
            old = system.actors["fragile"]
            start = time.perf_counter()
            await parent.send_message("fragile", Ping(0))
            while system.actors.get("fragile") in (None, old) or not system.actors["fragile"].ready:
                await trio.lowlevel.checkpoint()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def spawn_many(count: int, *, trace_memory: bool = False) -> dict[str, float]:
    """Spawn `count` supervised children of one parent: seconds, or bytes, per actor.

    Time and memory are measured in separate runs: tracing allocations slows every one.
    """
    gc.collect()
    async with open_actor_system("bench") as system:
        parent = await system.spawn(Actor("parent"))
        if trace_memory:
            tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0] if trace_memory else 0
        start = time.perf_counter()
        for i in range(count):
            await parent.add_child(Actor(f"c{i}"))
        elapsed = time.perf_counter() - start
        if trace_memory:
            used = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            return {"kib_per_actor": round((used - base) / count / 1024, 2)}
    return {
        "actors": count,
        "seconds_total": round(elapsed, 3),
        "microseconds_per_actor": round(elapsed / count * 1e6, 1),
    }


# --- driver --------------------------------------------------------------------------------


def median_rate(bench: Callable[[], Awaitable[float]], runs: int) -> float:
    """Run `bench` in a fresh Trio run `runs` times; return the median result."""
    results = [trio.run(bench) for _ in range(runs)]
    return statistics.median(results)


def compare(ours: float, baseline: float) -> dict[str, float]:
    """Return both rates and their ratio."""
    return {
        "ours": round(ours, 1),
        "baseline": round(baseline, 1),
        "ratio": round(ours / baseline, 3),
    }


def main() -> None:
    """Run every benchmark and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    # The restart benchmark crashes actors on purpose; their tracebacks are not the point.
    logging.disable(logging.CRITICAL)
    scale = 0.1 if args.quick else 1.0
    runs = 3 if args.quick else 7
    n = int(20_000 * scale)
    groups = int(2_000 * scale)

    report: dict[str, Any] = {"python": sys.version.split()[0], "runs": runs}
    # The default (isolating: every envelope through the codec) beside strict=False, the
    # documented opt-out that shares objects.
    ping_baseline = median_rate(lambda: raw_ping_pong(n), runs)
    report["message_round_trips_per_s"] = compare(
        median_rate(lambda: actor_ping_pong(n), runs), ping_baseline
    )
    report["message_round_trips_shared_objects_per_s"] = compare(
        median_rate(lambda: actor_ping_pong(n, strict=False), runs), ping_baseline
    )
    job_baseline = median_rate(lambda: raw_job_skeleton(n), runs)
    report["job_round_trips_per_s"] = compare(
        median_rate(lambda: actor_jobs(n), runs), job_baseline
    )
    report["job_round_trips_shared_objects_per_s"] = compare(
        median_rate(lambda: actor_jobs(n, strict=False), runs), job_baseline
    )
    group_baseline = median_rate(lambda: raw_group_skeleton(groups), runs)
    report["job_group_10_per_s"] = compare(
        median_rate(lambda: actor_groups(groups), runs), group_baseline
    )
    report["job_group_10_shared_objects_per_s"] = compare(
        median_rate(lambda: actor_groups(groups, strict=False), runs), group_baseline
    )
    report["job_group_10_with_1000_idle_per_s"] = compare(
        median_rate(lambda: actor_groups(groups, idle=1000), runs), group_baseline
    )
    report["restart_latency_ms_median"] = round(
        trio.run(restart_latency, int(200 * max(scale, 0.25))) * 1000, 3
    )
    spawned = int(10_000 * scale)
    report["spawn_supervised"] = {
        **trio.run(spawn_many, spawned),
        **trio.run(partial(spawn_many, spawned, trace_memory=True)),
    }
    # CPython's cyclic collector rescans the whole heap every so often, so spawn time grows
    # with the number of live objects; this is the same spawn with the collector paused.
    gc.disable()
    try:
        paused = trio.run(spawn_many, spawned)
    finally:
        gc.enable()
    report["spawn_supervised"]["microseconds_per_actor_gc_paused"] = paused[
        "microseconds_per_actor"
    ]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
