"""Helper processes of the multi-process tests, on the fixture's Redis server (or cluster).

`Helpers` (the `helpers` fixture of `conftest.py`) starts worker and requester processes (the
scripts next to this file) on the `redis_server` fixture's server, in a namespace of the test's
own, with a shared ledger; it reads their output line by line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from actors import SystemStatistics
from transports import RedisTransport
from transports._redis_connection import open_redis_connection
from transports.testing import RedisServer

from process_support import READY, LedgerEntry, read_ledger

HERE: Final = Path(__file__).resolve().parent
HEARTBEAT: Final = 0.3
"""The heartbeat period of every system in these tests, in seconds."""
START_BOUND: Final = 30.0
"""Seconds a helper process may take to start (interpreter and imports, on a loaded machine)."""


class HelperExited(RuntimeError):
    """A helper process ended while a test waited for a line of its output."""


@attrs.define(eq=False)
class HelperProcess:
    """One helper process: its output so far, line by line, and ways to end it."""

    name: str
    """What the test calls it (its system name)."""
    process: trio.Process
    stderr_path: Path
    lines: list[str] = attrs.field(factory=list)
    """Every line it printed so far."""
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _eof: bool = False

    def __repr__(self) -> str:
        return f"<HelperProcess [{self.name}, pid {self.process.pid}]>"

    @property
    def stderr(self) -> str:
        """What it wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    async def read_output(self) -> None:
        """Collect its stdout into `lines` until it closes (run by the fixture)."""
        assert self.process.stdout is not None
        buffer = b""
        try:
            async for chunk in self.process.stdout:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                self.lines.extend(line.decode() for line in complete)
                self._wake()
        finally:
            self._eof = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_line(self, prefix: str) -> str:
        """The first line starting with `prefix`, waiting for it if need be.

        Raises:
            HelperExited: if the process closed its output first.
        """
        while True:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            if self._eof:
                raise HelperExited(
                    f"{self.name} ended (status {self.process.returncode}) without printing "
                    f"{prefix!r}; stdout: {self.lines}; stderr:\n{self.stderr}"
                )
            await self._changed.wait()

    def lines_starting(self, prefix: str) -> list[str]:
        """The lines printed so far that start with `prefix`, without it."""
        return [line[len(prefix) :].strip() for line in self.lines if line.startswith(prefix)]

    def kill(self) -> None:
        """SIGKILL: the process dies at once, without a goodbye."""
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> int:
        """Ask for a clean end (SIGTERM) and return the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return await self.wait()

    async def wait(self) -> int:
        """Wait for the process to exit (and its output to be read); return its status."""
        status = await self.process.wait()
        while not self._eof:
            await self._changed.wait()
        return status

    def statistics(self) -> SystemStatistics:
        """The counters its system printed when it ended."""
        (line,) = self.lines_starting("stats ")
        return SystemStatistics(**json.loads(line))


@attrs.define(eq=False)
class Helpers:
    """Starts helper processes for one test; see the module docstring."""

    url: str
    """The Redis server (or the first node of the Redis Cluster) every process uses."""
    namespace: str
    """The test's own namespace."""
    directory: Path
    """Where ledgers and stderr files go."""
    _nursery: trio.Nursery
    processes: list[HelperProcess] = attrs.field(factory=list)
    """Every process started, in order."""
    _server: RedisServer | None = None

    @property
    def server(self) -> RedisServer:
        """The Redis server, to kill or restart it (not for a cluster)."""
        assert self._server is not None, "these helpers run on a Redis Cluster"
        return self._server

    @property
    def ledger_path(self) -> Path:
        """The ledger shared by the worker processes (unless a test passes its own)."""
        return self.directory / "ledger.txt"

    def ledger(self, path: Path | None = None) -> list[LedgerEntry]:
        """The ledger's entries so far."""
        return read_ledger(path or self.ledger_path)

    def transport(self) -> RedisTransport:
        """A transport for an actor system in the test's own process."""
        return RedisTransport(self.url, namespace=self.namespace, heartbeat=HEARTBEAT)

    async def start(
        self, name: str, script: str, *args: str, ready: bool = True, heartbeat: float = HEARTBEAT
    ) -> HelperProcess:
        """Start `python <script> --redis-url ... --namespace ... --system name <args>`.

        Waits for its `ready` line unless `ready` is False.
        """
        stderr_path = self.directory / f"{name}-{len(self.processes)}.stderr"
        with stderr_path.open("wb") as stderr:
            command = [sys.executable, str(HERE / script), "--redis-url", self.url]
            command += ["--namespace", self.namespace, "--system", name]
            command += ["--heartbeat", str(heartbeat), *args]
            process = await trio.lowlevel.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        helper = HelperProcess(name, process, stderr_path)
        self.processes.append(helper)
        self._nursery.start_soon(helper.read_output)
        if ready:
            with trio.fail_after(START_BOUND):
                await helper.wait_for_line(READY)
        return helper

    async def start_worker(
        self,
        name: str,
        *actors: str,
        ledger: Path | None = None,
        retry_for: float = 0.0,
        ready: bool = True,
        heartbeat: float = HEARTBEAT,
    ) -> HelperProcess:
        """Start a worker process (`worker_process.py`) holding `actors`."""
        args = [arg for actor in actors for arg in ("--actor", actor)]
        args += ["--ledger", str(ledger or self.ledger_path), "--retry-for", str(retry_for)]
        return await self.start(name, "worker_process.py", *args, ready=ready, heartbeat=heartbeat)

    async def start_workers(self, *specs: tuple[str, str]) -> list[HelperProcess]:
        """Start several one-actor worker processes at once: `(system, actor)` each."""
        started: dict[int, HelperProcess] = {}

        async def start_one(index: int, system: str, actor: str) -> None:
            started[index] = await self.start_worker(system, actor)

        async with trio.open_nursery() as nursery:
            for index, (system, actor) in enumerate(specs):
                nursery.start_soon(start_one, index, system, actor)
        return [started[index] for index in range(len(specs))]

    async def start_requester(
        self, name: str, *targets: str, jobs: int = 1, job: str | None = None, payload: Any = None
    ) -> HelperProcess:
        """Start a requester process (`requester_process.py`) sending to `targets`."""
        args = [arg for target in targets for arg in ("--target", target)]
        args += ["--jobs", str(jobs), "--payload", json.dumps(payload)]
        if job is not None:
            args += ["--job", job]
        return await self.start(name, "requester_process.py", *args)

    async def redis_clients(self) -> list[str]:
        """The names of the transport's connections Redis has open now (CLIENT LIST)."""
        async with open_redis_connection(self.url) as connection:
            listing = await connection.execute("CLIENT", "LIST")
        assert isinstance(listing, bytes)
        names = []
        for line in listing.decode().splitlines():
            fields = dict(field.split("=", 1) for field in line.split(" ") if "=" in field)
            if fields.get("name", "").startswith("trio-actors:"):
                names.append(fields["name"])
        return names
