"""Launcher of the Redis handoff example: ``python -m examples.redis_handoff [options]``.

Starts the greeter and support processes, runs the main process's conversation here, then
stops both agent processes. Options (`--redis-url`, `--namespace`, `--heartbeat`,
`--interactive`) are those of every process of the example.
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
from .common import parse_args
from .main import run_conversation


async def launch(argv: list[str]) -> None:
    """Start the agent processes, hold the conversation, stop them."""
    options = parse_args(__doc__ or "", argv)
    await require_redis(options)
    argv_out = tuple(redis_options(options))
    agents = [
        AgentCommand(name, f"examples.redis_handoff.{name}", argv_out)
        for name in ("greeter", "support")
    ]
    await launch_with_agents(agents, partial(run_conversation, options))


def main() -> None:
    """Run the whole example (Ctrl-C stops every process)."""
    trio.run(partial(launch, sys.argv[1:]))


if __name__ == "__main__":
    main()
