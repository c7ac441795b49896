"""A requester process for the integration tests: one actor system that dispatches jobs.

Usage::

    python tests/integration/requester_process.py --redis-url URL --namespace NS \\
        --system SYSTEM --target NAME [--target NAME ...] [--jobs N] [--job NAME] \\
        [--payload JSON] [--heartbeat 0.3]

Two modes:

- `--jobs N` (default): runs N jobs to every target, all at once, and prints one
  `outcome {json}` line per job (job id, target, status, response) and then `stats {json}`;
  exits 0 after checking nothing is left (tasks, sockets).
- `--jobs 0`: opens one job per target (`--job`, `--payload`), prints `job TARGET JOB_ID` for
  each once it is sent, and waits forever inside the jobs: the test kills it.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import attrs
import trio

from actors import ActorSystem, JobError, open_actor_system
from transports import RedisTransport

from process_support import READY, exit_on_leaks, leaks, open_sockets

JOB_BOUND = 30.0
"""Seconds any one job may take (the tests bound their whole run more tightly)."""


@attrs.frozen
class Options:
    """The command line."""

    redis_url: str
    namespace: str
    system: str
    targets: tuple[str, ...]
    jobs: int
    job: str | None
    payload: Any
    heartbeat: float


def parse_options(argv: list[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--system", required=True)
    parser.add_argument("--target", action="append", required=True, dest="targets")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--job", default=None)
    parser.add_argument("--payload", default="null", type=json.loads)
    parser.add_argument("--heartbeat", type=float, default=0.3)
    args = parser.parse_args(argv)
    return Options(
        args.redis_url,
        args.namespace,
        args.system,
        tuple(args.targets),
        args.jobs,
        args.job,
        args.payload,
        args.heartbeat,
    )


async def run_one(system: ActorSystem, options: Options, target: str, index: int) -> None:
    """Run one job to `target` and print its outcome (a failed job is an outcome too)."""
    job_id = ""
    payload = {"index": index} if options.payload is None else options.payload
    try:
        async with system.job(
            target, name=options.job, payload=payload, timeout=JOB_BOUND
        ) as handle:
            job_id = handle.job_id
        status, response = handle.status, handle.response
    except JobError as exc:
        job_id, status, response = exc.job_id, exc.status, None
    assert status is not None
    outcome = {"job_id": job_id, "target": target, "status": status.name, "response": response}
    print("outcome " + json.dumps(outcome), flush=True)


async def hold_jobs(system: ActorSystem, options: Options) -> None:
    """Open one job per target, say which, and wait inside them until killed."""

    async def hold(target: str) -> None:
        async with system.job(target, name=options.job, payload=options.payload) as handle:
            print(f"job {target} {handle.job_id}", flush=True)
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for target in options.targets:
            nursery.start_soon(hold, target)


async def run(options: Options) -> int:
    """Run the requester; return the exit status."""
    sockets_before = open_sockets()
    transport = RedisTransport(
        options.redis_url, namespace=options.namespace, heartbeat=options.heartbeat
    )
    async with open_actor_system(options.system, transport=transport) as system:
        print(f"{READY} {options.system}", flush=True)
        if options.jobs == 0:
            await hold_jobs(system, options)
        async with trio.open_nursery() as nursery:
            for target in options.targets:
                for index in range(options.jobs):
                    nursery.start_soon(run_one, system, options, target, index)
        statistics = system.statistics()
    print("stats " + json.dumps(attrs.asdict(statistics)), flush=True)
    # Every job answered: the ledger of jobs in flight must be empty.
    if statistics.jobs_requested:
        print(f"{statistics.jobs_requested} job(s) still open", flush=True)
        return 1
    exit_on_leaks(leaks(sockets_before))
    return 0


def main() -> None:
    """Parse the command line, run, exit with the status."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    raise SystemExit(trio.run(run, parse_options()))


if __name__ == "__main__":
    main()
