"""A fake link server (wsproto on anyio) sends the client what a real one never would.

The client refuses and counts text, malformed, oversized and undecodable messages and forged
announcements, and goes on; it refuses a hello of another link protocol version with the
protocol's close code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
import wsproto
import wsproto.events as events

from actors import EnvelopeCodec
from actors._wire.envelope import AgentInfo, AgentReady, Envelope
from actors.client import open_client
from transports import LinkVersionMismatch
from transports import _websocket_protocol as protocol

pytestmark = pytest.mark.anyio


class FakePeer:
    """The server end of one WebSocket, spoken with wsproto."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.pending: list[events.Event] = []

    async def _events(self) -> None:
        data = await self.stream.receive()
        self.connection.receive_data(data)
        self.pending.extend(self.connection.events())

    async def accept(self) -> None:
        """Read the upgrade request and accept it."""
        while True:
            for event in self.pending:
                if isinstance(event, events.Request):
                    self.pending.remove(event)
                    await self.stream.send(self.connection.send(events.AcceptConnection()))
                    return
            await self._events()

    async def receive(self) -> bytes | str | events.CloseConnection:
        """The next whole message (or the client's close)."""
        parts: list[bytes | str] = []
        while True:
            while self.pending:
                event = self.pending.pop(0)
                if isinstance(event, events.CloseConnection):
                    return event
                if isinstance(event, events.Message):
                    parts.append(event.data)
                    if event.message_finished:
                        if isinstance(event, events.TextMessage):
                            return "".join(str(part) for part in parts)
                        return b"".join(bytes(part) for part in parts)  # type: ignore[arg-type]
            await self._events()

    async def send_in_fragments(self, message: bytes) -> None:
        """Send one binary message as two WebSocket frames."""
        half = len(message) // 2
        for part, last in ((message[:half], False), (message[half:], True)):
            frame = events.BytesMessage(data=part, message_finished=last)
            await self.stream.send(self.connection.send(frame))

    async def answer_close(self) -> None:
        """Wait for the client's goodbye and answer it."""
        while not isinstance(close := await self.receive(), events.CloseConnection):
            pass
        await self.stream.send(self.connection.send(close.response()))

    async def send(self, message: bytes | str) -> None:
        """Send one message, text or binary."""
        event: events.Event = (
            events.TextMessage(data=message)
            if isinstance(message, str)
            else events.BytesMessage(data=message)
        )
        await self.stream.send(self.connection.send(event))


@asynccontextmanager
async def fake_server(handler: Callable[[FakePeer], Awaitable[None]]) -> AsyncIterator[str]:
    """Serve `handler` for each connection on 127.0.0.1; yield the URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            peer = FakePeer(stream)
            await peer.accept()
            await handler(peer)

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, handle)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        yield f"ws://127.0.0.1:{port}/ws"
        tasks.cancel_scope.cancel()


def _announcement(codec: EnvelopeCodec, name: str, system: str) -> bytes:
    envelope = Envelope(
        id=f"fake-{name}-{system}",
        sender=system,
        recipient=None,
        body=AgentReady(info=AgentInfo(name=name, system=system)),
    )
    return protocol.frame_packet(None, codec.encode(envelope))


async def test_garbage_from_the_server_is_refused_counted_and_survived() -> None:
    """Text, a malformed frame, an oversized message, an undecodable packet and a forged
    announcement are each refused; the valid announcements after them are taken (one of them
    sent in two WebSocket frames)."""
    codec = EnvelopeCodec()

    async def misbehave(peer: FakePeer) -> None:
        hello = await peer.receive()
        assert isinstance(hello, bytes)
        assert protocol.decode_hello(hello).exports == ()
        await peer.send(protocol.encode_hello("fake", ("alpha",)))
        await peer.send("a text message")
        await peer.send(b"\x09\x00\x00")
        await peer.send(protocol.frame_packet(None, b"x" * 67_000))
        await peer.send(protocol.frame_packet(None, b"not an envelope"))
        await peer.send(_announcement(codec, "alpha", "another-system"))
        await peer.send(_announcement(codec, "alpha", "fake"))
        await peer.send_in_fragments(_announcement(codec, "beta", "fake"))
        await peer.answer_close()

    with anyio.fail_after(10):
        async with (
            fake_server(misbehave) as url,
            open_client(url, max_message_size=1000) as client,
        ):
            info = await client.wait_ready("alpha")
            assert info.system == "fake"
            assert (await client.wait_ready("beta")).system == "fake"  # sent in two frames
            stats = client.statistics()
            assert (stats.refused, stats.hostile) == (4, 1)
            assert client.connected


async def test_a_hello_of_another_version_is_refused_with_its_close_code() -> None:
    """The client raises LinkVersionMismatch and closes with CLOSE_VERSION_MISMATCH."""
    closes: list[int] = []
    closed = anyio.Event()

    async def other_version(peer: FakePeer) -> None:
        await peer.receive()
        await peer.send(protocol.encode_hello("fake", (), version=protocol.LINK_VERSION + 1))
        close = await peer.receive()
        assert isinstance(close, events.CloseConnection)
        closes.append(close.code)
        closed.set()

    with anyio.fail_after(10):
        async with fake_server(other_version) as url:
            with pytest.raises(LinkVersionMismatch):
                async with open_client(url):
                    pass
            await closed.wait()
    assert closes == [protocol.CLOSE_VERSION_MISMATCH]
