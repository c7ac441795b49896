"""Our job figures beside pipecat-subagents' (see `make bench-peers`).

Reads the JSON that `bench/peers_pipecat.py` printed (in its own virtual environment), measures
the same scenarios here with the same number of actors, and prints both with the ratios.
Usage: ``python bench/compare_peers.py PEERS.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import trio
from run import Worker  # bench/ is on sys.path: it is this script's directory

from actors import Actor, open_actor_system


async def single(rounds: int) -> float:
    """`job()` round trips/s with 3 actors alive (requester actor, worker, one idle)."""
    async with open_actor_system("peers") as system:
        await system.spawn(Worker("w0"))
        await system.spawn(Worker("idle0"))
        requester = await system.spawn(Actor("requester"))
        start = time.perf_counter()
        for i in range(rounds):
            async with requester.job("w0", payload={"i": i}) as j:
                pass
            assert j.response == {"i": i}
        return rounds / (time.perf_counter() - start)


async def group(rounds: int) -> float:
    """`job_group()` to 10 workers per second, 11 actors alive."""
    async with open_actor_system("peers") as system:
        names = [f"w{i}" for i in range(10)]
        for name in names:
            await system.spawn(Worker(name))
        requester = await system.spawn(Actor("requester"))
        start = time.perf_counter()
        for i in range(rounds):
            async with requester.job_group(*names, payload={"i": i}) as g:
                pass
            assert len(g.responses) == 10
        return rounds / (time.perf_counter() - start)


def main() -> None:
    """Print our figures beside the peer's, with the ratios."""
    peers = json.loads(Path(sys.argv[1]).read_text())
    ours_single = statistics.median(trio.run(single, 20_000) for _ in range(5))
    ours_group = statistics.median(trio.run(group, 3_000) for _ in range(5))
    report = {
        "job_round_trips_per_s": {
            "ours": round(ours_single, 1),
            "pipecat_subagents": round(peers["task_round_trips_per_s"], 1),
            "ratio": round(ours_single / peers["task_round_trips_per_s"], 2),
            "goal": 5.0,
        },
        "job_group_10_per_s": {
            "ours": round(ours_group, 1),
            "pipecat_subagents": round(peers["task_group_10_per_s"], 1),
            "ratio": round(ours_group / peers["task_group_10_per_s"], 2),
            "goal": 3.0,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
