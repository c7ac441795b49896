"""The client end of a WebSocket link, on anyio streams and wsproto.

Theory of operation
-------------------
This is the anyio twin of the client half of `transports.serve_websocket_link`'s peer: a TCP
(or TLS) stream from `anyio.connect_tcp`, spoken as a WebSocket with wsproto (the sans-io
WebSocket that trio-websocket itself uses), then the link's hello exchange from
`transports._websocket_protocol`, the pure module both ends share. Nothing here calls Trio,
so it runs on asyncio as well as on Trio (anyio picks the running loop).

Rule 1: one reader. Once the hellos are exchanged, only the client's reader task calls
`receive_message`; it answers pings and the peer's close itself.

Rule 2: one writer at a time. Every frame goes out under one lock, so a pong, a packet and a
close never interleave their bytes.

Rule 3: the stream is closed whatever happens: `open_websocket` closes it on the way out,
after a bounded goodbye.
"""

from __future__ import annotations

import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Final

import anyio
import anyio.abc
import wsproto
import wsproto.events as events
from wsproto.connection import ConnectionState
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from transports import LinkRejected
from transports import _websocket_protocol as protocol

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds the connection, the WebSocket handshake and the hello exchange may take."""

CLOSE_GRACE: Final = 2.0
"""Seconds a closing handshake may take before the stream is closed regardless."""

CLOSE_MESSAGE_TOO_BIG: Final = 1009
"""WebSocket close code for a message over the limit (RFC 6455, 7.4.1)."""

_RECEIVE_SIZE: Final = 64 * 1024


class ConnectionClosed(Exception):
    """The WebSocket has closed (or its stream broke).

    Attributes:
        code: the close code the peer sent, or None if the stream ended without one.
        reason: the peer's close reason text, if any.
    """

    def __init__(self, code: int | None, reason: str | None) -> None:
        self.code = code
        """The peer's close code, or None if the stream ended without one."""
        self.reason = reason
        """The peer's close reason text, if any."""
        super().__init__(f"websocket closed ({code} {reason or ''})".rstrip() + ")")

    @property
    def clean(self) -> bool:
        """Whether the peer said goodbye (close code 1000 or 1001)."""
        return self.code in (1000, 1001)


class WebSocket:
    """One open client WebSocket: whole binary or text messages in, binary messages out.

    Made by `open_websocket`; `max_message_size` bounds what is buffered of one message.
    """

    def __init__(self, stream: anyio.abc.ByteStream, max_message_size: int) -> None:
        self._stream = stream
        self._connection = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._max_message_size = max_message_size
        self._send_lock = anyio.Lock()
        self._pending: list[events.Event] = []
        self._parts: list[bytes | str] = []
        self._size = 0
        self._closed: ConnectionClosed | None = None
        self._ended = anyio.Event()
        self.reader_running = False
        self._closing = False
        """Set by the one reader task while it reads (then `aclose` leaves reading to it)."""
        self._pongs: dict[bytes, anyio.Event] = {}

    def __repr__(self) -> str:
        return f"<WebSocket [{self._connection.state.name}]>"

    @property
    def closed(self) -> ConnectionClosed | None:
        """How the connection ended, once it has."""
        return self._closed

    # --- handshake --------------------------------------------------------------------------

    async def handshake(self, host: str, resource: str, headers: Sequence[tuple[str, str]]) -> None:
        """Send the upgrade request and read the answer.

        Raises:
            LinkRejected: if the server refused the upgrade (its status and body).
            OSError: if the stream ended first.
        """
        extra = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers]
        await self._write(events.Request(host=host, target=resource, extra_headers=extra))
        status: int | None = None
        body = b""
        while True:
            found = await self._next_events()
            for index, event in enumerate(found):
                if isinstance(event, events.AcceptConnection):
                    # What came in the same read (the server's hello, say) is kept.
                    self._pending.extend(found[index + 1 :])
                    return
                if isinstance(event, events.RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise LinkRejected(status, None)
                elif isinstance(event, events.RejectData):
                    body += event.data
                    if event.body_finished:
                        raise LinkRejected(status, body.decode(errors="replace") or None)

    # --- messages ---------------------------------------------------------------------------

    async def send_message(self, data: bytes) -> None:
        """Send one binary message.

        Raises:
            ConnectionClosed: if the connection has ended.
        """
        if self._closed is not None or self._connection.state is not ConnectionState.OPEN:
            raise self._closed or ConnectionClosed(None, "closing")
        await self._write(events.BytesMessage(data=data))

    async def receive_message(self) -> bytes | str:
        """The next whole message; answers pings and the peer's close on the way.

        Raises:
            ConnectionClosed: once the connection has ended.
        """
        while True:
            while self._pending:
                event = self._pending.pop(0)
                message = await self._take(event)
                if message is not None:
                    return message
            if self._closed is not None:
                raise self._closed
            self._pending.extend(await self._next_events())

    async def ping(self, payload: bytes) -> anyio.Event:
        """Send a ping; the returned event is set when its pong arrives (read by the reader)."""
        answered = anyio.Event()
        self._pongs[payload] = answered
        await self._write(events.Ping(payload=payload))
        return answered

    async def _take(self, event: events.Event) -> bytes | str | None:
        if isinstance(event, events.Message):
            self._parts.append(event.data)
            self._size += len(event.data)
            if self._size > self._max_message_size:
                close = events.CloseConnection(code=CLOSE_MESSAGE_TOO_BIG, reason="message too big")
                await self._write_quietly(close)
                self._end(CLOSE_MESSAGE_TOO_BIG, "message too big")
                return None
            if not event.message_finished:
                return None
            parts, self._parts, self._size = self._parts, [], 0
            if isinstance(event, events.TextMessage):
                return "".join(str(part) for part in parts)
            return b"".join(bytes(part) for part in parts)  # type: ignore[arg-type]
        if isinstance(event, events.Ping):
            await self._write_quietly(event.response())
        elif isinstance(event, events.Pong):
            answered = self._pongs.pop(bytes(event.payload), None)
            if answered is not None:
                answered.set()
        elif isinstance(event, events.CloseConnection):
            if self._connection.state is ConnectionState.REMOTE_CLOSING:
                await self._write_quietly(event.response())
            self._end(event.code, event.reason)
        return None

    # --- closing ----------------------------------------------------------------------------

    async def aclose(self, code: int = protocol.CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake (if still open) and wait for it, bounded by `CLOSE_GRACE`.

        The stream itself is closed by `open_websocket`.
        """
        # A close reason must fit a control frame: 123 bytes of UTF-8 (RFC 6455, 5.5).
        text = reason.encode()[:120].decode(errors="ignore")
        with anyio.move_on_after(CLOSE_GRACE, shield=True):
            if self._connection.state is ConnectionState.OPEN:
                await self._write_quietly(events.CloseConnection(code=code, reason=text))
            if self.reader_running or self._closing:
                # Another task reads (the reader, or a close already under way): it sees the
                # peer's answer, and two readers of one stream would collide.
                await self._ended.wait()
            self._closing = True
            while self._closed is None:
                try:
                    self._pending.extend(await self._next_events())
                except ConnectionClosed:
                    break
                for event in self._pending:
                    if isinstance(event, events.CloseConnection):
                        self._end(event.code, event.reason)
                self._pending.clear()
        if self._closed is None:
            self._end(code, text)

    def abandon(self, reason: str) -> None:
        """Give the peer up (it answers no ping): closing then waits for no answer from it."""
        self._end(protocol.CLOSE_DEAD_PEER, reason)

    def _end(self, code: int | None, reason: str | None) -> None:
        if self._closed is None:
            self._closed = ConnectionClosed(code, reason)
            self._ended.set()

    # --- bytes ------------------------------------------------------------------------------

    async def _write(self, event: events.Event) -> None:
        # Frames are made under the lock too, so they reach the stream in the order wsproto
        # saw them (a close never goes out ahead of a message it followed).
        async with self._send_lock:
            try:
                data = self._connection.send(event)
            except LocalProtocolError as exc:
                raise self._closed or ConnectionClosed(None, str(exc)) from None
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                self._end(None, f"stream broken: {exc!r}")
                raise self._closed or ConnectionClosed(None, "stream broken") from None

    async def _write_quietly(self, event: events.Event) -> None:
        with suppress(ConnectionClosed):
            await self._write(event)

    async def _next_events(self) -> list[events.Event]:
        try:
            data: bytes | None = await self._stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            data = None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._end(None, f"stream broken: {exc!r}")
            assert self._closed is not None
            raise self._closed from None
        self._connection.receive_data(data)
        try:
            found = list(self._connection.events())
        except RemoteProtocolError as exc:
            self._end(None, f"protocol error: {exc}")
            assert self._closed is not None
            raise self._closed from None
        if data is None and not any(isinstance(e, events.CloseConnection) for e in found):
            self._end(None, "connection lost")
            if not found:
                raise self._closed  # type: ignore[misc]
        return found


@asynccontextmanager
async def open_websocket(
    url: str,
    *,
    headers: Sequence[tuple[str, str]],
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
) -> AsyncIterator[WebSocket]:
    """Connect to `url` (``ws://`` or ``wss://``) and open a WebSocket on a stream this owns.

    The connection and the upgrade are bounded by `HANDSHAKE_TIMEOUT`. Leaving says goodbye
    (bounded by `CLOSE_GRACE`) and always closes the stream.

    Raises:
        ValueError: for a URL that is not ``ws://`` or ``wss://``.
        LinkRejected: if the server refused the upgrade (401, 403, ...).
        OSError: if the connection could not be made or ended during the upgrade.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"expected a ws:// or wss:// URL, got {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if port in (80, 443) else f"{parts.hostname}:{port}"
    try:
        with anyio.fail_after(HANDSHAKE_TIMEOUT):
            stream: anyio.abc.ByteStream
            if secure:
                # No close_notify is required at EOF, as the Trio link client does
                # (https_compatible=True): WebSocket has its own closing handshake.
                stream = await anyio.connect_tcp(
                    parts.hostname,
                    port,
                    ssl_context=ssl_context or ssl.create_default_context(),
                    tls_hostname=parts.hostname,
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(parts.hostname, port)
    except TimeoutError:
        raise OSError(f"could not connect to {url!r} within {HANDSHAKE_TIMEOUT}s") from None
    try:
        socket = WebSocket(stream, max_message_size)
        try:
            with anyio.fail_after(HANDSHAKE_TIMEOUT):
                await socket.handshake(host_header, resource, headers)
        except (TimeoutError, ConnectionClosed) as exc:
            raise OSError(f"could not open a WebSocket to {url!r}: {exc!r}") from None
        try:
            yield socket
        finally:
            await socket.aclose(protocol.CLOSE_NORMAL, "goodbye")
    finally:
        await anyio.aclose_forcefully(stream)


async def exchange_hellos(
    socket: WebSocket, system: str, exports: tuple[str, ...]
) -> protocol.Hello:
    """Send our hello and read the server's (the link protocol's Rule 1), bounded.

    Raises:
        LinkVersionMismatch: if the server speaks another link protocol version.
        LinkHandshakeError: if either side refused the other's hello.
        LinkRejected: if the server closed the connection during the exchange.
    """
    try:
        with anyio.fail_after(HANDSHAKE_TIMEOUT):
            await socket.send_message(protocol.encode_hello(system, exports))
            message = await socket.receive_message()
    except TimeoutError:
        error = protocol.BadHello(f"no hello within {HANDSHAKE_TIMEOUT}s")
        await socket.aclose(protocol.CLOSE_BAD_HELLO, str(error))
        raise error from None
    except ConnectionClosed as exc:
        refusal = protocol.error_for_close(exc.code, exc.reason)
        raise refusal or LinkRejected(None, "closed during the handshake") from None
    try:
        return protocol.decode_hello(message)
    except protocol.LinkHandshakeError as exc:
        await socket.aclose(protocol.close_code_for(exc), str(exc))
        raise
