"""The WebSocket link: two actor systems point to point over trio-websocket.

Theory of operation
-------------------
A `WebSocketLink` (`_websocket_link`) is one open WebSocket between two actor systems, after
both hellos were exchanged (see `_websocket_protocol`). It carries opaque `bytes` packets,
each with a small header naming its recipient; it holds no names (the actor systems keep
theirs) and knows the names its peer exports from the peer's hello.

`serve_websocket_link` and `open_websocket_link` own the connections. For each one they

1. (server) hand the handshake request (path, headers, remote address) to `authenticate`
   before accepting; a refused client gets an HTTP error status and never a read of any
   packet;
2. exchange hellos (one version; a mismatch closes with `CLOSE_VERSION_MISMATCH` and a reason);
3. run the link's keep-alive task, which pings the peer every `ping_interval` seconds: a peer
   that does not answer within the interval is dead (it need not have closed its socket), and
   the connection is closed, which the reader reports as `PeerLost(crashed=True)`;
4. hand the link to the actor system (`LinkHost.attach_link`), which reads it, filters what
   crosses and routes it, until the link ends.

Each server connection lives in a nursery of its own; whatever goes wrong with one (garbage,
a failing session, a dead peer) is logged and ends that connection only. The client reconnects
with backoff and jitter after its link drops, and re-attaches (so the system re-announces).

Backpressure: trio-websocket's reader task hands messages over through a bounded queue
(`message_queue_size`), so a reader that falls behind stops reading the socket and TCP slows
the peer. A frame is written by its sender while nothing else waits; behind a write in
progress, frames go through the link's bounded queue to its writer task, which puts those that
waited together into one message (so 100 jobs in flight do not cost 100 writes); once the
queue is full, senders wait for the socket. Nothing queues without bound.

Limits: a text message, or a binary one over `max_message_size`, is refused and counted, and
the link goes on. A message over four times the limit is not even buffered: trio-websocket
closes the connection with 1009 (Message Too Big), since only a hostile peer sends one.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn, Protocol, final

import trio
import trio_websocket

from . import _websocket_protocol as protocol
from ._abc import TransportLink
from ._nursery import open_service_nursery
from ._websocket_link import CLOSE_GRACE, LinkRequest, WebSocketLink
from ._websocket_protocol import (
    AuthenticationFailed,
    BadHello,
    LinkHandshakeError,
    LinkRejected,
    ReconnectBackoff,
)

logger = logging.getLogger(__name__)

DEFAULT_PING_INTERVAL = 10.0
"""Default seconds between two pings; a peer silent for that long after a ping is dead."""

HANDSHAKE_TIMEOUT = 10.0
"""Seconds the peer has to send its hello once the WebSocket is open."""

_HARD_LIMIT_FACTOR = 4
"""A message over this many times the packet limit closes the connection (1009) unread."""


class LinkHost(Protocol):
    """What the WebSocket link needs of an actor system (`actors.ActorSystem` is one)."""

    @property
    def name(self) -> str:
        """The system's name, sent in the hello."""

    def attach_link(
        self,
        link: TransportLink,
        *,
        exports: Sequence[str],
        imports: Sequence[str],
        scope: str | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Route traffic through `link` while the block runs (see `actors.ActorSystem`)."""


SessionFactory = Callable[[Any, LinkRequest], Any]
"""Called with (system, request) per accepted connection; returns an async context manager or
an awaitable that runs for as long as the connection."""

Authenticate = Callable[[LinkRequest], "bool | Awaitable[bool]"]
"""Decides whether a client may connect; may also raise `AuthenticationFailed`."""


async def _handshake(
    connection: trio_websocket.WebSocketConnection, system: str, exports: tuple[str, ...]
) -> protocol.Hello:
    """Send our hello and read the peer's (see `_websocket_protocol`, Rule 1)."""
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            await connection.send_message(
                protocol.encode_hello(system, exports, version=protocol.LINK_VERSION)
            )
            message = await connection.get_message()
    except trio.TooSlowError:
        error: LinkHandshakeError = BadHello(f"no hello within {HANDSHAKE_TIMEOUT}s")
        await _close(connection, protocol.CLOSE_BAD_HELLO, str(error))
        raise error from None
    except trio_websocket.ConnectionClosed as exc:
        reason = exc.reason
        code, text = (reason.code, reason.reason) if reason is not None else (None, None)
        refusal = protocol.error_for_close(code, text)
        raise refusal or LinkRejected(None, "closed during the handshake") from None
    try:
        return protocol.decode_hello(message)
    except LinkHandshakeError as exc:
        await _close(connection, protocol.close_code_for(exc), str(exc))
        raise


async def _close(connection: trio_websocket.WebSocketConnection, code: int, reason: str) -> None:
    # A close reason must fit a control frame: 123 bytes of UTF-8 (RFC 6455, 5.5).
    text = reason.encode()[:120].decode(errors="ignore")
    with trio.move_on_after(CLOSE_GRACE):
        await connection.aclose(code, text)


async def _run_link(
    system: LinkHost,
    link: WebSocketLink,
    *,
    exports: Sequence[str],
    imports: Sequence[str],
    scope: str | None,
    ping_interval: float,
    session: Callable[[], Any] | None = None,
) -> None:
    """Attach `link` to `system` and keep it alive until the connection ends."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.write_frames)
        nursery.start_soon(link.keep_alive, ping_interval)
        async with system.attach_link(link, exports=exports, imports=imports, scope=scope):
            if session is None:
                await link.wait_closed()
            else:
                await _run_session(session(), link)
        nursery.cancel_scope.cancel(reason="link closed")


async def _run_session(made: Any, link: WebSocketLink) -> None:
    """Run what a session factory returned for as long as the link."""
    if hasattr(made, "__aenter__"):
        async with made:
            await link.wait_closed()
        return
    async with trio.open_nursery() as nursery:
        if inspect.isawaitable(made):

            async def run() -> None:
                await made

            nursery.start_soon(run)
        await link.wait_closed()
        nursery.cancel_scope.cancel(reason="session's connection closed")


def _address(endpoint: object) -> str:
    if isinstance(endpoint, trio_websocket.Endpoint):
        return f"{endpoint.address}:{endpoint.port}"
    return str(endpoint)


def _headers(request: trio_websocket.WebSocketRequest) -> tuple[tuple[str, str], ...]:
    return tuple(
        (key.decode("latin-1").lower(), value.decode("latin-1")) for key, value in request.headers
    )


async def serve_websocket_link(
    system: LinkHost,
    *,
    host: str | None,
    port: int,
    exports: Sequence[str] = (),
    imports: Sequence[str] = (),
    session_factory: SessionFactory | None = None,
    authenticate: Authenticate | None = None,
    ssl_context: ssl.SSLContext | None = None,
    ping_interval: float = DEFAULT_PING_INTERVAL,
    max_message_size: int = protocol.DEFAULT_MAX_MESSAGE_SIZE,
    task_status: trio.TaskStatus[trio_websocket.WebSocketServer] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve WebSocket links to `system` until cancelled, one per client connection.

    Each accepted client gets its own link, attached to `system` with `exports` and
    `imports`. With a `session_factory`, each connection is a session: the factory is called
    with ``(system, request)`` and spawns that session's actors, named with
    `LinkRequest.scoped` (``s1/assistant``); on the wire they go by their plain names, and they
    are exported to their own client only. The session's actors end when the connection ends.
    Without a session factory, names are global (unique across the systems, DESIGN 6): a second
    connection importing names another connection already imports is refused (and logged).

    Args:
        system: the actor system (anything with `attach_link`, see `LinkHost`).
        host: the interface to bind (None: all).
        port: the port (0: any free one; read it from the started value's ``port``).
        exports: names of local actors (or, with sessions, of session actors) the clients may
            address.
        imports: names of the clients' actors this side may address.
        session_factory: called per connection with ``(system, request)``; returns an async
            context manager or an awaitable that runs while the connection lasts.
        authenticate: called with the `LinkRequest` before accepting; False answers 401,
            raising `AuthenticationFailed` answers its status. No packet of a refused client
            is ever read.
        ssl_context: serve ``wss://`` with this context.
        ping_interval: seconds between pings; a client silent that long after one is dead.
        max_message_size: largest packet accepted or sent, in bytes.
        task_status: reports the `trio_websocket.WebSocketServer` (its ``port`` and
            ``listeners``) once listening, like `trio_websocket.serve_websocket`.
    """
    _check_settings(ping_interval, max_message_size)
    exported = tuple(exports)
    sessions = itertools.count(1)

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        link_request = LinkRequest(
            path=request.path,
            headers=_headers(request),
            remote_address=_address(request.remote),
            session_id=f"s{next(sessions)}",
        )
        try:
            await _serve_connection(request, link_request)
        except Exception as exc:
            # A bad connection ends itself only; the server and the other links go on.
            logger.warning(
                "link server %r: connection from %s ended: %r",
                system.name,
                link_request.remote_address,
                exc,
            )

    async def _serve_connection(
        request: trio_websocket.WebSocketRequest, link_request: LinkRequest
    ) -> None:
        if authenticate is not None:
            status = await _authenticate(authenticate, link_request)
            if status is not None:
                code, text = status
                logger.info(
                    "link server %r refused %s with %d",
                    system.name,
                    link_request.remote_address,
                    code,
                )
                await request.reject(code, body=text.encode())
                return
        connection = await request.accept()
        peer = await _handshake(connection, system.name, exported)
        link = WebSocketLink(
            connection, system=system.name, peer=peer, max_message_size=max_message_size
        )
        session = None
        if session_factory is not None:

            def session() -> Any:
                return session_factory(system, link_request)

        await _run_link(
            system,
            link,
            exports=exported,
            imports=tuple(imports),
            scope=link_request.session_id if session_factory is not None else None,
            ping_interval=ping_interval,
            session=session,
        )

    await trio_websocket.serve_websocket(
        handler,
        host,
        port,
        ssl_context,
        max_message_size=max_message_size * _HARD_LIMIT_FACTOR + 0x10000,
        connect_timeout=HANDSHAKE_TIMEOUT,
        disconnect_timeout=CLOSE_GRACE,
        task_status=task_status,
    )
    raise AssertionError("serve_websocket returned")  # pragma: no cover


async def _authenticate(authenticate: Authenticate, request: LinkRequest) -> tuple[int, str] | None:
    """None to accept, else the (status, text) to refuse with."""
    try:
        verdict = authenticate(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    except AuthenticationFailed as exc:
        return exc.status, exc.reason
    except Exception:
        # A failing hook refuses the client (and is logged); it never lets one in.
        logger.exception("link server: the authenticate hook failed for %s", request.remote_address)
        return 500, "authentication failed"
    return None if verdict else (401, "unauthorized")


def _check_settings(ping_interval: float, max_message_size: int) -> None:
    if not ping_interval > 0:
        raise ValueError(f"ping_interval must be > 0, got {ping_interval!r}")
    if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
        raise TypeError(f"max_message_size must be an int, got {max_message_size!r}")
    if max_message_size <= 0:
        raise ValueError(f"max_message_size must be > 0, got {max_message_size!r}")


@asynccontextmanager
async def _open_client_connection(
    url: str,
    ssl_context: ssl.SSLContext | None,
    headers: list[tuple[bytes, bytes]],
    max_message_size: int,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Open a client WebSocket on a stream this function owns and always closes.

    (trio-websocket's own `open_websocket_url` leaves the socket of a rejected handshake
    open; here the stream is closed whatever happens, and one error comes out alone.)
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"expected a ws:// or wss:// URL, got {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if port in (80, 443) else f"{parts.hostname}:{port}"
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
    with trio.fail_after(HANDSHAKE_TIMEOUT):
        if secure:
            stream = await trio.open_ssl_over_tcp_stream(
                parts.hostname,
                port,
                ssl_context=ssl_context or ssl.create_default_context(),
                https_compatible=True,
            )
        else:
            stream = await trio.open_tcp_stream(parts.hostname, port)
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                connection = await trio_websocket.wrap_client_stream(
                    nursery,
                    stream,
                    host_header,
                    resource,
                    extra_headers=headers,
                    max_message_size=max_message_size,
                )
            try:
                yield connection
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE):
                    await connection.aclose()
                nursery.cancel_scope.cancel(reason="connection closed")
    except BaseExceptionGroup as group:
        errors = _leaves(group)
        if len(errors) == 1:
            raise errors[0] from None
        raise
    finally:
        await trio.aclose_forcefully(stream)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_leaves(error))
        elif not isinstance(error, trio.Cancelled):
            found.append(error)
    return found


@final
class WebSocketLinkClient:
    """The client side of a link, as `open_websocket_link` yields it; it reconnects by itself."""

    def __init__(self, url: str) -> None:
        self.url = url
        """The server's URL."""
        self.link: WebSocketLink | None = None
        """The current link, while connected."""
        self.connections = 0
        """How many times it has connected."""
        self._connected = trio.Event()

    def __repr__(self) -> str:
        state = "connected" if self.link is not None else "reconnecting"
        return f"<WebSocketLinkClient [{self.url!r}, {state}, connections: {self.connections}]>"

    @property
    def connected(self) -> bool:
        """Whether a link is up now."""
        return self.link is not None

    async def wait_connected(self) -> WebSocketLink:
        """Wait until a link is up; return it."""
        while self.link is None:
            await self._connected.wait()
        await trio.lowlevel.checkpoint()
        return self.link

    def _up(self, link: WebSocketLink) -> None:
        self.link = link
        self.connections += 1
        self._connected.set()

    def _down(self) -> None:
        self.link = None
        if self._connected.is_set():
            self._connected = trio.Event()


@asynccontextmanager
async def open_websocket_link(
    system: LinkHost,
    url: str,
    *,
    exports: Sequence[str] = (),
    imports: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    ssl_context: ssl.SSLContext | None = None,
    ping_interval: float = DEFAULT_PING_INTERVAL,
    max_message_size: int = protocol.DEFAULT_MAX_MESSAGE_SIZE,
    backoff: ReconnectBackoff | None = None,
) -> AsyncIterator[WebSocketLinkClient]:
    """Link `system` to the server at `url` for the duration of the block.

    Entering connects once (and raises if that fails); afterwards a dropped link is reported
    to the system (its imported actors gone, jobs in flight across it FAILED) and the client
    reconnects with backoff and jitter, re-announcing its exports each time.

    Args:
        system: the actor system (see `LinkHost`).
        url: ``ws://host:port/path`` or ``wss://...``.
        exports: names of local actors the server may address.
        imports: names of the server's actors this side may address.
        headers: extra request headers, for example ``[("Authorization", "Bearer ...")]``.
        ssl_context: the context for ``wss://`` (for example one trusting a private CA).
        ping_interval: seconds between pings; a server silent that long after one is dead.
        max_message_size: largest packet accepted or sent, in bytes.
        backoff: the reconnect schedule (default: 0.1 s doubling to 5 s, 20% jitter).

    Raises:
        LinkRejected: if the server refused the connection (401, 403, ...).
        LinkVersionMismatch: if the server speaks another link protocol version.
        LinkHandshakeError: if the handshake failed otherwise.
        OSError: if the first connection could not be made.

    Cancellation: entering waits for the first connection; leaving closes the link.
    """
    _check_settings(ping_interval, max_message_size)
    client = WebSocketLinkClient(url)
    schedule = backoff if backoff is not None else ReconnectBackoff()
    extra = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers]

    async def connect_once(task_status: trio.TaskStatus[None] | None) -> None:
        try:
            async with _open_client_connection(
                url, ssl_context, extra, max_message_size * _HARD_LIMIT_FACTOR + 0x10000
            ) as connection:
                peer = await _handshake(connection, system.name, tuple(exports))
                link = WebSocketLink(
                    connection, system=system.name, peer=peer, max_message_size=max_message_size
                )
                client._up(link)
                schedule.reset()
                if task_status is not None:
                    task_status.started()
                await _run_link(
                    system,
                    link,
                    exports=tuple(exports),
                    imports=tuple(imports),
                    scope=None,
                    ping_interval=ping_interval,
                )
        except trio_websocket.ConnectionRejected as exc:
            body = (exc.body or b"").decode(errors="replace") or None
            raise LinkRejected(exc.status_code, body) from None
        except (trio_websocket.HandshakeError, trio.BrokenResourceError) as exc:
            raise OSError(f"could not connect to {url!r}: {exc!r}") from exc
        finally:
            client._down()

    async def keep_connected(task_status: trio.TaskStatus[None]) -> None:
        await connect_once(task_status)
        while True:
            delay = schedule.next_delay()
            logger.info("link to %s dropped; reconnecting in %.2fs", url, delay)
            await trio.sleep(delay)
            try:
                await connect_once(None)
            except (OSError, LinkHandshakeError, trio_websocket.ConnectionClosed) as exc:
                logger.info("link to %s: reconnect failed: %r", url, exc)

    async with open_service_nursery() as nursery:
        await nursery.start(keep_connected)
        try:
            yield client
        finally:
            # Say goodbye, so the server sees a clean close (its jobs end CANCELLED, not FAILED).
            if client.link is not None:
                with trio.CancelScope(shield=True):
                    await client.link.aclose()
            nursery.cancel_scope.cancel(reason="link client closed")
