"""The pytest plugin of the transports (entry point `pytest11`): Redis fixtures.

- `redis_server_factory`: an async callable that starts a fresh `redis-server` (see
  `transports.testing.start_redis_server`) in a directory of the test's `tmp_path`; every server
  it started is stopped at teardown.
- `redis_server`: one such server; options come from the `redis_server` marker, for example
  `@pytest.mark.redis_server(appendonly=True)`.
- `redis_transport`: a `RedisTransport` on `redis_server`, in a namespace of its own, with a
  0.2 s heartbeat so that crash detection stays quick.
- `redis_cluster`: a three-node Redis Cluster (see `transports.testing.start_redis_cluster`).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from .._redis import RedisTransport
from ._server import (
    RedisCluster,
    RedisServer,
    RedisServerFactory,
    start_redis_cluster,
    start_redis_server,
)

TEST_HEARTBEAT = 0.2
"""The heartbeat period of `redis_transport`, in seconds."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the `redis_server` marker."""
    config.addinivalue_line(
        "markers",
        "redis_server(appendonly=False, extra_args=()): options of the redis_server fixture",
    )


@pytest.fixture
async def redis_server_factory(tmp_path: Path) -> AsyncIterator[RedisServerFactory]:
    """Start Redis servers for the test; all are stopped at teardown."""
    servers: list[RedisServer] = []

    async def start(*, appendonly: bool = False, extra_args: Sequence[str] = ()) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = await start_redis_server(directory, appendonly=appendonly, extra_args=extra_args)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
async def redis_server(
    request: pytest.FixtureRequest, redis_server_factory: RedisServerFactory
) -> RedisServer:
    """A real redis-server on a free loopback port (options: the `redis_server` marker)."""
    marker = request.node.get_closest_marker("redis_server")
    options = dict(marker.kwargs) if marker is not None else {}
    return await redis_server_factory(**options)


@pytest.fixture
def redis_transport(redis_server: RedisServer) -> RedisTransport:
    """A RedisTransport on `redis_server`, in its own namespace, heartbeat 0.2 s."""
    return RedisTransport(
        redis_server.url, namespace=f"test-{secrets.token_hex(4)}", heartbeat=TEST_HEARTBEAT
    )


@pytest.fixture
async def redis_cluster(tmp_path: Path) -> AsyncIterator[RedisCluster]:
    """A three-node Redis Cluster on loopback (masters only), stopped at teardown."""
    directory = tmp_path / "redis-cluster"
    directory.mkdir()
    cluster = await start_redis_cluster(directory)
    try:
        yield cluster
    finally:
        await cluster.stop()
