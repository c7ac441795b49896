"""The WebSocket link: its sans-io protocol (plain tests), then real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import random
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
import trio_websocket

from transports import (
    AuthenticationFailed,
    BadHello,
    Delivery,
    LinkRejected,
    LinkRequest,
    LinkVersionMismatch,
    PeerLost,
    ReconnectBackoff,
    TransportLink,
    WebSocketLink,
    open_websocket_link,
    serve_websocket_link,
)
from transports import _websocket_protocol as protocol
from transports._websocket import _open_client_connection
from transports.testing import check_order, check_oversized_packet

# --- the protocol, sans-io --------------------------------------------------------------------


def test_hello_round_trips() -> None:
    """A hello carries the protocol, version, system name and exports."""
    hello = protocol.decode_hello(protocol.encode_hello("front", ("voice", "bridge:voice")))
    assert (hello.protocol, hello.version) == (protocol.LINK_PROTOCOL, protocol.LINK_VERSION)
    assert (hello.system, hello.exports) == ("front", ("voice", "bridge:voice"))


def test_hello_of_another_version_is_refused() -> None:
    """A hello of another version raises LinkVersionMismatch naming both versions."""
    data = protocol.encode_hello("front", (), version=99)
    with pytest.raises(LinkVersionMismatch, match=r"^link protocol version mismatch") as caught:
        protocol.decode_hello(data)
    assert (caught.value.local, caught.value.peer) == (protocol.LINK_VERSION, 99)
    assert protocol.close_code_for(caught.value) == protocol.CLOSE_VERSION_MISMATCH


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ("hello", "text message"),
        (b"\xc1garbage", "not a msgpack map"),
        (msgspec.msgpack.encode({"protocol": "other", "version": 1}), "unknown protocol"),
        (msgspec.msgpack.encode({"protocol": protocol.LINK_PROTOCOL, "version": 1}), "system"),
        (bytes(protocol.MAX_HELLO_SIZE + 1), "exceeds"),
    ],
)
def test_anything_but_a_hello_is_refused(message: str | bytes, detail: str) -> None:
    """Text, garbage, another protocol, a missing field or a huge hello are BadHello."""
    with pytest.raises(BadHello, match=detail) as caught:
        protocol.decode_hello(message)
    assert protocol.close_code_for(caught.value) == protocol.CLOSE_BAD_HELLO


def test_frames_round_trip() -> None:
    """Addressed, control and broadcast packets keep their recipient and bytes."""
    for recipient, control in (("worker", False), ("wörker", True), (None, False)):
        framed = protocol.frame_packet(recipient, b"\x00data", control=control)
        assert protocol.parse_frame(framed) == (recipient, control, b"\x00data")


@pytest.mark.parametrize(
    "message",
    [b"", b"\x01\x00", b"\x07\x00\x00x", b"\x01\x00\x09ab", b"\x01\x00\x01\xff", b"\x01\x00\x00"],
)
def test_malformed_frames_are_refused(message: bytes) -> None:
    """A short header, an unknown kind, a bad or missing name raise MalformedFrame."""
    with pytest.raises(protocol.MalformedFrame):
        protocol.parse_frame(message)


def test_batches_round_trip() -> None:
    """Frames in a batch come out in order; a message that is no batch is its own frame."""
    frames = [protocol.frame_packet("a", b"1"), protocol.frame_packet(None, b""), b"\x02x"]
    assert protocol.unpack(protocol.frame_batch(frames)) == frames
    single = protocol.frame_packet("a", b"1")
    assert protocol.unpack(single) == [single]


@pytest.mark.parametrize(
    "message",
    [
        b"\x03\x00\x00",
        b"\x03\x00\x00\x00\x00",
        b"\x03\x00\x00\x00\x00\x00\x09ab",
        protocol.frame_batch([protocol.frame_batch([b"\x01\x00\x01a"])]),
        protocol.frame_batch([b"\x00\x00\x00"] * 20_000),
    ],
)
def test_malformed_batches_are_refused(message: bytes) -> None:
    """An empty, truncated or oversized batch, or a batch inside a batch, raises
    MalformedFrame."""
    with pytest.raises(protocol.MalformedFrame):
        protocol.unpack(message)


def test_classify() -> None:
    """Text and oversized messages are refused; binary ones within the limit pass."""
    assert protocol.classify("x", 10) is protocol.Verdict.TEXT
    assert protocol.classify(bytes(11), 10) is protocol.Verdict.OVERSIZED
    assert protocol.classify(bytes(10), 10) is protocol.Verdict.PACKET


def test_backoff_grows_caps_and_resets() -> None:
    """Without jitter: 0.1, 0.2, 0.4, ... capped; reset starts over."""
    backoff = ReconnectBackoff(initial=0.1, maximum=0.5, jitter=0)
    assert [backoff.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_backoff_jitter_stays_within_its_fraction() -> None:
    """With jitter each delay lies within ±jitter of the schedule, reproducibly per seed."""
    first = ReconnectBackoff(initial=1, maximum=1, jitter=0.2, rng=random.Random(7))
    second = ReconnectBackoff(initial=1, maximum=1, jitter=0.2, rng=random.Random(7))
    delays = [first.next_delay() for _ in range(50)]
    assert delays == [second.next_delay() for _ in range(50)]
    assert all(0.8 <= delay <= 1.2 for delay in delays)
    assert len(set(delays)) > 1


def test_authentication_failed_carries_its_status() -> None:
    """AuthenticationFailed keeps status and reason; a non-error status is refused."""
    error = AuthenticationFailed("no such user", status=403)
    assert (error.status, error.reason) == (403, "no such user")
    with pytest.raises(ValueError, match=r"^status must be an HTTP error status"):
        AuthenticationFailed(status=200)


def test_link_request_headers_and_scope() -> None:
    """Headers are found case-insensitively; scoped names carry the session id."""
    request = LinkRequest("/ws", (("authorization", "Bearer t"),), "127.0.0.1:5", "s3")
    assert request.header("Authorization") == "Bearer t"
    assert request.header("x-missing") is None
    assert request.scoped("assistant") == "s3/assistant"


# --- real sockets ------------------------------------------------------------------------------


class FakeHost:
    """A `LinkHost` that hands each attached link to the test instead of an actor system."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.attached = 0
        self._send, self.links = trio.open_memory_channel[WebSocketLink](10)

    @asynccontextmanager
    async def _attach(self, link: WebSocketLink) -> AsyncIterator[None]:
        self.attached += 1
        await self._send.send(link)
        yield

    def attach_link(
        self,
        link: TransportLink,
        *,
        exports: Sequence[str],
        imports: Sequence[str],
        scope: str | None = None,
    ) -> AbstractAsyncContextManager[None]:
        assert isinstance(link, WebSocketLink)
        return self._attach(link)


async def _serve(
    nursery: trio.Nursery, host: FakeHost, **options: Any
) -> trio_websocket.WebSocketServer:
    server: trio_websocket.WebSocketServer = await nursery.start(_serve_task, host, options)
    return server


async def _serve_task(
    host: FakeHost,
    options: dict[str, Any],
    task_status: trio.TaskStatus[trio_websocket.WebSocketServer],
) -> None:
    await serve_websocket_link(host, host="127.0.0.1", port=0, task_status=task_status, **options)


async def _next_delivery(link: TransportLink) -> Delivery:
    item = await link.receive()
    assert isinstance(item, Delivery), item
    return item


async def test_handshake_exchanges_names_and_packets(nursery: trio.Nursery) -> None:
    """Both sides learn the peer's system and exports; packets cross both ways, addressed or
    broadcast; a clean close is reported crashed=False."""
    server_host, client_host = FakeHost("back"), FakeHost("front")
    server = await _serve(nursery, server_host, exports=("assistant",))
    with trio.fail_after(5):
        async with open_websocket_link(
            client_host, f"ws://127.0.0.1:{server.port}/ws", exports=("voice",)
        ) as client:
            client_link = await client.wait_connected()
            server_link = await server_host.links.receive()
            assert (client_link.peer_system, client_link.peer_exports) == ("back", ("assistant",))
            assert (server_link.peer_system, server_link.peer_exports) == ("front", ("voice",))
            await client_link.send("assistant", b"to the server")
            await server_link.send("voice", b"to the client", control=True)
            await server_link.broadcast(b"news")
            delivery = await _next_delivery(server_link)
            assert (delivery.recipient, delivery.packet) == ("assistant", b"to the server")
            assert (await _next_delivery(client_link)).packet == b"to the client"
            news = await _next_delivery(client_link)
            assert (news.recipient, news.packet) == (None, b"news")
            assert client_link.statistics().sent == 1
        notice = await server_link.receive()
        assert notice == PeerLost("front", crashed=False, reason="goodbye")
        with pytest.raises(trio.EndOfChannel):
            await server_link.receive()


async def test_conformance_checks_that_apply_to_a_point_to_point_link(
    nursery: trio.Nursery,
) -> None:
    """Order (single and batched) and the packet limit hold over a real link (the broadcast,
    name and peer-notice checks need three systems on one bus, which a link is not)."""
    server_host = FakeHost("server")
    server = await _serve(nursery, server_host, max_message_size=2048)
    pending: list[WebSocketLink] = []

    @asynccontextmanager
    async def connect(name: str) -> AsyncIterator[TransportLink]:
        if pending:
            yield pending.pop()
            return
        async with open_websocket_link(
            FakeHost(name), f"ws://127.0.0.1:{server.port}/", max_message_size=2048
        ) as client:
            pending.append(await server_host.links.receive())
            yield await client.wait_connected()

    with trio.fail_after(10):
        await check_order(connect)
        await check_oversized_packet(connect, max_packet_size=2048)


def raw_client(url: str) -> AbstractAsyncContextManager[trio_websocket.WebSocketConnection]:
    """A plain WebSocket client, on a stream that is closed whatever happens (trio-websocket's
    `open_websocket_url` leaks the socket when the server closes first)."""
    return _open_client_connection(url, None, [], 10**7)


async def test_concurrent_senders_keep_their_order_and_batch(nursery: trio.Nursery) -> None:
    """Many tasks sending at once (written directly or batched by the writer): each one's
    packets arrive in its order."""
    host = FakeHost("back")
    server = await _serve(nursery, host)
    with trio.fail_after(10):
        async with open_websocket_link(
            FakeHost("front"), f"ws://127.0.0.1:{server.port}/"
        ) as client:
            link = await client.wait_connected()
            server_link = await host.links.receive()

            async def sender(lane: int) -> None:
                for index in range(100):
                    await link.send("sink", f"{lane}:{index}".encode())

            async with trio.open_nursery() as senders:
                for lane in range(10):
                    senders.start_soon(sender, lane)
            seen: dict[str, list[int]] = {}
            for _ in range(1000):
                packet = (await _next_delivery(server_link)).packet
                assert isinstance(packet, bytes)
                name, number = packet.decode().split(":")
                seen.setdefault(name, []).append(int(number))
            assert all(indexes == list(range(100)) for indexes in seen.values())
            assert len(seen) == 10
            assert link.statistics().sent == 1000


async def _raw_hello(
    connection: trio_websocket.WebSocketConnection, *, version: int = protocol.LINK_VERSION
) -> None:
    await connection.send_message(protocol.encode_hello("raw", ("raw",), version=version))


async def test_version_mismatch_is_refused_on_both_sides(nursery: trio.Nursery) -> None:
    """A server closes on a hello of another version with its code and reason; a client that
    meets a server of another version raises LinkVersionMismatch."""
    host = FakeHost("back")
    server = await _serve(nursery, host)
    with trio.fail_after(5):
        async with raw_client(f"ws://127.0.0.1:{server.port}/") as raw:
            await _raw_hello(raw, version=99)
            await raw.get_message()  # the server's hello
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await raw.get_message()
        assert closed.value.reason is not None
        assert closed.value.reason.code == protocol.CLOSE_VERSION_MISMATCH
        assert "version mismatch" in (closed.value.reason.reason or "")
    assert host.attached == 0

    async def old_server(request: trio_websocket.WebSocketRequest) -> None:
        connection = await request.accept()
        await _raw_hello(connection, version=99)
        with trio.move_on_after(2), contextlib.suppress(trio_websocket.ConnectionClosed):
            await connection.get_message()
            await connection.get_message()

    old: trio_websocket.WebSocketServer = await nursery.start(
        trio_websocket.serve_websocket, old_server, "127.0.0.1", 0, None
    )
    with trio.fail_after(5), pytest.raises(LinkVersionMismatch) as caught:
        async with open_websocket_link(FakeHost("front"), f"ws://127.0.0.1:{old.port}/"):
            pass
    assert caught.value.peer == 99


async def test_text_oversized_and_malformed_frames_are_counted_and_skipped(
    nursery: trio.Nursery,
) -> None:
    """Text, oversized and headerless messages are refused and counted; the packet after them
    still arrives on the same link."""
    host = FakeHost("back")
    server = await _serve(nursery, host, max_message_size=1000)
    with trio.fail_after(5):
        async with raw_client(f"ws://127.0.0.1:{server.port}/") as raw:
            await _raw_hello(raw)
            await raw.get_message()
            link = await host.links.receive()
            await raw.send_message("a text frame")
            await raw.send_message(protocol.frame_packet("x", bytes(1001)))
            await raw.send_message(b"\x09")
            await raw.send_message(protocol.frame_packet("x", b"fine"))
            await raw.send_message(
                protocol.frame_batch(
                    [protocol.frame_packet("x", b"one"), protocol.frame_packet(None, b"two")]
                )
            )
            delivery = await _next_delivery(link)
            assert (delivery.recipient, delivery.packet) == ("x", b"fine")
            assert (await _next_delivery(link)).packet == b"one"
            assert (await _next_delivery(link)).packet == b"two"
            statistics = link.statistics()
            assert (statistics.text_refused, statistics.oversized_refused) == (1, 1)
            assert (statistics.malformed_refused, statistics.received) == (1, 3)


@pytest.mark.parametrize(("verdict", "status"), [(False, 401), ("raise", 403), ("crash", 500)])
async def test_authentication_refuses_before_any_packet_is_read(
    nursery: trio.Nursery, verdict: object, status: int
) -> None:
    """A client the hook refuses gets 401 (False), the raised status, or 500 when the hook
    itself fails; the system never sees a link; the hook saw the path, headers and address."""
    seen: list[LinkRequest] = []

    async def authenticate(request: LinkRequest) -> bool:
        seen.append(request)
        if request.header("authorization") == "Bearer good":
            return True
        if verdict == "raise":
            raise AuthenticationFailed("wrong token", status=403)
        if verdict == "crash":
            raise RuntimeError("the user database is down")
        return False

    host = FakeHost("back")
    server = await _serve(nursery, host, authenticate=authenticate)
    url = f"ws://127.0.0.1:{server.port}/ws?x=1"
    with trio.fail_after(5):
        with pytest.raises(LinkRejected) as caught:
            async with open_websocket_link(
                FakeHost("front"), url, headers=[("Authorization", "Bearer bad")]
            ):
                pass
        assert caught.value.status == status
        assert host.attached == 0
        assert seen[0].path == "/ws?x=1"
        assert seen[0].remote_address.startswith("127.0.0.1")
        async with open_websocket_link(
            FakeHost("front"), url, headers=[("Authorization", "Bearer good")]
        ) as client:
            await client.wait_connected()
            assert host.attached == 1


async def test_wss_with_a_test_certificate(nursery: trio.Nursery) -> None:
    """A link over TLS: the server's certificate comes from a test CA the client trusts."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    host = FakeHost("back")
    server = await _serve(nursery, host, ssl_context=server_context)
    with trio.fail_after(5):
        async with open_websocket_link(
            FakeHost("front"), f"wss://127.0.0.1:{server.port}/", ssl_context=client_context
        ) as client:
            link = await client.wait_connected()
            server_link = await host.links.receive()
            await link.send("x", b"secret")
            assert (await _next_delivery(server_link)).packet == b"secret"
        # A client that does not trust the test CA fails the TLS handshake.
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", server.port, ssl_context=ssl.create_default_context()
        )
        with pytest.raises(trio.BrokenResourceError):
            await stream.do_handshake()
        await trio.aclose_forcefully(stream)


class FreezingProxy:
    """A TCP proxy that can stop forwarding without closing anything: a peer that hangs."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.frozen = False

    async def serve(self, task_status: trio.TaskStatus[int]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream("127.0.0.1", self.target)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server)
            nursery.start_soon(self._pump, server, client)

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        while True:
            data = await source.receive_some(65536)
            if not data:
                return
            if self.frozen:
                await trio.sleep_forever()
            await sink.send_all(data)


async def test_a_peer_that_stops_answering_is_detected_by_pings(nursery: trio.Nursery) -> None:
    """When the peer hangs (its socket stays open), the client's link reports it lost, crashed,
    within about two ping intervals."""
    host = FakeHost("back")
    server = await _serve(nursery, host, ping_interval=60)
    proxy = FreezingProxy(server.port)
    port = await nursery.start(proxy.serve)
    async with open_websocket_link(
        FakeHost("front"), f"ws://127.0.0.1:{port}/", ping_interval=0.2
    ) as client:
        link = await client.wait_connected()
        proxy.frozen = True
        start = trio.current_time()
        with trio.fail_after(3):
            notice = await link.receive()
        assert isinstance(notice, PeerLost)
        assert notice.crashed is True
        assert "ping" in (notice.reason or "")
        assert trio.current_time() - start < 1.0
