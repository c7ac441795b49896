"""Tests for the Trio Redis connection (`transports._redis_connection`) on a real redis-server."""

from __future__ import annotations

import shutil
import socket
import ssl
from pathlib import Path

import pytest
import trio
import trio.testing
from redis import exceptions as redis_exceptions
from redis.crc import key_slot

from transports import BrokerError, Delivery, RedisTransport
from transports._redis_connection import open_redis_client, open_redis_connection
from transports.testing import RedisCluster, RedisServer, RedisServerFactory
from transports.testing._server import CLUSTER_SLOTS


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


async def _make_certificates(directory: Path) -> None:
    """A test CA and a certificate for 127.0.0.1 signed by it, made with the openssl tool."""
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for command in (
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt"
        " -days 2 -extfile san.ext",
    ):
        await trio.run_process(
            ["openssl", *command.split()], cwd=directory, capture_stdout=True, capture_stderr=True
        )


async def test_tls_connection_through_rediss_url(
    tmp_path: Path, redis_server_factory: RedisServerFactory
) -> None:
    """A rediss:// URL connects through trio.SSLStream, verifying the server's certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl tool is needed to make test certificates")
    await _make_certificates(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        tls_port = probe.getsockname()[1]
    tls_args = [
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(tmp_path / "server.crt"),
        "--tls-key-file", str(tmp_path / "server.key"),
        "--tls-ca-cert-file", str(tmp_path / "ca.crt"),
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    try:
        await redis_server_factory(extra_args=tls_args)
    except RuntimeError:
        pytest.skip("this redis-server was built without TLS")
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with trio.fail_after(10):
        url = f"rediss://127.0.0.1:{tls_port}"
        async with open_redis_connection(url, ssl_context=context) as connection:
            assert await connection.execute("PING") == b"PONG"
        transport = RedisTransport(url, namespace="tls", heartbeat=0.2, ssl_context=context)
        async with transport.connect("a") as a, transport.connect("b") as b:
            await b.claim("secure")
            await a.send("secure", b"over tls")
            delivery = await b.receive()
            assert isinstance(delivery, Delivery) and delivery.packet == b"over tls"
        with pytest.raises(BrokerError, match=r"^redis refused 'TLS handshake': .*verify failed"):
            async with open_redis_connection(url):  # the system's CAs do not know ours
                pass


async def test_client_follows_moved_and_ask_on_a_cluster(redis_cluster: RedisCluster) -> None:
    """MOVED switches the client to the slot's node; ASK (a slot being migrated) runs the
    command once on the importing node, after ASKING."""
    key = "{migrating}key"
    slot = key_slot(key.encode())
    nodes = redis_cluster.servers
    owner = nodes[slot // -(-CLUSTER_SLOTS // len(nodes))]  # start_redis_cluster's layout
    target = next(s for s in nodes if s is not owner)
    with trio.fail_after(10):
        first = next(s for s in nodes if s is not owner)
        async with open_redis_client(first.url) as client:
            assert await client.execute("SET", "{migrating}other", "x") == b"OK"
            assert client.address.port == owner.port  # followed MOVED
            async with (
                open_redis_connection(owner.url) as source,
                open_redis_connection(target.url) as destination,
            ):
                source_id = await source.execute("CLUSTER", "MYID")
                target_id = await destination.execute("CLUSTER", "MYID")
                assert isinstance(source_id, bytes) and isinstance(target_id, bytes)
                await destination.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
                await source.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
                # The key is not on the source, so the source answers ASK.
                assert await client.execute("SET", key, "moved-in") == b"OK"
                assert client.address.port == owner.port  # ASK does not move the client
                replies = await destination.pipeline([("ASKING",), ("GET", key)])
                assert replies == [b"OK", b"moved-in"]

