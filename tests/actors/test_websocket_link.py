"""Actor systems joined by the WebSocket link, over real sockets on 127.0.0.1.

The filtering tests put a real actor system on one end and a bare link on the other (the test
plays the peer and sends what it likes), on the client side and on the server side in turn:
the eleven cases of the reference proxy's own tests, a forged sender, a foreign cancel.
"""

from __future__ import annotations

import functools
import itertools
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio_websocket

from actors import (
    Actor,
    ActorNotFound,
    ActorSystem,
    Envelope,
    EnvelopeCodec,
    JobError,
    JobEventType,
    JobRequest,
    JobStatus,
    job,
    open_actor_system,
)
from actors._wire.envelope import JobCancel, JobRequestMessage, JobResponseMessage
from actors.testing import capture, wait_ready
from transports import (
    Delivery,
    TransportLink,
    WebSocketLink,
    open_websocket_link,
    serve_websocket_link,
)
from transports import _websocket_protocol as protocol
from transports._websocket import _open_client_connection


class Note(msgspec.Struct, frozen=True):
    """A user message."""

    text: str


class Worker(Actor):
    """Answers jobs with updates and a stream; `slow` jobs wait until cancelled."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.started = trio.Event()
        self.cancelled: list[str] = []

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        await self.send_job_update(request.job_id, {"progress": 50})
        return {"echo": request.payload, "by": self.name}

    @job(name="stream")
    async def stream(self, request: JobRequest[Any]) -> None:
        await self.send_job_stream_start(request.job_id, "start")
        for index in range(3):
            await self.send_job_stream_data(request.job_id, index)
        await self.send_job_stream_end(request.job_id, "end")

    @job(name="flood")
    async def flood(self, request: JobRequest[Any]) -> None:
        await self.send_job_stream_start(request.job_id, None)
        for _ in range(10_000):
            await self.send_job_stream_data(request.job_id, "x" * 10_000)

    @job(name="slow")
    async def slow(self, request: JobRequest[Any]) -> Any:
        self.started.set()
        try:
            await trio.sleep_forever()
        finally:
            self.cancelled.append(request.job_id)


async def _serve(
    nursery: trio.Nursery, system: Any, **options: Any
) -> trio_websocket.WebSocketServer:
    async def run(task_status: trio.TaskStatus[trio_websocket.WebSocketServer]) -> None:
        await serve_websocket_link(
            system, host="127.0.0.1", port=0, task_status=task_status, **options
        )

    server: trio_websocket.WebSocketServer = await nursery.start(run)
    return server


# --- jobs both ways ----------------------------------------------------------------------------


async def test_jobs_cross_both_ways_with_updates_streams_and_cancellation(
    nursery: trio.Nursery,
) -> None:
    """Each side runs jobs on the other's exported worker: updates, streams, a cancel that
    reaches the remote handler; readiness of imported actors is reported as for local ones."""
    async with open_actor_system("back") as back, open_actor_system("front") as front:
        assistant = await back.spawn(Worker("assistant"))
        await back.spawn(Worker("helper"))
        voice = await front.spawn(Worker("voice"))
        server = await _serve(nursery, back, exports=["assistant", "helper"], imports=["voice"])
        async with open_websocket_link(
            front,
            f"ws://127.0.0.1:{server.port}/ws",
            exports=["voice"],
            imports=["assistant", "helper"],
        ):
            with trio.fail_after(10):
                await wait_ready(front, "assistant")
                await wait_ready(back, "voice")
                assert front.registry.get("assistant").system == "back"  # type: ignore[union-attr]
                async with front.job("assistant", payload=1) as single:
                    events = [(event.type, event.data) async for event in single]
                assert events == [(JobEventType.UPDATE, {"progress": 50})]
                assert single.response == {"echo": 1, "by": "assistant"}
                async with back.job("voice", name="stream") as streamed:
                    chunks = [event.data async for event in streamed]
                assert chunks == ["start", 0, 1, 2, "end"]
                assert streamed.status is JobStatus.COMPLETED
                with pytest.raises(JobError, match="CANCELLED"):
                    async with front.job("assistant", name="slow") as slow:
                        await assistant.started.wait()
                        await front.cancel_job(slow.job_id)
                with trio.fail_after(2):
                    await _eventually(lambda: bool(assistant.cancelled))
                async with front.job_group("assistant", "helper", payload=2) as group:
                    pass
                assert group.statuses == {
                    "assistant": JobStatus.COMPLETED,
                    "helper": JobStatus.COMPLETED,
                }
                assert group.responses["helper"] == {"echo": 2, "by": "helper"}
        assert voice.cancelled == []
        assert back.statistics().hostile == 0
        assert front.statistics().hostile == 0


# --- filtering: a real system on one end, the test on the other ---------------------------------


class PeerHost:
    """Plays the peer: takes the raw link the serve/open functions hand over."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._send, self.links = trio.open_memory_channel[WebSocketLink](4)

    @asynccontextmanager
    async def _attach(self, link: WebSocketLink) -> AsyncIterator[None]:
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


class Sides:
    """A system exporting ``local`` and importing ``remote``, and the test's raw peer link."""

    def __init__(self, system: ActorSystem, peer: WebSocketLink) -> None:
        self.system = system
        self.peer = peer
        self.codec = EnvelopeCodec()
        self.ids = iter(range(1, 10**6))

    async def inject(self, sender: str, recipient: str, body: Any, **header: Any) -> None:
        envelope = Envelope(
            id=f"peer-{next(self.ids)}", sender=sender, recipient=recipient, body=body, **header
        )
        await self.peer.send(recipient, self.codec.encode(envelope))

    async def crossed(self, wait: float = 0.3) -> list[Envelope]:
        """Addressed envelopes and user broadcasts that reached the peer within `wait`."""
        found: list[Envelope] = []
        with trio.move_on_after(wait):
            while True:
                item = await self.peer.receive()
                assert isinstance(item, Delivery), item
                assert isinstance(item.packet, bytes)
                envelope = self.codec.decode(item.packet)
                if item.recipient is None and type(envelope.body).__name__ == "AgentReady":
                    continue  # the exported actor's announcement
                found.append(envelope)
        return found


@pytest.fixture(params=["client", "server"])
async def sides(request: pytest.FixtureRequest, nursery: trio.Nursery) -> AsyncIterator[Sides]:
    """The system under test is the link's client, or its server."""
    peer = PeerHost("peer")
    async with open_actor_system("home") as system:
        if request.param == "server":
            server = await _serve(nursery, system, exports=["local"], imports=["remote"])
            async with open_websocket_link(
                peer, f"ws://127.0.0.1:{server.port}/", exports=["remote"]
            ) as client:
                yield Sides(system, await client.wait_connected())
        else:
            server = await _serve(nursery, peer, exports=["remote"])
            async with open_websocket_link(
                system, f"ws://127.0.0.1:{server.port}/", exports=["local"], imports=["remote"]
            ):
                yield Sides(system, await peer.links.receive())


async def _eventually(predicate: Callable[[], bool]) -> None:
    """Poll until `predicate()` holds (the caller bounds it with `fail_after`)."""
    for _ in itertools.count():
        if predicate():
            return
        await trio.sleep(0.01)


async def _spawn_pair(system: ActorSystem) -> tuple[Actor, Actor]:
    local = await system.spawn(Worker("local"))
    other = await system.spawn(Worker("other_local"))
    return local, other


async def test_forwards_targeted_messages(sides: Sides) -> None:
    """(1, 7) A message from an exported actor to an imported one crosses, names intact."""
    local, _ = await _spawn_pair(sides.system)
    await local.send_message("remote", Note("hi"))
    [envelope] = await sides.crossed()
    assert (envelope.sender, envelope.recipient, envelope.body) == ("local", "remote", Note("hi"))


async def test_skips_messages_for_other_actors(sides: Sides) -> None:
    """(2, 9) A message to a name that is not imported never crosses."""
    local, _ = await _spawn_pair(sides.system)
    with pytest.raises(ActorNotFound):
        await local.send_message("elsewhere", Note("lost"))
    assert await sides.crossed() == []


async def test_skips_broadcasts(sides: Sides) -> None:
    """(3) A user broadcast reaches local actors only."""
    local, other = await _spawn_pair(sides.system)
    received = capture(other)
    await local.send_message(None, Note("all"))
    assert await sides.crossed() == []
    assert received.messages == [Note("all")]


async def test_skips_local_messages(sides: Sides) -> None:
    """(4) Traffic between two local actors stays local."""
    local, other = await _spawn_pair(sides.system)
    received = capture(other)
    await local.send_message("other_local", Note("here"))
    assert await sides.crossed() == []
    assert received.messages == [Note("here")]


async def test_skips_messages_from_actors_not_exported(sides: Sides) -> None:
    """(8) A local actor that is not exported cannot reach an imported one."""
    _, other = await _spawn_pair(sides.system)
    with pytest.raises(ActorNotFound):
        await other.send_message("remote", Note("not mine"))
    assert await sides.crossed() == []


async def test_accepts_inbound_for_exported_actors(sides: Sides) -> None:
    """(5, 10) A peer's message from an exported sender to an exported actor arrives."""
    local, _ = await _spawn_pair(sides.system)
    received = capture(local)
    await sides.inject("remote", "local", Note("welcome"))
    with trio.fail_after(2):
        await received.wait_for(1)
    [envelope] = received.envelopes
    assert envelope.sender == "remote"
    assert sides.system.statistics().hostile == 0


async def test_drops_inbound_for_actors_not_exported(sides: Sides) -> None:
    """(6, 11) A peer's message to a local actor that is not exported is dropped and counted."""
    _, other = await _spawn_pair(sides.system)
    received = capture(other)
    await sides.inject("remote", "other_local", Note("sneaky"))
    with trio.fail_after(2):
        await _eventually(lambda: sides.system.statistics().hostile >= 1)
    assert received.messages == []


async def test_a_forged_sender_is_dropped_and_reported(
    sides: Sides, caplog: pytest.LogCaptureFixture
) -> None:
    """An envelope claiming a sender the peer does not export never reaches the actor; it is
    counted as hostile and logged."""
    local, _ = await _spawn_pair(sides.system)
    received = capture(local)
    await sides.inject("other_local", "local", Note("forged"))
    await sides.inject("remote", "local", Note("genuine"))
    with trio.fail_after(2):
        await received.wait_for(1)
    assert received.messages == [Note("genuine")]
    assert sides.system.statistics().hostile == 1
    assert "which the peer does not export" in caplog.text


async def test_peer_broadcasts_do_not_cross_in(sides: Sides) -> None:
    """A peer's user broadcast, or an announcement of an actor it does not export, is
    dropped and counted; nothing local hears it."""
    local, _ = await _spawn_pair(sides.system)
    received = capture(local)
    envelope = Envelope(id="b1", sender="peer", recipient=None, body=Note("to all"))
    await sides.peer.broadcast(sides.codec.encode(envelope))
    with trio.fail_after(2):
        await _eventually(lambda: sides.system.statistics().hostile >= 1)
    assert received.messages == []


async def test_a_peer_cancels_only_jobs_it_requested(sides: Sides) -> None:
    """A cancel from another sender than the job's requester is dropped (and counted); the
    requester's own cancel works."""
    local, _ = await _spawn_pair(sides.system)
    assert isinstance(local, Worker)
    await sides.inject("remote", "local", JobRequestMessage(name="slow"), job_id="j1")
    with trio.fail_after(2):
        await local.started.wait()
    await sides.inject("system:peer", "local", JobCancel(reason="not yours"), job_id="j1")
    with trio.fail_after(2):
        await _eventually(lambda: sides.system.statistics().hostile >= 1)
    assert local.cancelled == []
    await sides.inject("remote", "local", JobCancel(reason="mine"), job_id="j1")
    answers = [envelope for envelope in await sides.crossed(0.5) if envelope.job_id == "j1"]
    assert [type(envelope.body) for envelope in answers] == [JobResponseMessage]
    assert answers[0].body.status is JobStatus.CANCELLED
    assert answers[0].recipient == "remote"
    assert local.cancelled == ["j1"]


# --- the link drops, and comes back -------------------------------------------------------------


SERVER_SCRIPT = Path(__file__).with_name("link_server_process.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _server_process(port: int) -> AsyncIterator[trio.Process]:
    """Run the link server in a process of its own until it says it listens."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                [sys.executable, str(SERVER_SCRIPT), str(port)],
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        assert process.stdout is not None
        with trio.fail_after(20):
            line = b""
            while b"ready" not in line:
                chunk = await process.stdout.receive_some(100)
                assert chunk, "the server process exited before it was ready"
                line += chunk
        try:
            yield process
        finally:
            process.kill()


async def test_server_process_killed_mid_job_fails_the_job_at_once_then_reconnects() -> None:
    """Killing the server's process mid-job ends the client's job FAILED as soon as the drop
    is seen (not at its timeout); once a new server listens on the port, the client
    reconnects by itself and re-announces, and a job sent while it reconnected succeeds."""
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/"
    async with (
        open_actor_system("front") as front,
        _server_process(port) as first,
        open_websocket_link(front, url, imports=["assistant"]) as client,
    ):
        with trio.fail_after(10):
            await wait_ready(front, "assistant")
            with pytest.raises(JobError, match="FAILED") as caught:
                async with front.job("assistant", name="slow", timeout=60):
                    await trio.sleep(0.2)
                    first.kill()
                    killed_at = trio.current_time()
            assert trio.current_time() - killed_at < 2
            assert caught.value.statuses == {"assistant": JobStatus.FAILED}
            assert "assistant" not in front.registry
        # A job sent while the client reconnects waits (within its deadline) for the
        # assistant to be back, instead of failing.
        responses: list[Any] = []

        async def job_meanwhile() -> None:
            async with front.job("assistant", payload="again", timeout=20) as again:
                pass
            responses.append(again.response)

        async with trio.open_nursery() as waiting:
            waiting.start_soon(job_meanwhile)
            await trio.sleep(0.3)
            assert responses == []
            async with _server_process(port):
                with trio.fail_after(20):
                    await _eventually(lambda: bool(responses))
        assert responses == [{"echo": "again", "by": "assistant"}]
        assert client.connections == 2


# --- sessions ---------------------------------------------------------------------------------

CLIENTS = 98
"""Well-behaved clients beside the junk one and the one that never reads: 100 in all."""


async def test_many_clients_each_with_its_own_session(nursery: trio.Nursery) -> None:
    """A hundred clients on one server: the well-behaved ones each get their own session
    "assistant" (no NameTaken), see only their own, and run jobs; one client sending garbage
    and one never reading do not disturb the others; a session's actors end with its
    connection."""
    sessions: list[str] = []

    async def session(system: ActorSystem, request: Any) -> None:
        sessions.append(request.session_id)
        await system.spawn(Worker(request.scoped("assistant")))

    async with open_actor_system("back") as back:
        server = await _serve(
            nursery, back, exports=["assistant"], imports=["voice"], session_factory=session
        )
        url = f"ws://127.0.0.1:{server.port}/"
        results: dict[int, Any] = {}

        async def client(index: int) -> None:
            async with (
                open_actor_system(f"front{index}") as front,
                open_websocket_link(front, url, exports=["voice"], imports=["assistant"]),
            ):
                await front.spawn(Worker("voice"))
                await wait_ready(front, "assistant")
                for round_ in range(3):
                    async with front.job("assistant", payload=(index, round_)) as j:
                        pass
                results[index] = j.response
                assert sorted(info.name for info in front.registry.agents()) == [
                    "assistant",
                    "voice",
                ]

        async def garbage() -> None:
            # A bad hello ends that connection only.
            async with _open_raw(url) as raw:
                await raw.send_message(b"\x00\x00\x00garbage that is no hello")
                with pytest.raises(trio_websocket.ConnectionClosed):
                    await raw.get_message()
                    await raw.get_message()
            # After a good hello, undecodable packets are counted and the link goes on.
            async with _open_raw(url) as raw:
                await raw.send_message(protocol.encode_hello("junk", ("voice",)))
                await raw.get_message()
                for _ in range(50):
                    await raw.send_message(b"\xff" * 100)
                    await raw.send_message(protocol.frame_packet("assistant", b"\xc1" * 100))
                    await raw.send_message("text")

        async def never_reads() -> None:
            # A real link whose client asks its assistant for a flood of stream data, then
            # never reads: the assistant waits (credits, then TCP), nobody else does.
            async with _open_raw(url) as raw:
                await raw.send_message(protocol.encode_hello("idle", ("voice",)))
                await raw.get_message()
                request = Envelope(
                    id="idle-1",
                    sender="voice",
                    recipient="assistant",
                    body=JobRequestMessage(name="flood"),
                    job_id="flood-1",
                )
                await raw.send_message(
                    protocol.frame_packet("assistant", EnvelopeCodec().encode(request))
                )
                await trio.sleep_forever()

        with trio.fail_after(20):
            async with trio.open_nursery() as clients:
                clients.start_soon(garbage)
                idle = trio.CancelScope()

                async def idle_client() -> None:
                    with idle:
                        await never_reads()

                clients.start_soon(idle_client)
                async with trio.open_nursery() as good:
                    for index in range(CLIENTS):
                        good.start_soon(client, index)
                idle.cancel()
        assert sorted(results) == list(range(CLIENTS))
        assert back.statistics().decode_errors >= 50  # the junk client's packets
        assert all(results[index]["echo"] == [index, 2] for index in range(CLIENTS))
        # Every client with a good hello had a session: the junk one's second connection and
        # the one that never reads too.
        assert len(sessions) == CLIENTS + 2
        names = {results[index]["by"] for index in range(CLIENTS)}
        assert len(names) == CLIENTS
        assert all(name.endswith("/assistant") for name in names)
        with trio.fail_after(5):
            await _eventually(lambda: not any(name.endswith("/assistant") for name in back.actors))


@asynccontextmanager
async def _open_raw(url: str) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    async with _open_client_connection(url, None, [], 10**6) as connection:
        yield connection


async def test_link_lost_notice_reaches_the_system(nursery: trio.Nursery) -> None:
    """A client that closes reports the peer gone, crashed=False, to the server's system."""
    async with open_actor_system("back") as back, open_actor_system("front") as front:
        await front.spawn(Worker("voice"))
        server = await _serve(nursery, back, imports=["voice"])
        async with open_websocket_link(front, f"ws://127.0.0.1:{server.port}/", exports=["voice"]):
            with trio.fail_after(5):
                await wait_ready(back, "voice")
        with trio.fail_after(5):
            await _eventually(lambda: "voice" not in back.registry)


class Watcher(Actor):
    """Watches the remote assistant; records each `on_agent_ready` for it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: list[tuple[str, str]] = []
        self.ready_again = trio.Event()

    async def on_ready(self) -> None:
        await super().on_ready()
        await self.watch_agent("assistant")

    async def on_agent_ready(self, info: Any) -> None:
        await super().on_agent_ready(info)
        if info.name == "assistant":
            self.seen.append((info.name, info.system))
            if len(self.seen) == 2:
                self.ready_again.set()


async def test_watch_agent_fires_for_an_imported_actor_and_again_after_it_restarts(
    nursery: trio.Nursery,
) -> None:
    """`watch_agent` on the client fires when the server's exported actor is announced, and
    again when that actor is replaced by a new instance."""
    async with open_actor_system("back") as back, open_actor_system("front") as front:
        first = await back.spawn(Worker("assistant"))
        server = await _serve(nursery, back, exports=["assistant"])
        watcher = await front.spawn(Watcher("watcher"))
        async with open_websocket_link(
            front, f"ws://127.0.0.1:{server.port}/", imports=["assistant"]
        ):
            with trio.fail_after(5):
                await wait_ready(front, "assistant")
                await _eventually(lambda: bool(watcher.seen))
                assert watcher.seen == [("assistant", "back")]
                await first.cancel()
                await back.spawn(Worker("assistant"))
                await watcher.ready_again.wait()
