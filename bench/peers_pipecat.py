"""pipecat-subagents figures for the side-by-side (run in .venv-peers, see `make bench-peers`).

This file runs under asyncio inside its own virtual environment: it drives the peer, not our
runtime. It prints JSON: `task()` round trips per second from a requester to one worker with
3 agents on the bus, and `task_group()` fan-outs to 10 workers per second (12 agents).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from loguru import logger
from pipecat_subagents.agents import BaseAgent
from pipecat_subagents.runner import AgentRunner

logger.remove()
logger.add(sys.stderr, level="ERROR")


class Worker(BaseAgent):
    async def on_task_request(self, message) -> None:  # type: ignore[no-untyped-def]
        await super().on_task_request(message)
        await self.send_task_response(message.task_id, message.payload)


class Requester(BaseAgent):
    pass


async def measure(workers: int, extra: int, rounds: int, group: bool) -> float:
    """Run `rounds` tasks (or task groups over every worker); return the rate per second."""
    runner = AgentRunner(handle_sigint=False)
    names = [f"w{i}" for i in range(workers)]
    requester = Requester("requester", bus=runner.bus)
    for name in names:
        await runner.add_agent(Worker(name, bus=runner.bus))
    for i in range(extra):
        await runner.add_agent(Worker(f"idle{i}", bus=runner.bus))
    await runner.add_agent(requester)
    result: list[float] = []

    @runner.event_handler("on_ready")
    async def on_ready(_runner) -> None:  # type: ignore[no-untyped-def]
        # The peer's registry has no way to wait for a name, so poll it.
        while not all(name in runner.registry for name in [*names, "requester"]):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        start = time.perf_counter()
        for i in range(rounds):
            if group:
                async with requester.task_group(*names, payload={"i": i}) as tg:
                    pass
                assert len(tg.responses) == workers
            else:
                async with requester.task(names[0], payload={"i": i}) as t:
                    pass
                assert t.response == {"i": i}
        result.append(rounds / (time.perf_counter() - start))
        await runner.end(reason="benchmark done")

    await runner.run()
    return result[0]


def main() -> None:
    """Measure and print the JSON report."""
    runs = 5
    single = [asyncio.run(measure(1, 1, 2000, group=False)) for _ in range(runs)]
    groups = [asyncio.run(measure(10, 0, 300, group=True)) for _ in range(runs)]
    print(
        json.dumps(
            {
                "peer": "pipecat-subagents",
                "task_round_trips_per_s": statistics.median(single),
                "task_agents": 3,
                "task_group_10_per_s": statistics.median(groups),
                "task_group_agents": 11,
            }
        )
    )


if __name__ == "__main__":
    main()
