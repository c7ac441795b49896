"""The moderator's process: ``python -m examples.redis_debate.moderator`` (debaters running).

It joins the debaters' actor systems through Redis and runs one debate: a `job_group` to every
debater, whose sentences stream back as they are written, then a synthesis.
"""

from __future__ import annotations

import argparse
from functools import partial

import trio

from actors import open_actor_system

from .._launcher import redis_transport
from ..parallel_debate import Moderator
from .debater import ROLES, parse_args


async def run_debate(options: argparse.Namespace) -> Moderator:
    """Run one debate with the debater processes; return the moderator (transcript, synthesis)."""
    async with open_actor_system("moderator-process", transport=redis_transport(options)) as system:
        moderator = await system.spawn(Moderator("moderator", ROLES))
        # The job group waits (within its timeout) until every debater, in its own process,
        # is ready.
        await moderator.run_debate(options.topic)
        system.end("debate over")
        await system.wait()
    return moderator


def main() -> None:
    """Run the debate (the debaters must be running)."""
    options = parse_args(__doc__ or "")
    trio.run(partial(run_debate, options))


if __name__ == "__main__":
    main()
