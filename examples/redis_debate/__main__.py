"""Launcher of the Redis debate example: ``python -m examples.redis_debate [options]``.

Starts one process per debater, runs the moderator here, then stops the debater processes.
Options: `--redis-url`, `--namespace`, `--heartbeat`, `--topic`.
"""

from __future__ import annotations

import sys
from functools import partial

import trio

from .._launcher import (
    AgentCommand,
    launch_with_agents,
    redis_options,
    require_redis,
)
from .debater import ROLES, parse_args
from .moderator import run_debate


async def launch(argv: list[str]) -> None:
    """Start the debater processes, run the debate, stop them."""
    options = parse_args(__doc__ or "", argv)
    await require_redis(options)
    agents = [
        AgentCommand(
            role, "examples.redis_debate.debater", (*redis_options(options), "--role", role)
        )
        for role in ROLES
    ]
    await launch_with_agents(agents, partial(run_debate, options))


def main() -> None:
    """Run the whole example (Ctrl-C stops every process)."""
    trio.run(partial(launch, sys.argv[1:]))


if __name__ == "__main__":
    main()
