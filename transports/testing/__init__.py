"""Test helpers for transports, like `trio.testing`: a conformance suite and a Redis server.

The pytest fixtures (`redis_server`, `redis_server_factory`, `redis_transport`,
`redis_cluster`) live in the
plugin module `transports.testing._plugin`, registered as a `pytest11` entry point.
"""

from ._conformance import LinkFactory as LinkFactory
from ._conformance import check_addressed_delivery as check_addressed_delivery
from ._conformance import check_broadcast as check_broadcast
from ._conformance import check_close_releases_names as check_close_releases_names
from ._conformance import check_order as check_order
from ._conformance import check_oversized_packet as check_oversized_packet
from ._conformance import check_peer_lost as check_peer_lost
from ._conformance import check_redelivery as check_redelivery
from ._conformance import check_transport as check_transport
from ._conformance import check_unique_names as check_unique_names
from ._server import RedisCluster as RedisCluster
from ._server import RedisServer as RedisServer
from ._server import RedisServerFactory as RedisServerFactory
from ._server import RedisServerUnavailable as RedisServerUnavailable
from ._server import find_redis_server as find_redis_server
from ._server import start_redis_cluster as start_redis_cluster
from ._server import start_redis_server as start_redis_server

__all__ = [
    "LinkFactory",
    "RedisCluster",
    "RedisServer",
    "RedisServerFactory",
    "RedisServerUnavailable",
    "check_addressed_delivery",
    "check_broadcast",
    "check_close_releases_names",
    "check_order",
    "check_oversized_packet",
    "check_peer_lost",
    "check_redelivery",
    "check_transport",
    "check_unique_names",
    "find_redis_server",
    "start_redis_cluster",
    "start_redis_server",
]
