"""One debater in a process of its own: ``python -m examples.redis_debate.debater --role ROLE``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from typing import Final

import trio

from .._launcher import add_redis_options, run_agent
from ..parallel_debate import ARGUMENTS, Debater

NAMESPACE: Final = "redis-debate"
"""The default namespace of the example's processes."""
ROLES: Final = tuple(ARGUMENTS)
"""The debaters, in the order the moderator lists them."""


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of the example's processes (`--redis-url`, ...; `--role` for a debater)."""
    parser = argparse.ArgumentParser(description=description)
    add_redis_options(parser, NAMESPACE)
    parser.add_argument("--role", choices=ROLES, help="debater: which side it argues")
    parser.add_argument("--topic", default="AI regulation", help="moderator: what to debate")
    return parser.parse_args(argv)


def main() -> None:
    """Run one debater until SIGTERM or Ctrl-C."""
    options = parse_args(__doc__ or "")
    if options.role is None:
        raise SystemExit("--role is required: one of " + ", ".join(ROLES))
    trio.run(partial(run_agent, Debater(options.role), options))


if __name__ == "__main__":
    main()
