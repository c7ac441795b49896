"""Cross-process benchmarks over Redis: jobs beside raw stream request/reply, measured together.

Prints one JSON object. Every figure is between separate processes sharing one Redis server;
this process is the requester (or the raw client) and starts the other processes itself, by
running this file again with `--role`:

- `job_round_trips_per_s`: sequential `system.job()` round trips to a worker actor in another
  process, beside the raw baseline: the same request/reply done by hand through Redis streams on
  the transport's own connection layer (`transports._redis_connection`: Trio sockets and
  `hiredis.Reader`), i.e. XADD of the request, a blocking XREADGROUP in the echo process that
  answers with XADD and XACK in one pipelined write, and a blocking XREADGROUP of the reply.
  The goal is a ratio >= 0.7.
- `jobs_100_in_flight_per_s`: 100 jobs kept in flight from this process to worker actors in two
  other processes, beside the raw request/reply with 100 in flight to two echo processes. The
  goal is >= 20,000 jobs/s.

Each figure is the median of several runs on the same processes, after a warm-up. Beside the
rates, `cpu_microseconds_per_round_trip` gives the CPU time each side used per round trip
(Linux: read from /proc): this process (requester or raw client), the other processes (workers
or echoes) and Redis, so that a figure taken on a busy machine can still be read. Without
`--redis-url`, a redis-server is started on a free port for the run (and stopped at the end).

Usage: ``python bench/redis_bench.py [--quick] [--redis-url URL] [--profile FOLDER]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import trio

from actors import Actor, JobRequest, job, open_actor_system
from transports import RedisTransport
from transports._redis_connection import RedisConnection, open_redis_connection
from transports._resp import parse_info
from transports.testing import start_redis_server

IN_FLIGHT: Final = 100
"""Requests kept in flight by the concurrent benchmarks."""
GROUP: Final = "bench"
"""The consumer group of the raw benchmark's streams."""
START_BOUND: Final = 30.0
"""Seconds a helper process may take to be ready."""
PROFILE_ENV: Final = "REDIS_BENCH_PROFILE"
"""Set (to a folder) by `--profile`: the worker processes write their profiles there."""


# --- raw request/reply through streams -------------------------------------------------------


async def raw_echo(url: str, requests: str) -> None:
    """The raw echo process: answer every request on `requests` into its reply stream."""
    async with open_redis_connection(url) as connection:
        await connection.execute("XGROUP", "CREATE", requests, GROUP, "$", "MKSTREAM")
        print("ready", flush=True)
        while True:
            reply = await connection.execute_blocking(
                "XREADGROUP", "GROUP", GROUP, "echo", "COUNT", 256, "BLOCK", 0,
                "STREAMS", requests, ">",
            )  # fmt: skip
            assert isinstance(reply, list)
            commands: list[tuple[Any, ...]] = []
            ids = []
            for entry_id, fields in reply[0][1]:
                # fields: [b"r", reply stream, b"i", request id]
                commands.append(("XADD", fields[1], "*", "i", fields[3]))
                ids.append(entry_id)
            # The answers and the ack in one write, as the transport settles a request.
            commands.append(("XACK", requests, GROUP, *ids))
            await connection.pipeline(commands)


class RawClient:
    """The raw requester: XADD a request, wake its waiter when the reply is read."""

    def __init__(self, writer: RedisConnection, reader: RedisConnection, replies: str) -> None:
        self.writer = writer
        self.reader = reader
        self.replies = replies
        self.waiting: dict[bytes, trio.Event] = {}
        self.next_id = 0

    async def read_replies(self) -> None:
        """Read replies (no ack needed: NOACK) and wake their waiters."""
        while True:
            reply = await self.reader.execute_blocking(
                "XREADGROUP", "GROUP", GROUP, "client", "COUNT", 256, "BLOCK", 0, "NOACK",
                "STREAMS", self.replies, ">",
            )  # fmt: skip
            assert isinstance(reply, list)
            for _, fields in reply[0][1]:
                self.waiting.pop(fields[1]).set()

    async def request(self, requests: str) -> None:
        """One request/reply round trip through `requests`."""
        self.next_id += 1
        request_id = str(self.next_id).encode()
        done = self.waiting[request_id] = trio.Event()
        await self.writer.execute("XADD", requests, "*", "r", self.replies, "i", request_id)
        await done.wait()


@asynccontextmanager
async def open_raw_client(url: str) -> AsyncIterator[RawClient]:
    """A raw client with its reply stream and reader task."""
    replies = f"bench:replies:{secrets.token_hex(4)}"
    async with (
        open_redis_connection(url) as writer,
        open_redis_connection(url) as reader,
        trio.open_nursery() as nursery,
    ):
        await writer.execute("XGROUP", "CREATE", replies, GROUP, "$", "MKSTREAM")
        client = RawClient(writer, reader, replies)
        nursery.start_soon(client.read_replies)
        yield client
        nursery.cancel_scope.cancel()


async def raw_sequential(client: RawClient, requests: str, count: int) -> float:
    """Round trips/s, one at a time."""
    start = time.perf_counter()
    for _ in range(count):
        await client.request(requests)
    return count / (time.perf_counter() - start)


async def raw_in_flight(client: RawClient, streams: list[str], count: int) -> float:
    """Round trips/s with `IN_FLIGHT` requests outstanding, spread over `streams`."""
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for lane in range(IN_FLIGHT):

            async def run(lane: int = lane) -> None:
                for _ in range(count // IN_FLIGHT):
                    await client.request(streams[lane % len(streams)])

            nursery.start_soon(run)
    return (count // IN_FLIGHT * IN_FLIGHT) / (time.perf_counter() - start)


# --- jobs between actor systems ----------------------------------------------------------------


class Echo(Actor):
    """Answers every job with its payload."""

    @job
    async def echo(self, request: JobRequest[Any]) -> Any:
        """Return the payload."""
        return request.payload


async def actor_worker(url: str, namespace: str, name: str) -> None:
    """The worker process: one `Echo` actor in a system of its own, until SIGTERM."""
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        transport = RedisTransport(url, namespace=namespace)
        async with open_actor_system(f"{name}-process", transport=transport) as system:
            await system.spawn(Echo(name))
            print("ready", flush=True)
            async for _ in signals:
                break
            system.end("benchmark over")
            await system.wait()


async def jobs_sequential(system: Any, count: int) -> float:
    """`job()` round trips/s to one worker, one at a time."""
    start = time.perf_counter()
    for index in range(count):
        async with system.job("w1", payload=index) as handle:
            pass
        assert handle.response == index
    return count / (time.perf_counter() - start)


async def jobs_in_flight(system: Any, workers: list[str], count: int) -> float:
    """Jobs/s with `IN_FLIGHT` jobs outstanding, spread over `workers`."""
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for lane in range(IN_FLIGHT):

            async def run(lane: int = lane) -> None:
                for index in range(count // IN_FLIGHT):
                    async with system.job(workers[lane % len(workers)], payload=index):
                        pass

            nursery.start_soon(run)
    return (count // IN_FLIGHT * IN_FLIGHT) / (time.perf_counter() - start)


# --- driver ----------------------------------------------------------------------------------


@asynccontextmanager
async def helper_processes(*roles: list[str]) -> AsyncIterator[list[int]]:
    """Start this file with each argument list, wait until each is ready; end them at exit.

    Yields the helpers' process ids.
    """
    processes: list[trio.Process] = []
    try:
        for role in roles:
            process = await trio.lowlevel.open_process(
                [sys.executable, __file__, *role], stdout=subprocess.PIPE
            )
            processes.append(process)
        for process in processes:
            assert process.stdout is not None
            output = b""
            with trio.fail_after(START_BOUND):
                while b"ready" not in output:
                    chunk = await process.stdout.receive_some()
                    if not chunk:
                        raise RuntimeError(f"helper {process.args!r} ended before it was ready")
                    output += chunk
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        with trio.CancelScope(shield=True):
            for process in processes:
                with trio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                if process.stdout is not None:
                    await process.stdout.aclose()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_pid(url: str) -> int | None:
    """The Redis server's process id (INFO server), if it runs on this machine."""
    async with open_redis_connection(url) as connection:
        info = parse_info(await connection.execute("INFO", "server"))
    pid = int(info.get("process_id", "0"))
    return pid if pid and cpu_seconds(pid) is not None else None


class CpuMeter:
    """CPU time used by this process, the helper processes and Redis during a measurement.

    A wall-clock rate depends on whatever else the machine runs; CPU time per round trip shows
    where the work is, and what it would cost on a machine of one's own.
    """

    def __init__(self, helpers: list[int], redis: int | None) -> None:
        self.helpers = helpers
        self.redis = redis

    def snapshot(self) -> dict[str, float]:
        """CPU seconds used so far, per role."""
        used = {"this_process": time.process_time()}
        helpers = [cpu_seconds(pid) for pid in self.helpers]
        if all(seconds is not None for seconds in helpers):
            used["other_processes"] = sum(seconds for seconds in helpers if seconds is not None)
        redis = cpu_seconds(self.redis) if self.redis is not None else None
        if redis is not None:
            used["redis"] = redis
        return used


async def median(
    bench: Callable[[], Awaitable[float]], runs: int, count: int, meter: CpuMeter
) -> tuple[float, dict[str, float]]:
    """The median rate of `runs` runs of `bench` (after one warm-up run), and the CPU
    microseconds per round trip each role used over those runs (`count` round trips each)."""
    await bench()
    before = meter.snapshot()
    rates = [await bench() for _ in range(runs)]
    after = meter.snapshot()
    cpu = {
        role: round((after[role] - before[role]) / (runs * count) * 1e6, 1)
        for role in before
        if role in after
    }
    cpu["total"] = round(sum(cpu.values()), 1)
    return statistics.median(rates), cpu


def compare(ours: float, baseline: float) -> dict[str, float]:
    """Both rates and their ratio (ours / baseline)."""
    return {
        "ours": round(ours, 1),
        "baseline": round(baseline, 1),
        "ratio": round(ours / baseline, 3),
    }


async def measure(url: str, *, quick: bool) -> dict[str, Any]:
    """Run every benchmark against the Redis server at `url`; return the report."""
    runs = 3 if quick else 5
    sequential = 500 if quick else 2_000
    concurrent = 5_000 if quick else 10_000
    tag = secrets.token_hex(4)
    report: dict[str, Any] = {"python": sys.version.split()[0], "runs": runs}

    redis = await redis_pid(url)
    cpu: dict[str, dict[str, float]] = {}

    raw_streams = [f"bench:{tag}:requests:{index}" for index in (1, 2)]
    async with (
        helper_processes(
            *(["--role", "raw-echo", "--redis-url", url, s] for s in raw_streams)
        ) as pids,
        open_raw_client(url) as client,
    ):
        meter = CpuMeter(pids, redis)
        raw_one, cpu["raw_sequential"] = await median(
            lambda: raw_sequential(client, raw_streams[0], sequential), runs, sequential, meter
        )
        raw_many, cpu["raw_100_in_flight"] = await median(
            lambda: raw_in_flight(client, raw_streams, concurrent), runs, concurrent, meter
        )

    namespace = f"bench-{tag}"
    workers = ["w1", "w2"]
    roles = (["--role", "worker", "--redis-url", url, namespace, name] for name in workers)
    transport = RedisTransport(url, namespace=namespace)
    async with (
        helper_processes(*roles) as pids,
        open_actor_system("requester", transport=transport) as system,
    ):
        meter = CpuMeter(pids, redis)
        ours_one, cpu["jobs_sequential"] = await median(
            lambda: jobs_sequential(system, sequential), runs, sequential, meter
        )
        ours_many, cpu["jobs_100_in_flight"] = await median(
            lambda: jobs_in_flight(system, workers, concurrent), runs, concurrent, meter
        )

    report["job_round_trips_per_s"] = {**compare(ours_one, raw_one), "goal_ratio": 0.7}
    report["jobs_100_in_flight_per_s"] = {**compare(ours_many, raw_many), "goal_ours": 20_000}
    # this_process: the requester (or raw client); other_processes: the workers (or echoes).
    report["cpu_microseconds_per_round_trip"] = cpu
    report["cpus"] = os.cpu_count()
    report["load_average_1min"] = round(os.getloadavg()[0], 2)
    return report


async def run_benchmarks(url: str | None, *, quick: bool) -> dict[str, Any]:
    """Measure on `url`, or on a redis-server started (and stopped) for the run."""
    if url is not None:
        return await measure(url, quick=quick)
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as directory:
        server = await start_redis_server(Path(directory))
        try:
            return await measure(server.url, quick=quick)
        finally:
            await server.stop()


def main() -> None:
    """Run the benchmarks (or, with `--role`, one helper process) and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--redis-url", help="an existing server (default: start one)")
    parser.add_argument(
        "--profile", help="write cProfile files (requester.prof, w1.prof, w2.prof) to this folder"
    )
    parser.add_argument("--role", choices=["raw-echo", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("role_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.role == "raw-echo":
        trio.run(raw_echo, args.redis_url, *args.role_args)
        return
    if args.role == "worker":
        profile_directory = os.environ.get(PROFILE_ENV)
        if profile_directory:
            profiler = cProfile.Profile()
            try:
                profiler.runcall(trio.run, actor_worker, args.redis_url, *args.role_args)
            finally:
                profiler.dump_stats(Path(profile_directory) / f"{args.role_args[-1]}.prof")
        else:
            trio.run(actor_worker, args.redis_url, *args.role_args)
        return
    if args.profile:
        # The worker processes inherit the variable and write their own profiles there too.
        directory = Path(args.profile)
        directory.mkdir(parents=True, exist_ok=True)
        os.environ[PROFILE_ENV] = str(directory)
        profiler = cProfile.Profile()
        report = profiler.runcall(
            trio.run, lambda: run_benchmarks(args.redis_url, quick=args.quick)
        )
        profiler.dump_stats(directory / "requester.prof")
    else:
        report = trio.run(lambda: run_benchmarks(args.redis_url, quick=args.quick))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
