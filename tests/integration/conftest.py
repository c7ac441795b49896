"""Fixtures of the multi-process tests (see `process_pool`)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from transports.testing import RedisCluster, RedisServer

from process_pool import Helpers


@pytest.fixture
async def helpers(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Helpers]:
    """Helper processes on `redis_server`; every one still running is killed at the end."""
    async with trio.open_nursery() as nursery:
        pool = Helpers(
            redis_server.url, f"it-{secrets.token_hex(4)}", tmp_path, nursery, server=redis_server
        )
        try:
            yield pool
        finally:
            await _kill_all(pool)
            nursery.cancel_scope.cancel()


@pytest.fixture
async def cluster_helpers(redis_cluster: RedisCluster, tmp_path: Path) -> AsyncIterator[Helpers]:
    """Helper processes on a three-node Redis Cluster; the same clean-up as `helpers`."""
    async with trio.open_nursery() as nursery:
        pool = Helpers(redis_cluster.url, f"it-{secrets.token_hex(4)}", tmp_path, nursery)
        try:
            yield pool
        finally:
            await _kill_all(pool)
            nursery.cancel_scope.cancel()


async def _kill_all(pool: Helpers) -> None:
    """Kill every helper process still running and reap them all (bounded, shielded)."""
    with trio.CancelScope(shield=True), trio.move_on_after(10):
        for helper in pool.processes:
            if helper.process.returncode is None:
                helper.kill()
            await helper.process.wait()
