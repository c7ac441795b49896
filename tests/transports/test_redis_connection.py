"""Tests for the Trio Redis connection (`transports._redis_connection`) on a real redis-server."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from redis import exceptions as redis_exceptions

from transports import BrokerError
from transports._redis_connection import open_redis_client, open_redis_connection
from transports.testing import RedisServer


async def test_pipeline_returns_replies_in_order(redis_server: RedisServer) -> None:
    """Many commands in one pipeline come back in order, error replies as instances."""
    with trio.fail_after(10):
        async with open_redis_connection(redis_server.url) as connection:
            commands = [("INCR", "counter") for _ in range(1000)]
            replies = await connection.pipeline([*commands, ("LPUSH", "counter", "x")])
            assert replies[:1000] == list(range(1, 1001))
            assert isinstance(replies[-1], redis_exceptions.ResponseError)
            assert await connection.execute("GET", "counter") == b"1000"


async def test_concurrent_callers_share_one_connection(redis_server: RedisServer) -> None:
    """Callers in many tasks each get their own reply."""
    with trio.fail_after(10):
        async with open_redis_connection(redis_server.url) as connection:
            results: dict[int, object] = {}

            async def echo(index: int) -> None:
                results[index] = await connection.execute("ECHO", str(index))

            async with trio.open_nursery() as nursery:
                for index in range(200):
                    nursery.start_soon(echo, index)
            assert results == {index: str(index).encode() for index in range(200)}


async def test_error_reply_raises_from_execute(redis_server: RedisServer) -> None:
    """execute raises the redis-py exception of an error reply; the connection goes on."""
    with trio.fail_after(10):
        async with open_redis_connection(redis_server.url) as connection:
            with pytest.raises(redis_exceptions.ResponseError, match=r"^ERR unknown command"):
                await connection.execute("NOSUCHCOMMAND")
            assert await connection.execute("PING") == b"PONG"


async def test_acl_user_and_db_from_the_url(redis_server: RedisServer) -> None:
    """The URL's ACL user and password log in, and its /db is selected."""
    with trio.fail_after(10):
        async with open_redis_connection(redis_server.url) as admin:
            await admin.execute("ACL", "SETUSER", "alice", "on", ">s3cret", "~*", "+@all")
        url = redis_server.url.replace("redis://", "redis://alice:s3cret@") + "/2"
        async with open_redis_connection(url) as connection:
            assert await connection.execute("ACL", "WHOAMI") == b"alice"
            info = await connection.execute("CLIENT", "INFO")
            assert isinstance(info, bytes) and b" db=2 " in info
        bad = redis_server.url.replace("redis://", "redis://alice:wrong@")
        with pytest.raises(BrokerError, match=r"^redis refused 'AUTH': "):
            async with open_redis_connection(bad):
                pass


async def test_cancelled_blocking_read_closes_the_connection(redis_server: RedisServer) -> None:
    """Cancelling a blocking read closes its connection, so no later reply is swallowed."""
    with trio.fail_after(10):
        async with open_redis_connection(redis_server.url) as connection:
            with trio.move_on_after(0.2):
                await connection.execute_blocking("BLPOP", "jobs", 0)
            assert connection.closed
            with pytest.raises(trio.ClosedResourceError):
                await connection.execute("PING")
        async with open_redis_connection(redis_server.url) as other:
            await other.execute("LPUSH", "jobs", "one")
            # The abandoned BLPOP did not take the entry.
            assert await other.execute("LLEN", "jobs") == 1


async def test_cancelled_plain_call_keeps_the_connection_in_step(
    redis_server: RedisServer,
) -> None:
    """A cancelled ordinary call leaves the connection usable, replies matched correctly."""
    with trio.fail_after(10):
        async with open_redis_connection(redis_server.url) as connection:
            with trio.CancelScope() as scope:
                scope.cancel()
                await connection.execute("SET", "k", "cancelled-before")
            with trio.move_on_after(0.05):
                # The server holds this reply for 0.2 s, so the caller is cancelled first.
                await connection.execute("BLPOP", "empty", "0.2")
            assert not connection.closed
            assert await connection.execute("ECHO", "next") == b"next"


async def test_client_reconnects_after_kill_and_restart(redis_server: RedisServer) -> None:
    """A RedisClient retries on a new connection after the server is killed and restarted."""
    if not redis_server.killable:
        pytest.skip("a shared redis server (REDIS_URL) is never killed by tests")
    with trio.fail_after(10):
        async with open_redis_client(redis_server.url, max_backoff=0.05) as client:
            assert await client.execute("PING") == b"PONG"
            first_run = client.run_id
            redis_server.kill()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(redis_server.restart)
                assert await client.execute("PING") == b"PONG"
            assert client.run_id != first_run
            assert client.connects == 2


async def test_connection_breaks_when_server_dies(redis_server: RedisServer) -> None:
    """Without retry, a call on a connection whose server died raises BrokenResourceError."""
    if not redis_server.killable:
        pytest.skip("a shared redis server (REDIS_URL) is never killed by tests")
    with trio.fail_after(10):
        async with open_redis_client(redis_server.url) as client:
            await client.execute("PING")
            redis_server.kill()
            with pytest.raises(trio.BrokenResourceError):
                await client.execute("PING", retry=False)
            await redis_server.restart()
