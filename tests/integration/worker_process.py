"""A worker process for the integration tests: one actor system with worker actors on Redis.

Usage::

    python tests/integration/worker_process.py --redis-url URL --namespace NS \\
        --system SYSTEM --actor NAME [--actor NAME ...] --ledger FILE [--heartbeat 0.3] \\
        [--retry-for SECONDS]

It joins a `RedisTransport`, spawns one `Worker` per `--actor`, prints `ready SYSTEM` once
they are, and runs until SIGTERM or SIGINT. Then it ends its system, prints `stats {json}` (its
system's counters), checks that nothing is left (tasks, sockets) and exits 0. Every job event
goes to the shared ledger (see `process_support`).

A restarted worker passes `--retry-for`: while its predecessor's heartbeat has not yet expired
the system name and the actor names are still held, and it tries again until they are free.
A name a live actor holds is refused: it prints `name-taken NAME OWNER` and exits
`NAME_TAKEN_EXIT`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import attrs
import trio

from actors import Actor, ActorSystem, JobRequest, NameTaken, job, open_actor_system
from transports import RedisTransport, SystemNameTaken

from process_support import (
    NAME_TAKEN_EXIT,
    READY,
    Ledger,
    exit_on_leaks,
    first_signal,
    leaks,
    open_sockets,
    stop_signals,
)


class Worker(Actor):
    """Runs the test jobs; records each job's start and end in the ledger."""

    def __init__(self, name: str, ledger: Ledger) -> None:
        super().__init__(name)
        self.ledger = ledger

    @job
    async def echo(self, request: JobRequest[Any]) -> Any:
        """Answer the payload at once."""
        self.ledger.record("start", self.name, request.job_id)
        self.ledger.record("done", self.name, request.job_id)
        return request.payload

    @job(name="sleep")
    async def sleep(self, request: JobRequest[float]) -> dict[str, str]:
        """Sleep `payload` seconds (a negative payload: until cancelled), then answer."""
        self.ledger.record("start", self.name, request.job_id)
        try:
            await trio.sleep(request.payload if request.payload >= 0 else float("inf"))
        except trio.Cancelled:
            self.ledger.record("cancelled", self.name, request.job_id)
            raise
        self.ledger.record("done", self.name, request.job_id)
        return {"actor": self.name, "system": self.ledger.system}


@attrs.frozen
class Options:
    """The command line."""

    redis_url: str
    namespace: str
    system: str
    actors: tuple[str, ...]
    ledger: Path
    heartbeat: float
    retry_for: float


def parse_options(argv: list[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--system", required=True)
    parser.add_argument("--actor", action="append", required=True, dest="actors")
    parser.add_argument("--ledger", required=True, type=Path)
    parser.add_argument("--heartbeat", type=float, default=0.3)
    parser.add_argument("--retry-for", type=float, default=0.0)
    args = parser.parse_args(argv)
    return Options(
        args.redis_url,
        args.namespace,
        args.system,
        tuple(args.actors),
        args.ledger,
        args.heartbeat,
        args.retry_for,
    )


async def spawn_workers(system: ActorSystem, options: Options, ledger: Ledger) -> None:
    """Spawn every worker; retry a name held by a dead predecessor for `retry_for` seconds."""
    deadline = trio.current_time() + options.retry_for
    for name in options.actors:
        while True:
            try:
                await system.spawn(Worker(name, ledger))
                break
            except NameTaken:
                if trio.current_time() >= deadline:
                    raise
                # The predecessor's node is buried within two heartbeats; poll well inside that.
                await trio.sleep(options.heartbeat / 4)


async def serve(options: Options) -> int:
    """Run the worker system until asked to stop; return the exit status."""
    sockets_before = open_sockets()
    transport = RedisTransport(
        options.redis_url, namespace=options.namespace, heartbeat=options.heartbeat
    )
    ledger = Ledger(options.ledger, options.system)
    deadline = trio.current_time() + options.retry_for
    try:
        with stop_signals() as signals:
            while True:
                try:
                    async with open_actor_system(options.system, transport=transport) as system:
                        try:
                            await spawn_workers(system, options, ledger)
                        except NameTaken as exc:
                            print(f"name-taken {exc.name} {exc.owner}", flush=True)
                            system.end("name taken")
                            await system.wait()
                            return NAME_TAKEN_EXIT
                        print(f"{READY} {options.system}", flush=True)
                        await first_signal(signals)
                        system.end("stopped", grace=1.0)
                        await system.wait()
                        statistics = system.statistics()
                    break
                except SystemNameTaken:
                    # The predecessor's heartbeat has not expired yet.
                    if trio.current_time() >= deadline:
                        raise
                    await trio.sleep(options.heartbeat / 4)
    finally:
        ledger.close()
    print("stats " + json.dumps(attrs.asdict(statistics)), flush=True)
    exit_on_leaks(leaks(sockets_before))
    return 0


def main() -> None:
    """Parse the command line, serve, exit with the status."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    raise SystemExit(trio.run(serve, parse_options()))


if __name__ == "__main__":
    main()
