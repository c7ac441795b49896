"""The WebSocket link: job round trips beside raw trio-websocket echo round trips, same run.

Prints one JSON object:

- `raw_echo_round_trips_per_s`: a trio-websocket client sends a binary message of about a job
  envelope's size and waits for the server's echo, over loopback, one at a time;
- `job_round_trips_per_s`: sequential `system.job()` round trips from one actor system to a
  worker actor exported by another, across `open_websocket_link`/`serve_websocket_link` over
  loopback (request, worker, answer, both codecs, the gate's filters); the goal is a ratio of
  at least 0.5 to the raw figure;
- `jobs_100_in_flight_per_s`: 100 jobs kept in flight across the same link.

By default the servers (the raw echo and the linked worker system) run in a second process,
started by running this file again with ``--role server``; with ``--in-process`` both ends run
in this process (one Trio loop), so both figures pay for both ends on one core. Each figure is
the best of a few runs after a warm-up.

Usage: ``python bench/websocket_bench.py [--quick] [--in-process]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio_websocket

from actors import Actor, ActorSystem, JobRequest, job, open_actor_system
from transports import open_websocket_link, serve_websocket_link

PAYLOAD_SIZE = 180
"""Bytes of a raw echo message: about what one job request envelope takes on the wire."""


class Echo(Actor):
    """Answers each job with its payload."""

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        return request.payload


async def _best(runs: int, measure: Callable[[], Awaitable[float]]) -> float:
    await measure()  # warm-up
    return max([await measure() for _ in range(runs)])


async def _echo(request: trio_websocket.WebSocketRequest) -> None:
    connection = await request.accept()
    try:
        while True:
            await connection.send_message(await connection.get_message())
    except trio_websocket.ConnectionClosed:
        pass


async def raw_echo(count: int, runs: int, port: int | None = None) -> float:
    """Round trips per second of a bare trio-websocket echo (served here unless `port`)."""
    async with trio.open_nursery() as nursery:
        if port is None:
            server = await nursery.start(
                trio_websocket.serve_websocket, _echo, "127.0.0.1", 0, None
            )
            port = server.port
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/") as client:
            message = bytes(PAYLOAD_SIZE)

            async def measure() -> float:
                start = time.perf_counter()
                for _ in range(count):
                    await client.send_message(message)
                    await client.get_message()
                return count / (time.perf_counter() - start)

            result = await _best(runs, measure)
        nursery.cancel_scope.cancel()
    return result


async def _serve_link(
    system: ActorSystem, port: int, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
) -> None:
    await serve_websocket_link(
        system, host="127.0.0.1", port=port, exports=["echo"], task_status=task_status
    )


async def linked_jobs(
    count: int, in_flight_count: int, runs: int, port: int | None = None
) -> tuple[float, float]:
    """(sequential job round trips/s, jobs/s with 100 in flight) across a link (to a worker
    system served here unless `port`)."""
    async with (
        open_actor_system("bench-back") as back,
        open_actor_system("bench-front") as front,
        trio.open_nursery() as nursery,
    ):
        if port is None:
            await back.spawn(Echo("echo"))
            server = await nursery.start(_serve_link, back, 0)
            port = server.port
        async with open_websocket_link(front, f"ws://127.0.0.1:{port}/", imports=["echo"]):
            await front.registry.wait_ready("echo")

            async def sequential() -> float:
                start = time.perf_counter()
                for index in range(count):
                    async with front.job("echo", payload=index):
                        pass
                return count / (time.perf_counter() - start)

            async def in_flight() -> float:
                return await _in_flight(front, in_flight_count)

            one = await _best(runs, sequential)
            many = await _best(runs, in_flight)
        nursery.cancel_scope.cancel()
    return one, many


async def _in_flight(system: ActorSystem, total: int, width: int = 100) -> float:
    share = total // width

    async def lane() -> None:
        for index in range(share):
            async with system.job("echo", payload=index):
                pass

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(width):
            nursery.start_soon(lane)
    return share * width / (time.perf_counter() - start)


async def serve_role() -> None:
    """The server process: a raw echo and a linked worker system; prints their ports."""
    async with open_actor_system("bench-back") as back, trio.open_nursery() as nursery:
        await back.spawn(Echo("echo"))
        echo = await nursery.start(trio_websocket.serve_websocket, _echo, "127.0.0.1", 0, None)
        link = await nursery.start(_serve_link, back, 0)
        print(f"ready {echo.port} {link.port}", flush=True)


async def main(quick: bool, in_process: bool) -> dict[str, Any]:
    """Run every measurement; return the figures."""
    count = 300 if quick else 3000
    runs = 1 if quick else 3
    in_flight = 2000 if quick else 20000
    if in_process:
        raw = await raw_echo(count, runs)
        one, many = await linked_jobs(count, in_flight, runs)
    else:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [sys.executable, __file__, "--role", "server"],
                    stdout=subprocess.PIPE,
                    check=False,
                )
            )
            assert process.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(100)
                assert chunk, "the server process exited"
                line += chunk
            _, echo_port, link_port = line.decode().split()
            raw = await raw_echo(count, runs, int(echo_port))
            one, many = await linked_jobs(count, in_flight, runs, int(link_port))
            process.terminate()
    return {
        "mode": "in-process" if in_process else "two processes",
        "raw_echo_round_trips_per_s": round(raw),
        "job_round_trips_per_s": round(one),
        "job_to_raw_ratio": round(one / raw, 3),
        "jobs_100_in_flight_per_s": round(many),
        "goal_ratio": 0.5,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer round trips, one run")
    parser.add_argument("--in-process", action="store_true", help="both ends in this process")
    parser.add_argument("--role", choices=["server"], help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if arguments.role == "server":
        trio.run(serve_role)
    else:
        print(json.dumps(trio.run(main, arguments.quick, arguments.in_process), indent=2))
