"""The link conformance suite (`transports.testing`) over every transport."""

from __future__ import annotations

import trio

from transports import MemoryTransport, RedisTransport
from transports.testing import RedisCluster, check_transport


async def test_memory_transport_conforms() -> None:
    """MemoryTransport in its default mode passes the link conformance suite."""
    with trio.fail_after(10):
        transport = MemoryTransport(max_packet_size=1024)
        await check_transport(transport.connect, at_least_once=False, max_packet_size=1024)


async def test_strict_memory_transport_conforms() -> None:
    """MemoryTransport in strict mode passes the link conformance suite."""
    with trio.fail_after(10):
        transport = MemoryTransport(strict=True, max_packet_size=1024)
        await check_transport(transport.connect, at_least_once=False, max_packet_size=1024)


async def test_redis_transport_conforms(redis_transport: RedisTransport) -> None:
    """RedisTransport passes the link conformance suite, redelivery and size limit included."""
    transport = redis_transport
    with trio.fail_after(20):
        await check_transport(
            transport.connect, at_least_once=True, max_packet_size=transport.max_packet_size
        )


async def test_redis_transport_conforms_on_a_cluster(redis_cluster: RedisCluster) -> None:
    """RedisTransport passes the suite on a three-node Redis Cluster, following MOVED."""
    with trio.fail_after(30):
        # Slots 2127, 9084 and 13861: one namespace on each node.
        for namespace in ("two", "one", "three"):
            transport = RedisTransport(redis_cluster.url, namespace=namespace, heartbeat=0.2)
            await check_transport(
                transport.connect, at_least_once=True, max_packet_size=transport.max_packet_size
            )
