"""The remote assistant example: two processes on 127.0.0.1, joined by the WebSocket link.

The server (``python -m examples.remote_assistant.assistant``) serves one assistant per
client behind a bearer token; the front end (``python -m examples.remote_assistant.main``)
sends typed-in lines over its "voice" bridge and prints the streamed answers.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(token: str) -> dict[str, str]:
    return {**os.environ, "ASSISTANT_TOKEN": token}


@asynccontextmanager
async def _assistant_server(port: int) -> AsyncIterator[str]:
    """Run the assistant server until it says where it listens; yield the URL."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                [sys.executable, "-m", "examples.remote_assistant.assistant", "--port", str(port)],
                cwd=ROOT,
                env=_environment(TOKEN),
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        assert process.stdout is not None
        output = b""
        with trio.fail_after(20):
            while b"listening on " not in output:
                chunk = await process.stdout.receive_some(200)
                assert chunk, "the assistant server exited before it listened"
                output += chunk
        try:
            yield f"ws://127.0.0.1:{port}/ws"
        finally:
            process.terminate()


async def _front_end(url: str, token: str, text: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "examples.remote_assistant.main", "--remote-url", url],
            cwd=ROOT,
            env=_environment(token),
            stdin=text.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_the_front_end_talks_to_the_remote_assistant() -> None:
    """Two front ends in turn each get their own session and the streamed answers; a wrong
    token is refused with 401."""
    async with _assistant_server(_free_port()) as url:
        for _ in range(2):
            result = await _front_end(url, TOKEN, "hello there\nwhat time is it\n")
            assert result.returncode == 0, result.stderr.decode()
            lines = result.stdout.decode().splitlines()
            assert lines == [
                "you       > hello there",
                "assistant > Hello! I am the remote assistant. How can I help?",
                "you       > what time is it",
                "assistant > I cannot see a clock from here, but it is a fine time to ask.",
            ]
        refused = await _front_end(url, "wrong", "hello\n")
        assert refused.returncode == 1
        assert "401" in refused.stderr.decode()
