"""Helpers of the client's tests: the worker server process and a shared message type.

`Note` lives here so that the server process and the tests give it one wire name
(``client.client_support:Note``: both import it from the ``client`` package under ``tests/``).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec

from actors.client import Client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOKEN = "client-test-token"
HEADERS = (("Authorization", f"Bearer {TOKEN}"),)


class Note(msgspec.Struct, frozen=True):
    """A user message a client sends to a worker."""

    text: str


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    """The environment of a child process: the repository and the ``client`` package importable."""
    paths = [str(ROOT), str(HERE.parent), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


class ServerProcess:
    """`worker_server.py` in a process of its own, started and read until it listens."""

    def __init__(self, port: int = 0, *, token: str | None = TOKEN) -> None:
        command = [sys.executable, str(HERE / "worker_server.py"), str(port)]
        if token is not None:
            command += ["--token", token]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, env=environment(), cwd=str(ROOT)
        )
        self.port = self._read_port(timeout=20.0)

    @property
    def url(self) -> str:
        """The server's WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def _read_port(self, timeout: float) -> int:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.kill()
                raise RuntimeError(f"the worker server did not listen within {timeout}s")
        line = self.process.stdout.readline().decode()
        if not line.startswith("ready "):
            self.kill()
            raise RuntimeError(f"the worker server said {line!r}")
        return int(line.split()[1])

    def kill(self) -> None:
        """Kill it at once (SIGKILL: no goodbye), and reap it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


async def cancellations(client: Client, worker: str) -> dict[str, str | None]:
    """The cancellations that reached `worker`'s handlers (job id -> reason)."""
    async with client.job(worker, name="cancellations") as report:
        pass
    result: dict[str, str | None] = report.response
    return result


async def remote_cancellation(client: Client, worker: str, job_id: str) -> str | None:
    """The reason `worker`'s handler of `job_id` was cancelled with (None: its deadline).

    Waits up to 5 s for the cancellation to be recorded, and fails if it never is.
    """
    with anyio.fail_after(5):
        while True:
            seen = await cancellations(client, worker)
            if job_id in seen:
                return seen[job_id]
            await anyio.sleep(0.02)
