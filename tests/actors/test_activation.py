"""Activation, handoff, bridges and readiness watches."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from actors import ActorNotFound, ActorSystem, Envelope
from actors.testing import open_test_system
from transports import MemoryTransport

from actor_support import Note, Recorder


class Frame(msgspec.Struct, frozen=True):
    n: int


class Reply(msgspec.Struct, frozen=True):
    by: str
    n: int


class Agent(Recorder):
    """A bridged agent: records frames, answers each, and hands off on request."""

    def __init__(self, name: str, log: list[str], **options: Any) -> None:
        super().__init__(name, log, bridged=("voice",), **options)
        self.frames: list[int] = []

    async def on_frame(self, frame: Any, bridge: str) -> None:
        self.frames.append(frame.n)
        self._record(f"{self.name}:frame:{frame.n}")
        await self.send_frame(Reply(by=self.name, n=frame.n))

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        await self.handoff_to(envelope.body.text, args={"from": self.name})


async def test_activation_is_idempotent_and_redelivers_only_if_asked(
    actor_system: ActorSystem,
) -> None:
    """Activating an active actor is a no-op unless redeliver=True; deactivating twice too."""
    log: list[str] = []
    target = await actor_system.spawn(Recorder("t", log, active=False))
    boss = await actor_system.spawn(Recorder("boss", []))
    assert not target.active and target.activation_args is None
    await boss.activate_agent("t", args={"n": 1})
    await target.wait_until(lambda: target.active)
    await boss.activate_agent("t", args={"n": 2})
    await boss.activate_agent("t", args={"n": 3}, redeliver=True)
    await target.wait_until(lambda: target.activation_args == {"n": 3})
    await boss.deactivate_agent("t")
    await boss.deactivate_agent("t")
    await target.wait_until(lambda: not target.active)
    await boss.send_message("t", Note("sync"))
    await target.wait_until(lambda: target.messages)
    assert [e for e in log if "activ" in e] == ["t:activated", "t:activated", "t:deactivated"]
    assert target.activation_args is None
    assert actor_system.registry.get("t").active is False  # type: ignore[union-attr]


async def test_activating_an_unknown_actor_raises(actor_system: ActorSystem) -> None:
    """activate_agent and handoff_to a name nobody holds raise ActorNotFound."""
    boss = await actor_system.spawn(Recorder("boss"))
    with pytest.raises(ActorNotFound):
        await boss.activate_agent("nobody")
    with pytest.raises(ActorNotFound):
        await boss.handoff_to("nobody")
    assert boss.active


async def test_handoff_moves_frames_in_order_to_the_active_agent_only(
    actor_system: ActorSystem,
) -> None:
    """Across a handoff exactly one agent is active and frames arrive in order, to it alone."""
    log: list[str] = []
    greeter = await actor_system.spawn(Agent("greeter", log))
    support = await actor_system.spawn(Agent("support", log, active=False))
    director = await actor_system.spawn(Recorder("director"))
    async with actor_system.open_bridge("voice") as bridge:
        for n in range(5):
            await bridge.send(Frame(n))
        await greeter.wait_until(lambda: len(greeter.frames) == 5)
        await director.send_message("greeter", Note("support"))
        for n in range(5, 10):
            await bridge.send(Frame(n))
        await support.wait_until(lambda: len(support.frames) == 5)
        replies = [await bridge.receive() for _ in range(10)]
    assert greeter.frames == [0, 1, 2, 3, 4]
    assert support.frames == [5, 6, 7, 8, 9]
    assert [r.n for r in replies] == list(range(10))
    assert {r.by for r in replies[:5]} == {"greeter"}
    assert (greeter.active, support.active) == (False, True)
    assert support.activation_args == {"from": "greeter"}
    # Never two active at once: greeter deactivated before support activated.
    assert log.index("greeter:deactivated") < log.index("support:activated")


async def test_frames_wait_while_no_agent_is_active(actor_system: ActorSystem) -> None:
    """Frames sent while no bridged agent is active wait for the next activation, in order."""
    log: list[str] = []
    agent = await actor_system.spawn(Agent("late", log, active=False))
    boss = await actor_system.spawn(Recorder("boss"))
    async with actor_system.open_bridge("voice", capacity=8) as bridge:
        for n in range(8):
            await bridge.send(Frame(n))
        with pytest.raises(trio.WouldBlock):
            bridge.send_nowait(Frame(99))
        await trio.testing.wait_all_tasks_blocked()
        assert agent.frames == []
        await boss.activate_agent("late")
        await agent.wait_until(lambda: len(agent.frames) == 8)
    assert agent.frames == list(range(8))


async def test_frames_handed_back_by_an_inactive_agent_are_not_lost(
    actor_system: ActorSystem,
) -> None:
    """Frames that reach an agent after it deactivated go back and on to the next owner."""
    log: list[str] = []
    first = await actor_system.spawn(Agent("first", log))
    second = await actor_system.spawn(Agent("second", log, active=False))
    async with actor_system.open_bridge("voice") as bridge:
        # The switch happens synchronously while frames are still queued for "first".
        for n in range(20):
            bridge.send_nowait(Frame(n))
        await first.deactivate_agent("first")
        await first.activate_agent("second")
        await second.wait_until(lambda: len(first.frames) + len(second.frames) == 20)
    assert first.frames + second.frames == list(range(20))


async def test_bridge_across_systems(strict_transport: MemoryTransport) -> None:
    """A bridge opened in one system drives an agent living in another."""
    async with open_test_system("agents", transport=strict_transport) as agents:
        agent = await agents.spawn(Agent("remote", []))
        async with open_test_system("edge", transport=strict_transport) as edge:
            await edge.registry.wait_ready("remote")
            async with edge.open_bridge("voice") as bridge:
                await bridge.send(Frame(7))
                reply = await bridge.receive()
    assert agent.frames == [7]
    assert reply == Reply(by="remote", n=7)


async def test_watch_fires_once_later_and_at_once_when_ready(actor_system: ActorSystem) -> None:
    """watch_agent fires exactly once for an actor that appears later, at once if ready."""
    watcher = await actor_system.spawn(Recorder("watcher"))
    await actor_system.spawn(Recorder("early"))
    await watcher.watch_agent("early")
    await watcher.wait_until(lambda: len(watcher.agent_ready) == 1)
    await watcher.watch_agent("later")
    await trio.testing.wait_all_tasks_blocked()
    assert [i.name for i in watcher.agent_ready] == ["early"]
    await actor_system.spawn(Recorder("later"))
    await watcher.wait_until(lambda: len(watcher.agent_ready) == 2)
    await trio.testing.wait_all_tasks_blocked()
    assert [i.name for i in watcher.agent_ready] == ["early", "later"]


async def test_watch_sees_remote_actor(strict_transport: MemoryTransport) -> None:
    """watch_agent fires for an actor that appears in another system."""
    async with open_test_system("a", transport=strict_transport) as a:
        watcher = await a.spawn(Recorder("watcher"))
        await watcher.watch_agent("far")
        async with open_test_system("b", transport=strict_transport) as b:
            await b.spawn(Recorder("far"))
            await watcher.wait_until(lambda: watcher.agent_ready)
    assert watcher.agent_ready[0].system == "b"


async def test_watches_are_released(actor_system: ActorSystem) -> None:
    """A cancelled watch never fires, and a finished actor's watches are released."""
    watcher = await actor_system.spawn(Recorder("watcher"))
    with await watcher.watch_agent("x"):
        assert actor_system.registry.watch_count() == 1
    assert actor_system.registry.watch_count() == 0
    await watcher.watch_agent("y")
    await watcher.end()
    assert actor_system.registry.watch_count() == 0


async def test_parent_is_told_when_a_child_is_ready(actor_system: ActorSystem) -> None:
    """A parent's on_agent_ready fires for each child it adds."""
    parent = await actor_system.spawn(Recorder("parent"))
    await parent.add_child(Recorder("kid"))
    await parent.wait_until(lambda: parent.agent_ready)
    assert parent.agent_ready[0].name == "kid"
    assert parent.agent_ready[0].parent == "parent"


async def test_send_error_reaches_parent(actor_system: ActorSystem) -> None:
    """send_error from a child arrives in the parent's on_agent_error, not fatal."""
    parent = await actor_system.spawn(Recorder("parent"))
    child = await parent.add_child(Recorder("kid"))
    await child.send_error("disk almost full")
    await parent.wait_until(lambda: parent.agent_errors)
    error = parent.agent_errors[0]
    assert (error.name, error.error, error.fatal) == ("kid", "disk almost full", False)


async def test_broadcast_message_reaches_every_other_actor(actor_system: ActorSystem) -> None:
    """send_message(None, ...) reaches every actor but the sender."""
    actors = [await actor_system.spawn(Recorder(n)) for n in ("a", "b", "c")]
    await actors[0].send_message(None, Note("all"))
    for actor in actors[1:]:
        await actor.wait_until(lambda actor=actor: actor.messages)
    await trio.testing.wait_all_tasks_blocked()
    assert [a.messages for a in actors] == [[], [Note("all")], [Note("all")]]


async def test_frames_in_flight_to_a_crashed_agent_reach_the_next_one(
    actor_system: ActorSystem,
) -> None:
    """An agent crashing mid-conversation loses no frame: the rest go to the next owner."""

    class Fragile(Agent):
        async def on_frame(self, frame: Any, bridge: str) -> None:
            if frame.n == 3:
                raise RuntimeError("crashed on frame 3")
            await super().on_frame(frame, bridge)

    log: list[str] = []
    fragile = await actor_system.spawn(Fragile("fragile", log))
    backup = await actor_system.spawn(Agent("backup", log, active=False))
    boss = await actor_system.spawn(Recorder("boss"))
    async with actor_system.open_bridge("voice") as bridge:
        for n in range(8):
            bridge.send_nowait(Frame(n))
        await fragile._finished_event.wait()
        await boss.activate_agent("backup")
        await backup.wait_until(lambda: backup.frames and backup.frames[-1] == 7)
    assert fragile.frames == [0, 1, 2]
    # At-least-once: the frame that crashed its handler is delivered again, to the new owner.
    assert backup.frames == [3, 4, 5, 6, 7]
