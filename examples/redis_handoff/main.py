"""The main process of the Redis handoff example: it owns the "voice" bridge.

It joins the actor systems of the greeter and support processes through Redis, waits until
both agents are ready, and carries the conversation: each user line (scripted, or typed in with
`--interactive`) goes into the bridge as a `UserText` frame, and every `AgentText` frame the
active agent answers is printed, whichever process that agent lives in.

Run it with ``python -m examples.redis_handoff.main`` once the agents run (or let
``python -m examples.redis_handoff`` start everything).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Final

import trio

from actors import Bridge, open_actor_system

from .._launcher import redis_transport
from .common import BRIDGE, AgentText, UserText, parse_args

SCRIPT: Final = (
    ("hi there", 1),
    ("I need help with my router", 2),
    ("the router", 1),
    ("thanks!", 2),
    ("bye", 1),
)
"""The scripted user lines, each with how many agent lines answer it."""
WAIT_FOR_AGENTS: Final = 30.0
"""Seconds to wait for the greeter and support processes to be ready."""
REPLY_BOUND: Final = 10.0
"""Seconds to wait for one answer before giving up on the conversation."""
QUIET: Final = 2.0
"""Interactive mode, after the end of input: seconds without an answer that end the wait."""


def show(reply: AgentText) -> None:
    """Print one agent line."""
    print(f"{reply.agent:<8} > {reply.text}  (process {reply.pid})", flush=True)


async def scripted(bridge: Bridge, script: tuple[tuple[str, int], ...]) -> list[AgentText]:
    """Say each scripted line and wait for its answers; return every answer in order."""
    transcript: list[AgentText] = []
    for line, answers in script:
        print(f"user     > {line}", flush=True)
        await bridge.send(UserText(line))
        for _ in range(answers):
            with trio.fail_after(REPLY_BOUND):
                reply = await bridge.receive()
            show(reply)
            transcript.append(reply)
    return transcript


async def interactive(bridge: Bridge) -> list[AgentText]:
    """Send every line typed on stdin until end of input; print answers as they come.

    After the end of input, answers are awaited until none has come for `QUIET` seconds.
    """
    transcript: list[AgentText] = []
    answered = trio.Event()

    async def print_answers() -> None:
        nonlocal answered
        async for reply in bridge:
            show(reply)
            transcript.append(reply)
            answered.set()
            answered = trio.Event()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(print_answers)
        while True:
            # Blocking stdin read in a thread; abandoned (not waited for) if cancelled.
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                break
            if line.strip():
                await bridge.send(UserText(line.strip()))
        while True:
            with trio.move_on_after(QUIET) as quiet:
                await answered.wait()
            if quiet.cancelled_caught:
                break
        nursery.cancel_scope.cancel()
    return transcript


async def run_conversation(
    options: argparse.Namespace, script: tuple[tuple[str, int], ...] = SCRIPT
) -> list[AgentText]:
    """Hold the conversation through the "voice" bridge; return every agent answer."""
    async with open_actor_system("main-process", transport=redis_transport(options)) as system:
        with trio.fail_after(WAIT_FOR_AGENTS):
            # They live in other processes: the registry learns of them through Redis.
            await system.registry.wait_ready("greeter")
            await system.registry.wait_ready("support")
        async with system.open_bridge(BRIDGE) as bridge:
            if options.interactive:
                transcript = await interactive(bridge)
            else:
                transcript = await scripted(bridge, script)
        system.end("conversation over")
        await system.wait()
    return transcript


def main() -> None:
    """Run the conversation (the agents must be running)."""
    options = parse_args(__doc__ or "")
    trio.run(partial(run_conversation, options))


if __name__ == "__main__":
    main()
