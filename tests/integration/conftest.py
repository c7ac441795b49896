"""Fixtures of the multi-process tests (see `process_pool`)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from transports.testing import RedisServer

from process_pool import Helpers


@pytest.fixture
async def helpers(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Helpers]:
    """Helper processes on `redis_server`; every one still running is killed at the end."""
    async with trio.open_nursery() as nursery:
        pool = Helpers(redis_server, f"it-{secrets.token_hex(4)}", tmp_path, nursery)
        try:
            yield pool
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                for helper in pool.processes:
                    if helper.process.returncode is None:
                        helper.kill()
                    await helper.process.wait()
            nursery.cancel_scope.cancel()
