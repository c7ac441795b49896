"""The multi-process examples run against a real Redis server and do what they say.

Each launcher (`python -m examples.<name>`) runs from the repository root against the
`redis_server` fixture's server, starts its agent processes, and must stop them all and exit 0;
its output shows which process answered what.
"""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import trio

from transports.testing import RedisServer

REPOSITORY = Path(__file__).resolve().parents[2]
RUN_BOUND = 60.0
"""Seconds a whole example may take (four interpreters start on a loaded two-core machine)."""


def example_command(package: str, server: RedisServer, *args: str) -> list[str]:
    """`python -m examples.<package>` on `server`, in a namespace of its own."""
    command = [sys.executable, "-m", f"examples.{package}", "--redis-url", server.url]
    command += ["--namespace", f"example-{secrets.token_hex(4)}", "--heartbeat", "0.3"]
    return [*command, *args]


async def run_example(package: str, server: RedisServer, *args: str) -> list[str]:
    """Run `python -m examples.<package>` on `server`; return its output lines (it exits 0)."""
    with trio.fail_after(RUN_BOUND):
        result = await trio.run_process(
            example_command(package, server, *args),
            cwd=REPOSITORY,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    return output.splitlines()


def started_processes(lines: list[str]) -> dict[str, int]:
    """Agent name -> process id, from the launcher's `started NAME in process PID` lines."""
    found = (re.fullmatch(r"started (\w+) in process (\d+)", line) for line in lines)
    return {match[1]: int(match[2]) for match in found if match}


async def test_redis_handoff_follows_the_agent_across_processes(
    redis_server: RedisServer,
) -> None:
    """The conversation passes from the greeter's process to support's and back; each answer
    comes from the process of the agent holding the conversation, and all processes end."""
    lines = await run_example("redis_handoff", redis_server)
    processes = started_processes(lines)
    assert set(processes) == {"greeter", "support"}
    answers = [
        match.groups()
        for line in lines
        if (match := re.fullmatch(r"(\w+) +> (\S+).*\(process (\d+)\)", line))
    ]
    assert [(agent, first_word) for agent, first_word, _ in answers] == [
        ("greeter", "Hello!"),
        ("greeter", "Let"),
        ("support", "Support"),
        ("support", "Try"),
        ("support", "Glad"),
        ("greeter", "Welcome"),
        ("greeter", "Hello!"),
    ]
    assert all(int(pid) == processes[agent] for agent, _, pid in answers)
    assert "support  > Try turning 'the router' off and on.  " in "\n".join(lines)
    assert lines[-1] == "all processes ended"


async def test_redis_handoff_carries_typed_in_lines(redis_server: RedisServer) -> None:
    """With `--interactive`, the lines typed on stdin go through the bridge."""
    with trio.fail_after(RUN_BOUND):
        result = await trio.run_process(
            example_command("redis_handoff", redis_server, "--interactive"),
            cwd=REPOSITORY,
            stdin=b"hello\nplease help\n",
            capture_stdout=True,
            stderr=subprocess.STDOUT,
            check=False,
        )
    output = result.stdout.decode()
    assert result.returncode == 0, output
    assert "greeter  > Hello! You said: 'hello'" in output
    assert "support  > Support here. About 'please help':" in output


async def test_redis_debate_streams_from_every_debater_process(
    redis_server: RedisServer,
) -> None:
    """Each debater runs in its own process; all their sentences stream back to the moderator,
    which synthesizes the three arguments, and every process ends."""
    lines = await run_example("redis_debate", redis_server, "--topic", "testing")
    processes = started_processes(lines)
    assert set(processes) == {"advocate", "critic", "analyst"}
    assert len(set(processes.values())) == 3
    streamed = [line.split(":")[0].strip() for line in lines if line.startswith("  ")]
    assert sorted(streamed) == sorted(["advocate", "critic", "analyst"] * 3)
    synthesis = lines[lines.index("moderator: synthesis") + 1 :]
    assert [line.split(":")[0] for line in synthesis[:3]] == ["ADVOCATE", "CRITIC", "ANALYST"]
    assert "testing lets small teams" in synthesis[0]
    assert lines[-1] == "all processes ended"


async def test_launcher_says_when_redis_is_unreachable() -> None:
    """A wrong `--redis-url` ends the launcher at once with a message, not a silent wait."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with trio.fail_after(RUN_BOUND):
        result = await trio.run_process(
            [
                sys.executable,
                "-m",
                "examples.redis_handoff",
                "--redis-url",
                f"redis://127.0.0.1:{port}",
            ],
            cwd=REPOSITORY,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 1
    assert f"no Redis server answers at redis://127.0.0.1:{port}" in result.stderr.decode()
