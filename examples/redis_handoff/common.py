"""What the processes of the Redis handoff example share: the frames and the options.

The frames are defined here, in a module every process imports under the same name
(`examples.redis_handoff.common`): the codec finds a frame's type by its module and class name
among the classes its own process has defined, and never imports a module a peer named.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Final

import msgspec

from .._launcher import add_redis_options

NAMESPACE: Final = "redis-handoff"
"""The default namespace: the example's processes see each other only within one."""
BRIDGE: Final = "voice"
"""The bridge that carries the conversation."""


class UserText(msgspec.Struct, frozen=True):
    """A line the user said (typed in or scripted)."""

    text: str


class AgentText(msgspec.Struct, frozen=True):
    """A line an agent answered, and the process it answered from."""

    agent: str
    text: str
    pid: int = msgspec.field(default_factory=os.getpid)


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every process of the example takes (`--redis-url`, `--interactive`, ...)."""
    parser = argparse.ArgumentParser(description=description)
    add_redis_options(parser, NAMESPACE)
    parser.add_argument(
        "--interactive", action="store_true", help="read the user's lines from stdin"
    )
    return parser.parse_args(argv)
