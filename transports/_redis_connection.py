"""A Trio-native Redis connection: one task owns the socket, callers pipeline through it.

Theory of operation
-------------------
Rule 1: only the connection's owner task (`RedisConnection._run`) reads or writes the socket.
Callers queue a `_Request` (the packed bytes of one or more commands and how many replies they
expect) and wait for it to be answered. The owner takes every request queued at that moment,
writes them in one `send_all` (pipelining across callers as well as within one request), then
reads the replies in order and hands each request its own.

Rule 2: a caller's cancellation never puts the connection out of step. The owner still reads
the replies of an abandoned request and throws them away; a request abandoned before it was
written is skipped. The one exception is a *blocking* request (`XREADGROUP ... BLOCK`): its
reply may take as long as the BLOCK, and an abandoned read could also move entries into the
pending list unseen, so cancelling it closes the whole connection instead.

Rule 3: when the socket breaks, every waiting request fails with `trio.BrokenResourceError`
(cause set) and the connection stays closed. Reconnecting is the `RedisClient`'s job: it opens
a fresh connection with backoff, follows `MOVED` redirections of Redis Cluster, and retries
what it was asked to retry.
"""

from __future__ import annotations

import logging
import math
import random
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

import attrs
import trio
from redis import exceptions as redis_exceptions

from ._exceptions import BrokerError
from ._nursery import open_service_nursery
from ._resp import Command, RedisAddress, ReplyParser, Signal, pack_commands, parse_info

logger = logging.getLogger(__name__)

_READ_SIZE: Final = 65536

# Error replies meaning the command did not run and may simply be sent again a little later.
_NOT_RUN: Final = (
    redis_exceptions.BusyLoadingError,
    redis_exceptions.TryAgainError,
    redis_exceptions.ClusterDownError,
)


@attrs.define(eq=False)
class _Request:
    payload: bytes
    count: int
    replies: list[object] = attrs.field(factory=list)
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None
    abandoned: bool = False


@attrs.define(eq=False)
class RedisConnection:
    """One open connection to a Redis server; see the module docstring for its rules."""

    address: RedisAddress
    """The server it talks to."""
    _stream: trio.abc.Stream
    # Requests not yet written; the owner parks on _queued while it is empty. (A deque and a
    # parking lot cost a third of a memory channel, and this is on every command's path.)
    _queue: deque[_Request] = attrs.field(factory=deque)
    _queued: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _closed: bool = False
    _broken: BaseException | None = None
    _finished: trio.Event = attrs.field(factory=trio.Event)
    opened_at: float = math.inf
    """`trio.current_time()` when the login completed (inf before)."""
    run_id: str = ""
    """The server's run id, read at connect: a new one means Redis restarted ('' if unknown,
    when INFO is refused to the ACL user)."""

    def __repr__(self) -> str:
        state = "CLOSED" if self._closed else "OPEN"
        return f"<RedisConnection [{self.address.host}:{self.address.port}, {state}]>"

    @property
    def closed(self) -> bool:
        """True once the connection can no longer be used."""
        return self._closed

    async def execute(self, *command: bytes | str | int | float) -> object:
        """Run one command and return its reply.

        Raises:
            redis.exceptions.ResponseError: (or a subclass) if Redis answered with an error.
            trio.BrokenResourceError: if the connection broke first.
            trio.ClosedResourceError: if the connection was closed.
        """
        (reply,) = await self.pipeline([command])
        if isinstance(reply, redis_exceptions.RedisError):
            raise reply
        return reply

    async def execute_blocking(self, *command: bytes | str | int | float) -> object:
        """Run a command that may block server-side (`BLOCK`); cancelling closes the connection.

        Raises:
            Same as `execute`.
        """
        (reply,) = await self.pipeline([command], blocking=True)
        if isinstance(reply, redis_exceptions.RedisError):
            raise reply
        return reply

    async def pipeline(
        self, commands: Sequence[Command], *, blocking: bool = False
    ) -> list[object]:
        """Run commands in one write and return their replies in order, errors as instances.

        Args:
            commands: the commands; an empty list returns at once.
            blocking: True if a reply may take long to come; cancelling then closes the
                connection rather than leaving an unread reply behind.

        Raises:
            trio.BrokenResourceError: if the connection broke before every reply arrived.
            trio.ClosedResourceError: if the connection was closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_usable()
        request = _Request(pack_commands(commands), len(commands))
        if not commands:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return []
        self._queue.append(request)
        self._queued.unpark()
        try:
            await request.done.wait()
        except trio.Cancelled:
            request.abandoned = True
            if blocking:
                self.close()
            raise
        if request.error is not None:
            if isinstance(request.error, trio.ClosedResourceError):
                raise trio.ClosedResourceError("redis connection was closed") from None
            raise trio.BrokenResourceError(
                f"connection to redis at {self.address.host}:{self.address.port} broke"
            ) from request.error
        return request.replies

    def close(self) -> None:
        """Close the connection now; waiting requests fail with `trio.ClosedResourceError`."""
        if not self._closed:
            self._closed = True
            self._scope.cancel()

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise trio.BrokenResourceError(
                f"connection to redis at {self.address.host}:{self.address.port} broke"
            ) from self._broken
        if self._closed:
            raise trio.ClosedResourceError("redis connection is closed")

    async def wait_closed(self) -> None:
        """Wait until the connection has closed (broken, or closed by us)."""
        await self._finished.wait()

    async def _run(self) -> None:
        parser = ReplyParser()
        in_flight: list[_Request] = []
        failure: BaseException = trio.ClosedResourceError("redis connection was closed")
        try:
            with self._scope:
                while True:
                    while not self._queue:
                        await self._queued.park()
                    in_flight = list(self._queue)
                    self._queue.clear()
                    in_flight = [request for request in in_flight if not request.abandoned]
                    if not in_flight:
                        continue
                    await self._stream.send_all(b"".join(r.payload for r in in_flight))
                    for request in in_flight:
                        while len(request.replies) < request.count:
                            reply = parser.next_reply()
                            if reply is Signal.NEED_DATA:
                                data = await self._stream.receive_some(_READ_SIZE)
                                if not data:
                                    raise trio.BrokenResourceError("redis closed the connection")
                                parser.feed(data)
                                continue
                            request.replies.append(reply)
                        request.done.set()
                    in_flight = []
        except (OSError, trio.BrokenResourceError, redis_exceptions.InvalidResponse) as exc:
            failure = exc
            self._broken = exc
            logger.debug("redis connection %r broke: %r", self, exc)
        finally:
            self._closed = True
            self._fail_all(in_flight, failure)
            self._finished.set()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await trio.aclose_forcefully(self._stream)

    def _fail_all(self, in_flight: list[_Request], failure: BaseException) -> None:
        pending = [request for request in in_flight if not request.done.is_set()]
        pending.extend(self._queue)
        self._queue.clear()
        for request in pending:
            request.error = failure
            request.done.set()


async def _open_stream(
    address: RedisAddress, ssl_context: ssl.SSLContext | None
) -> trio.abc.Stream:
    stream: trio.abc.Stream = await trio.open_tcp_stream(address.host, address.port)
    if address.tls:
        context = ssl_context if ssl_context is not None else ssl.create_default_context()
        tls_stream = trio.SSLStream(stream, context, server_hostname=address.host)
        try:
            await tls_stream.do_handshake()
        except trio.BrokenResourceError as exc:
            await trio.aclose_forcefully(stream)
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                # A certificate we do not trust will not become trusted by trying again.
                raise BrokerError("TLS handshake", str(exc.__cause__)) from exc.__cause__
            raise
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        stream = tls_stream
    return stream


async def _login(connection: RedisConnection, name: str | None) -> None:
    login = connection.address.login_commands()
    extras: list[Command] = [("INFO", "server")]
    if name is not None:
        extras.append(("CLIENT", "SETNAME", name))
    replies = await connection.pipeline([*login, *extras])
    for command, reply in zip(login, replies, strict=False):
        if isinstance(reply, redis_exceptions.RedisError):
            raise BrokerError(str(command[0]), str(reply)) from reply
    # INFO and CLIENT SETNAME may be refused to a restricted ACL user; neither is essential.
    info = replies[len(login)]
    if isinstance(info, bytes):
        connection.run_id = parse_info(info).get("run_id", "")


@asynccontextmanager
async def open_redis_connection(
    address: RedisAddress | str,
    *,
    name: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[RedisConnection]:
    """Connect to Redis, log in (AUTH with the URL's user and password, SELECT its db).

    Args:
        address: the server, or a `redis://`/`rediss://` URL.
        name: a client name shown by CLIENT LIST.
        ssl_context: for `rediss://`; the default context verifies the server.

    Raises:
        OSError: if the server cannot be reached.
        BrokerError: if the server refused the login.

    Cancellation: both halves; leaving the block closes the connection.
    """
    if isinstance(address, str):
        address = RedisAddress.from_url(address)
    stream = await _open_stream(address, ssl_context)
    connection = RedisConnection(address, stream)
    async with open_service_nursery() as nursery:
        nursery.start_soon(connection._run)
        try:
            await _login(connection, name)
            connection.opened_at = trio.current_time()
            yield connection
        finally:
            connection.close()


@attrs.define(eq=False)
class RedisClient:
    """A connection that comes back: reconnects with backoff and follows cluster redirects.

    Create it with `open_redis_client`. Each `execute` or `pipeline` runs on the current
    connection; when that connection breaks, the client opens a new one (waiting 0.05 s,
    then doubling up to `max_backoff`, with jitter) and, if asked to retry, runs the
    commands again. Retried commands may run twice (the first reply may have been lost), so
    only idempotent commands or at-least-once writes should be retried.
    """

    address: RedisAddress
    """The server currently used (changes when Redis Cluster answers MOVED)."""
    _nursery: trio.Nursery
    _name: str | None = None
    _ssl_context: ssl.SSLContext | None = None
    max_backoff: float = 1.0
    """Longest wait between two connection attempts, in seconds."""
    _connection: RedisConnection | None = None
    _lock: trio.Lock = attrs.field(factory=trio.Lock)
    _closed: bool = False
    connects: int = 0
    """How many connections were opened (statistics)."""
    _random: random.Random = attrs.field(factory=random.Random)

    def __repr__(self) -> str:
        state = "CLOSED" if self._closed else ("CONNECTED" if self._connected() else "IDLE")
        return f"<RedisClient [{self.address.host}:{self.address.port}, {state}]>"

    def _connected(self) -> bool:
        return self._connection is not None and not self._connection.closed

    @property
    def connected_at(self) -> float:
        """When the current connection was opened (`trio.current_time()`; inf if none)."""
        connection = self._connection
        if connection is None or connection.closed:
            return math.inf
        return connection.opened_at

    @property
    def run_id(self) -> str:
        """The run id of the server behind the current connection ('' before the first)."""
        return self._connection.run_id if self._connection is not None else ""

    async def connection(self) -> RedisConnection:
        """The current connection, opened (with backoff) if there is none.

        Raises:
            trio.ClosedResourceError: if the client was closed.
            BrokerError: if the server refused the login (retrying cannot mend that).
        """
        connection = self._connection
        if connection is not None and not connection.closed:
            # The common case, without the lock: callers are many, reconnects rare.
            return connection
        async with self._lock:
            delay = 0.05
            while not self._connected():
                if self._closed:
                    raise trio.ClosedResourceError("redis client is closed")
                if not self.usable:
                    # A connection started into a cancelled nursery dies at once: retrying
                    # would spin (and grow) forever. Whoever needs Redis now (a goodbye
                    # during cancellation) opens a client of its own.
                    raise trio.ClosedResourceError("redis client is shutting down")
                try:
                    self._connection = await self._nursery.start(self._serve_connection)
                    self.connects += 1
                except (OSError, trio.BrokenResourceError) as exc:
                    logger.debug("cannot reach redis at %s: %r", self.address, exc)
                    await trio.sleep(delay * (0.5 + self._random.random()))
                    delay = min(delay * 2, self.max_backoff)
                except redis_exceptions.BusyLoadingError:
                    await trio.sleep(delay)
            assert self._connection is not None
            return self._connection

    async def _serve_connection(
        self, *, task_status: trio.TaskStatus[RedisConnection] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with open_redis_connection(
            self.address, name=self._name, ssl_context=self._ssl_context
        ) as connection:
            task_status.started(connection)
            await connection.wait_closed()

    async def execute(
        self, *command: bytes | str | int | float, retry: bool = True, blocking: bool = False
    ) -> object:
        """Run one command, reconnecting first if needed, and return its reply.

        Args:
            command: the command and its arguments.
            retry: run it again on a new connection if the connection broke before the reply.
            blocking: the command may block server-side; cancelling closes the connection.

        Raises:
            redis.exceptions.ResponseError: (or a subclass) for an error reply.
            trio.BrokenResourceError: if the connection broke and `retry` is False.
        """
        (reply,) = await self.pipeline([command], retry=retry, blocking=blocking)
        if isinstance(reply, redis_exceptions.RedisError):
            raise reply
        return reply

    async def pipeline(
        self, commands: Sequence[Command], *, retry: bool = True, blocking: bool = False
    ) -> list[object]:
        """Run commands in one write, reconnecting as needed; replies (errors as instances).

        Redis Cluster: a `MOVED` reply sends the pipeline to the named node, which the client
        uses from then on (the transport's keys share one hash slot, so a pipeline belongs to
        one node as a whole); an `ASK` reply runs the asked commands once on the named node,
        after `ASKING`. Replies meaning nothing ran (LOADING, TRYAGAIN, CLUSTERDOWN) are
        retried after 50 ms.
        """
        while True:
            connection = await self.connection()
            try:
                replies = await connection.pipeline(commands, blocking=blocking)
            except trio.BrokenResourceError:
                if not retry or not self.usable:
                    raise
                continue
            except trio.ClosedResourceError:
                if self._closed or not retry or not self.usable:
                    raise
                continue
            if any(isinstance(reply, _NOT_RUN) for reply in replies):
                # Redis is loading its data, or the cluster is changing: nothing ran, so trying
                # again is safe whatever `retry` says.
                await trio.sleep(0.05)
                continue
            moved = next((r for r in replies if isinstance(r, redis_exceptions.MovedError)), None)
            if moved is not None:
                # The slot lives on another node now: go there for good (nothing ran here).
                logger.info("redis cluster moved our slot to %s:%s", moved.host, moved.port)
                self.address = self.address.with_endpoint(moved.host, int(moved.port))
                connection.close()
                continue
            asked = [i for i, r in enumerate(replies) if isinstance(r, redis_exceptions.AskError)]
            if asked:
                replies = list(replies)
                answers = await self._ask([commands[i] for i in asked], replies[asked[0]])
                for index, answer in zip(asked, answers, strict=True):
                    replies[index] = answer
            return replies

    async def _ask(self, commands: Sequence[Command], error: object) -> list[object]:
        """Run commands once on the node an ASK redirection names (a slot being migrated)."""
        assert isinstance(error, redis_exceptions.AskError)
        target = self.address.with_endpoint(error.host, int(error.port))
        async with open_redis_connection(target, ssl_context=self._ssl_context) as connection:
            replies = await connection.pipeline(
                [part for command in commands for part in (("ASKING",), command)]
            )
        return replies[1::2]

    @property
    def usable(self) -> bool:
        """Whether the client can still (re)connect: not closed, its nursery not cancelled."""
        return not self._closed and not self._nursery.cancel_scope.cancel_called

    def drop(self) -> None:
        """Close the current connection (the next call opens a new one)."""
        if self._connection is not None:
            self._connection.close()

    def close(self) -> None:
        """Close the client and its connection."""
        self._closed = True
        self.drop()


@asynccontextmanager
async def open_redis_client(
    address: RedisAddress | str,
    *,
    name: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    max_backoff: float = 1.0,
) -> AsyncIterator[RedisClient]:
    """Open a reconnecting Redis client; the first connection is opened on first use.

    Args:
        address: the server, or a `redis://`/`rediss://` URL.
        name: a client name shown by CLIENT LIST.
        ssl_context: for `rediss://`.
        max_backoff: longest wait between connection attempts, in seconds.

    Cancellation: both halves; leaving the block closes the connection.
    """
    if isinstance(address, str):
        address = RedisAddress.from_url(address)
    async with open_service_nursery() as nursery:
        client = RedisClient(address, nursery, name, ssl_context, max_backoff=max_backoff)
        try:
            yield client
        finally:
            client.close()
