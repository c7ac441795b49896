"""RedisTransport: actor systems in several processes and machines that share a Redis server.

Theory of operation
-------------------
Each connected system is a *node*: node id = system name + ":" + a random incarnation, so a
restarted process never inherits its predecessor's pending entries by accident. The key layout
and the atomic steps (Lua scripts) are described in `transports._redis_scripts`; every key
carries the hash tag `{namespace}`, so all multi-key commands stay in one cluster slot (one
namespace lives on one cluster shard; use several namespaces to spread load).

Rule 1 (liveness). A node keeps a heartbeat key whose TTL is 1.5 heartbeat periods and
refreshes it every half period; the same script buries every node whose key expired: it frees
its names and appends a `lost` notice to every other node's box. A node that dies is thus
reported within two heartbeat periods (expiry after at most 1.5, noticed within another 0.5).
A clean close buries the node at once with `crashed=0`. After a reconnect, a node sweeps
only over a connection older than two TTLs: after a Redis outage every heartbeat key may have
expired, and live peers need time to reconnect and refresh theirs (so right after an outage,
a death may take up to three TTLs to be reported). `PeerLost.reason` says why: "closed"
(clean goodbye), "system ended by <exception type>" (its block raised: told at once,
`crashed=True`), "heartbeat expired", or "redis restarted without persistence (...)" (Rule 5).

Rule 2 (delivery). Addressed packets go to the stream `inbox:<name>`, only if a node holds the
name (else `UnknownRecipient`). Each node reads, with one blocking XREADGROUP, its own box and
the inboxes of the names it holds, as consumer `<node>` of the group `trio-actors`: no node
reads another's traffic, and an actor that is slow to handle leaves its entries in Redis.
Acknowledgements are buffered and written in batches, XACK and XDEL in one script call per
stream, with the next command or after 5 ms (so an ack costs no round trip of its own);
acknowledged entries are deleted, so streams stay bounded, and an inbox its holder lets go
empty is deleted. An ack not yet written when the node dies only means one more delivery.
`send(..., ack=delivery)` appends the answer and acknowledges the settled entry in one script:
both happen or neither does. The window (`window` unacknowledged deliveries per name) is kept
by leaving a full name's stream out of the read; control packets go to the holder's box
instead of the name's inbox, so they never wait behind a full window.

Rule 3 (broadcast) uses the boxes, i.e. streams, not pub/sub: pub/sub is at-most-once, so a
node reconnecting after a dropped connection or a Redis restart (with AOF) would miss registry
events and peer notices. Box entries are acknowledged like inbox entries; a box is bounded by
XADD MAXLEN ~ (only a node that stopped reading fills it). Reading boxes and inboxes in the same
XREADGROUP lets a peer's `lost` notice be delivered after what that peer sent before leaving:
entries of one read are merged by stream id, and a notice read in a batch that was cut short
by COUNT waits for the next read.

Rule 4 (reclaim). Pending entries are taken from a consumer only when its node's heartbeat has
expired, checked and moved in the claim script (never on idle time alone, so a live slow
consumer is never robbed). Moved entries are appended again, marked, and arrive at the name's
new holder as `Delivery(reclaimed=True)`.

Rule 5 (failures). Commands are retried on a new connection (backoff up to half a heartbeat
period) until Redis acknowledges them: a send is never dropped, though it may be stored twice
(at-least-once; the receiver drops duplicates by message id). After a reconnect the reader
reads its own pending entries again and recreates groups on NOGROUP. If the heartbeat finds
this node unregistered and Redis has a new run id, Redis restarted without its data: every
known peer is reported `PeerLost(crashed=True, reason=...)` and the node registers again and
claims its names again. Production Redis needs `appendonly yes` (and `appendfsync always` for
no loss at all on a crash of Redis itself).

Entries that cannot be read (fields missing) are counted, copied to `dead-letter` with their
origin, and acknowledged.
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import trio

from ._abc import Delivery, PeerLost, Transport, TransportLink
from ._nursery import open_service_nursery
from ._redis_connection import open_redis_client
from ._redis_link import LinkSettings, RedisLink
from ._redis_reader import EntryReader
from ._resp import RedisAddress

logger = logging.getLogger(__name__)

_GOODBYE_GRACE: Final = 2.0


class RedisTransport(Transport):
    """Connects actor systems that share a Redis server (or a Redis Cluster).

    Args:
        url: `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS.
        namespace: prefix (and cluster hash tag) of every key; systems see each other only
            within one namespace.
        heartbeat: seconds between heartbeats; a dead node is reported within two periods.
            A node whose Trio loop is blocked (or whose Redis connection is down) for longer
            than one period may be reported dead too, so keep blocking work off the loop.
        max_packet_size: the largest packet in bytes; larger ones raise `PacketTooLarge`.
        ssl_context: for `rediss://` (default: the system's trusted certificates).
        window: most unacknowledged ordinary deliveries handed over per name; past it, the
            name's entries wait in Redis.
        read_count: entries read per stream in one XREADGROUP.
        max_reclaim: most pending entries taken over from dead consumers per claim.

    Raises:
        ValueError: if a number is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "trio-actors",
        heartbeat: float = 1.0,
        max_packet_size: int = 16 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
        window: int = 1000,
        read_count: int = 256,
        max_reclaim: int = 10_000,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be > 0, got {heartbeat!r}")
        if max_packet_size <= 0:
            raise ValueError(f"max_packet_size must be > 0, got {max_packet_size!r}")
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window!r}")
        if read_count <= 0:
            raise ValueError(f"read_count must be > 0, got {read_count!r}")
        if any(character in namespace for character in "{}"):
            raise ValueError(f"namespace must not contain braces, got {namespace!r}")
        self.address = RedisAddress.from_url(url)
        """The server (host, port, credentials, db) read from `url`."""
        self.namespace = namespace
        """Systems see each other only within one namespace."""
        self.heartbeat = heartbeat
        """Seconds between heartbeats (refreshed every half period, TTL 1.5 periods)."""
        self.max_packet_size = max_packet_size
        """The largest packet in bytes."""
        self.ssl_context = ssl_context
        """The TLS context for `rediss://` (None: the system's defaults)."""
        self.window = window
        """Most unacknowledged ordinary deliveries handed over per name."""
        self.read_count = read_count
        """Entries read per stream in one XREADGROUP."""
        self.max_reclaim = max_reclaim
        """Most pending entries taken over from dead consumers per claim."""
        self.prefix = "{" + namespace + "}:"
        """The prefix of every key: the namespace as a cluster hash tag."""

    def __repr__(self) -> str:
        return (
            f"<RedisTransport [{self.address.host}:{self.address.port}/{self.address.db}, "
            f"namespace={self.namespace!r}, heartbeat={self.heartbeat}]>"
        )

    @property
    def ttl_ms(self) -> int:
        """The heartbeat key's TTL: 1.5 heartbeat periods, in milliseconds."""
        return max(1, round(self.heartbeat * 1500))

    @asynccontextmanager
    async def connect(self, system: str) -> AsyncIterator[TransportLink]:
        """Register `system` as a node and open its link; leaving says goodbye to the peers.

        Raises:
            SystemNameTaken: if a live node already uses `system`.
            BrokerError: if Redis refused the login or a script.

        Cancellation: both halves; the goodbye runs shielded for at most 2 seconds.
        """
        node = f"{system}:{secrets.token_hex(4)}"
        backoff = min(1.0, self.heartbeat / 2)
        async with (
            open_redis_client(
                self.address,
                name=f"trio-actors:{node}",
                ssl_context=self.ssl_context,
                max_backoff=backoff,
            ) as client,
            open_redis_client(
                self.address,
                name=f"trio-actors:{node}:reader",
                ssl_context=self.ssl_context,
                max_backoff=backoff,
            ) as reader_client,
        ):
            queue_in, queue_out = trio.open_memory_channel[Delivery | PeerLost](self.read_count)
            settings = LinkSettings(
                self.prefix,
                self.heartbeat,
                self.ttl_ms,
                self.max_packet_size,
                self.read_count,
                self.max_reclaim,
            )
            link = RedisLink(
                system,
                node,
                settings,
                client,
                reader_client,
                queue_in,
                queue_out,
                window=self.window,
            )
            link._reader = EntryReader(
                reader_client,
                client,
                self.prefix,
                node,
                self.read_count,
                block_ms=max(10, round(self.heartbeat * 1000)),
            )
            await link._register()
            crashed, reason = False, "closed"
            try:
                async with open_service_nursery() as nursery:
                    await nursery.start(link._run_background)
                    try:
                        yield link
                    except trio.Cancelled:
                        raise
                    except BaseException as exc:
                        crashed, reason = True, f"system ended by {type(exc).__name__}"
                        raise
                    finally:
                        nursery.cancel_scope.cancel(reason="redis link closing")
            finally:
                link._closed = True
                queue_in.close()
                if not link._halted:
                    with trio.CancelScope(shield=True), trio.move_on_after(_GOODBYE_GRACE):
                        if client.usable:
                            await link.goodbye(crashed=crashed, reason=reason)
                        else:
                            # Cancelled from outside: the link's client can no longer
                            # connect, so the goodbye gets a short-lived client of its own.
                            async with open_redis_client(
                                self.address,
                                name=f"trio-actors:{node}:goodbye",
                                ssl_context=self.ssl_context,
                                max_backoff=backoff,
                            ) as spare:
                                await link.goodbye(crashed=crashed, reason=reason, client=spare)
