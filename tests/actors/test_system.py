"""The actor system's routing: strict mode, transports, malformed input, lost peers."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from actors import ActorSystem, EncodeError, open_actor_system
from actors.testing import capture, open_test_system, wait_ready
from transports import MemoryTransport

from actor_support import Note, Recorder


class Carrier(msgspec.Struct, frozen=True):
    value: Any


async def test_strict_mode_refuses_what_cannot_cross_a_process(actor_system: ActorSystem) -> None:
    """In strict mode a payload msgspec cannot encode fails at send time, locally too."""
    sender = await actor_system.spawn(Recorder("sender"))
    await actor_system.spawn(Recorder("target"))
    with pytest.raises(EncodeError, match="cannot encode envelope"):
        await sender.send_message("target", Carrier(object()))


async def test_the_default_system_is_strict() -> None:
    """By default every envelope round-trips through the codec (DESIGN 12): the recipient
    gets an equal copy, never the sender's object."""
    async with open_actor_system("isolated") as system:
        assert system.strict
        target = await system.spawn(Recorder("target"))
        sender = await system.spawn(Recorder("sender"))
        note = Note("copied")
        await sender.send_message("target", note)
        await target.wait_until(lambda: target.messages)
    assert target.messages[0] == note
    assert target.messages[0] is not note


async def test_non_strict_mode_passes_objects_locally() -> None:
    """With strict=False (the documented opt-out) local delivery shares the same object."""
    async with open_actor_system("plain", transport=MemoryTransport(strict=False)) as system:
        assert not system.strict
        target = await system.spawn(Recorder("target"))
        sender = await system.spawn(Recorder("sender"))
        note = Note("same")
        await sender.send_message("target", note)
        await target.wait_until(lambda: target.messages)
    assert target.messages[0] is note


async def test_strict_mode_delivers_a_decoded_copy(actor_system: ActorSystem) -> None:
    """In strict mode the recipient gets an equal copy that went through the codec."""
    target = await actor_system.spawn(Recorder("target"))
    sender = await actor_system.spawn(Recorder("sender"))
    note = Note("copy")
    await sender.send_message("target", note)
    await target.wait_until(lambda: target.messages)
    assert target.messages[0] == note and target.messages[0] is not note


async def test_malformed_bytes_are_reported_and_the_loop_goes_on(
    strict_transport: MemoryTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage from the transport is logged and counted, and later messages still arrive."""
    async with open_test_system("receiver", transport=strict_transport) as receiver:
        target = await receiver.spawn(Recorder("target"))
        recorded = capture(target)
        async with open_test_system("sender", transport=strict_transport) as sender_system:
            sender = await sender_system.spawn(Recorder("sender"))
            async with strict_transport.connect("rogue") as rogue:
                with caplog.at_level(logging.WARNING, logger="actors._runtime.system"):
                    await rogue.send("target", b"\xc1 not msgpack")
                    await rogue.send("target", b"\x93\x02\x01\x02")
                    await sender.send_message("target", Note("after"))
                    await recorded.wait_for(1)
    assert recorded.messages == [Note("after")]
    assert receiver.statistics().decode_errors == 2
    reasons = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(reasons) == 2
    assert "unsupported protocol version 2" in reasons[1]


async def test_messages_cross_systems_on_a_shared_transport(
    strict_transport: MemoryTransport,
) -> None:
    """An actor messages an actor of another system by name, and gets an answer."""

    class Echo(Recorder):
        async def on_message(self, envelope: Any) -> None:
            await super().on_message(envelope)
            await self.send_message(envelope.sender, Note(envelope.body.text.upper()))

    async with open_test_system("one", transport=strict_transport) as one:
        await one.spawn(Echo("echo"))
        async with open_test_system("two", transport=strict_transport) as two:
            client = await two.spawn(Recorder("client"))
            await wait_ready(two, "echo")
            await client.send_message("echo", Note("hi"))
            await client.wait_until(lambda: client.messages)
    assert client.messages == [Note("HI")]


async def test_registry_learns_of_peers_and_forgets_them(strict_transport: MemoryTransport) -> None:
    """A joining system learns existing actors; a leaving system's actors are forgotten."""
    async with open_test_system("one", transport=strict_transport) as one:
        await one.spawn(Recorder("old"))
        async with open_test_system("two", transport=strict_transport) as two:
            infos = await wait_ready(two, "old")
            assert infos[0].system == "one"
            await two.spawn(Recorder("new"))
            await one.registry.wait_ready("new")
        await trio.testing.wait_all_tasks_blocked()
        assert "new" not in one.registry
        assert one.registry.names() == ["old"]


async def test_system_names_are_unique_on_a_transport(strict_transport: MemoryTransport) -> None:
    """A second system with the same name on one transport is refused."""
    from transports import SystemNameTaken

    async with open_test_system("same", transport=strict_transport):
        with pytest.raises(SystemNameTaken):
            async with open_test_system("same", transport=strict_transport):
                pass  # pragma: no cover


async def test_spawn_after_end_is_refused(actor_system: ActorSystem) -> None:
    """Once the system is ending, spawning a new actor raises ActorStateError."""
    from actors import ActorStateError

    actor_system.end()
    with pytest.raises(ActorStateError, match="closed to new actors"):
        await actor_system.spawn(Recorder("late"))


async def test_urgent_messages_go_ahead_of_queued_ones(actor_system: ActorSystem) -> None:
    """An urgent message overtakes queued ones; each lane keeps its own order."""
    release = trio.Event()

    class Busy(Recorder):
        async def on_message(self, envelope: Any) -> None:
            if envelope.body.text == "block":
                await release.wait()
            await super().on_message(envelope)

    target = await actor_system.spawn(Busy("target"))
    sender = await actor_system.spawn(Recorder("sender"))
    await sender.send_message("target", Note("block"))
    await trio.testing.wait_all_tasks_blocked()
    for text in ("n1", "n2"):
        await sender.send_message("target", Note(text))
    for text in ("u1", "u2"):
        await sender.send_message("target", Note(text), urgent=True)
    release.set()
    await target.wait_until(lambda: len(target.messages) == 5)
    assert [m.text for m in target.messages] == ["block", "u1", "u2", "n1", "n2"]
