"""Actor lifecycle: hook order, ending, cancelling, crashes, names."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorNotFound,
    ActorStateError,
    ActorSystem,
    Envelope,
    NameTaken,
)
from actors.testing import open_test_system
from transports import MemoryTransport

from actor_support import Note, Recorder


class Crasher(Recorder):
    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        raise ValueError(f"cannot handle {envelope.body.text}")


class Sleeper(Recorder):
    """Handles a message by sleeping forever: it ignores any grace period."""

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        try:
            await trio.sleep_forever()
        finally:
            self.log.append(f"{self.name}:cancelled@{trio.current_time()}")


async def test_ready_before_messages_and_finished_last(actor_system: ActorSystem) -> None:
    """on_ready runs before any message is handled and on_finished runs last."""
    log: list[str] = []
    actor = await actor_system.spawn(Recorder("a", log))
    sender = await actor_system.spawn(Recorder("b", []))
    await sender.send_message("a", Note("one"))
    await sender.send_message("a", Note("two"))
    await actor.wait_until(lambda: len(actor.messages) == 2)
    await actor.end()
    # An actor constructed active is activated once at start; root actors hear of each other.
    assert [entry for entry in log if "agent_ready" not in entry] == [
        "a:ready",
        "a:activated",
        "a:message",
        "a:message",
        "a:finished",
    ]
    assert "a:agent_ready:b" in log
    assert not actor.ready


async def test_messages_queued_before_ready_wait_for_on_ready() -> None:
    """A message sent while on_ready is still running is handled after it returns."""
    log: list[str] = []
    release = trio.Event()

    class Slow(Recorder):
        async def on_ready(self) -> None:
            await release.wait()
            await super().on_ready()

    async with open_test_system() as system, trio.open_nursery() as nursery:
        nursery.start_soon(system.spawn, Slow("slow", log))
        await trio.testing.wait_all_tasks_blocked()
        sender = await system.spawn(Recorder("sender"))
        nursery.start_soon(sender.send_message, "slow", Note("early"))
        await trio.testing.wait_all_tasks_blocked()
        release.set()
        await system.registry.wait_ready("slow")
        actor = system.actors["slow"]
        assert isinstance(actor, Recorder)
        await actor.wait_until(lambda: actor.messages)
    assert [entry for entry in log if "agent_ready" not in entry][:3] == [
        "slow:ready",
        "slow:activated",
        "slow:message",
    ]


async def test_duplicate_name_is_refused(actor_system: ActorSystem) -> None:
    """Registering a live name again fails with NameTaken naming the owner."""
    await actor_system.spawn(Recorder("dup"))
    with pytest.raises(NameTaken, match=r"'dup' is already registered") as caught:
        await actor_system.spawn(Recorder("dup"))
    assert caught.value.name == "dup"
    assert len(actor_system.actors) == 1


async def test_duplicate_name_across_systems_is_refused(strict_transport: MemoryTransport) -> None:
    """A name held by an actor of another system on the same transport cannot be taken."""
    async with open_test_system("one", transport=strict_transport) as one:
        await one.spawn(Recorder("shared"))
        async with open_test_system("two", transport=strict_transport) as two:
            with pytest.raises(NameTaken) as caught:
                await two.spawn(Recorder("shared"))
            assert caught.value.owner == "one"


async def test_name_is_free_again_after_the_actor_ends(actor_system: ActorSystem) -> None:
    """Once an actor has finished its name can be used by a new actor."""
    first = await actor_system.spawn(Recorder("reused"))
    await first.end()
    second = await actor_system.spawn(Recorder("reused"))
    assert second.ready and actor_system.actors["reused"] is second


async def test_instance_cannot_start_twice(actor_system: ActorSystem) -> None:
    """Starting an instance that already ran is refused; a restart needs a fresh instance."""
    actor = await actor_system.spawn(Recorder("once"))
    await actor.end()
    with pytest.raises(ActorStateError, match="already started"):
        await actor_system.spawn(actor)


async def test_send_to_unknown_actor_raises(actor_system: ActorSystem) -> None:
    """Sending to a name nobody holds raises ActorNotFound listing the known names."""
    sender = await actor_system.spawn(Recorder("sender"))
    with pytest.raises(ActorNotFound, match=r"^no actor named 'ghost' is registered") as caught:
        await sender.send_message("ghost", Note("hi"))
    assert caught.value.name == "ghost"
    assert "sender" in caught.value.known


async def test_message_must_be_a_frozen_struct(actor_system: ActorSystem) -> None:
    """Mutable or non-Struct messages are refused with a clear TypeError."""
    import msgspec

    class Mutable(msgspec.Struct):
        x: int

    sender = await actor_system.spawn(Recorder("sender"))
    await actor_system.spawn(Recorder("target"))
    with pytest.raises(TypeError, match="frozen=True"):
        await sender.send_message("target", Mutable(1))
    with pytest.raises(TypeError, match=r"msgspec\.Struct"):
        await sender.send_message("target", {"x": 1})  # type: ignore[arg-type]


async def test_crash_reaches_parent_and_siblings_keep_running(actor_system: ActorSystem) -> None:
    """A crashing child stops, its parent hears of it, and its sibling still works."""
    parent = await actor_system.spawn(Recorder("parent"))
    crasher = await parent.add_child(Crasher("crasher"))
    sibling = await parent.add_child(Recorder("sibling"))
    await parent.send_message("crasher", Note("boom"))
    await parent.wait_until(lambda: parent.agent_errors)
    error = parent.agent_errors[0]
    assert (error.name, error.fatal) == ("crasher", True)
    assert error.error == "ValueError: cannot handle boom"
    assert "crasher:finished" in crasher.log
    assert [child.name for child in parent.children] == ["sibling"]
    await parent.send_message("sibling", Note("still there?"))
    await sibling.wait_until(lambda: sibling.messages)
    assert sibling.messages == [Note("still there?")]
    assert "crasher" not in actor_system.registry


async def test_crash_calls_on_error_fatal_before_finished(actor_system: ActorSystem) -> None:
    """A crashing actor's own on_error(fatal=True) runs, then on_finished."""
    calls: list[tuple[str, bool]] = []

    class Reporting(Crasher):
        async def on_error(self, error: str, fatal: bool) -> None:
            calls.append((error, fatal))

    crasher = await actor_system.spawn(Reporting("c"))
    sender = await actor_system.spawn(Recorder("s"))
    await sender.send_message("c", Note("x"))
    await crasher.end()
    assert calls == [("ValueError: cannot handle x", True)]
    assert crasher.log[-1] == "c:finished"


async def test_end_cancels_work_that_ignores_the_grace_period(actor_system: ActorSystem) -> None:
    """end(grace=5) lets a child's work run 5 seconds, then cancels it, exactly."""
    parent = await actor_system.spawn(Recorder("parent"))
    child = await parent.add_child(Sleeper("child"))
    await parent.send_message("child", Note("work"))
    await child.wait_until(lambda: child.messages)
    start = trio.current_time()
    await parent.end(grace=5)
    assert f"child:cancelled@{start + 5}" in child.log
    assert trio.current_time() == start + 5
    assert parent.log[-1] == "parent:finished"
    assert child.log[-1] == "child:finished"


async def test_cancel_during_end_stops_at_once(actor_system: ActorSystem) -> None:
    """cancel() during a long end() stops the actor immediately."""
    actor = await actor_system.spawn(Sleeper("slow"))
    sender = await actor_system.spawn(Recorder("s"))
    await sender.send_message("slow", Note("work"))
    await actor.wait_until(lambda: actor.messages)
    start = trio.current_time()
    ending = actor.end(grace=100)
    await trio.sleep(1)
    actor.cancel()
    await ending
    assert trio.current_time() == start + 1
    assert actor.log[-1] == "slow:finished"


async def test_children_stop_before_parent_in_reverse_start_order(
    actor_system: ActorSystem,
) -> None:
    """Ending a parent stops its children last-started first, then the parent finishes."""
    log: list[str] = []
    parent = await actor_system.spawn(Recorder("parent", log))
    first = await parent.add_child(Recorder("first", log))
    await parent.add_child(Recorder("second", log))
    await first.add_child(Recorder("grandchild", log))
    await parent.end()
    finished = [entry for entry in log if entry.endswith(":finished")]
    assert finished == [
        "second:finished",
        "grandchild:finished",
        "first:finished",
        "parent:finished",
    ]


async def test_leaving_the_block_stops_roots_in_reverse_start_order() -> None:
    """Leaving open_actor_system stops every root actor, last-started first."""
    log: list[str] = []
    async with open_test_system() as system:
        for name in ("a", "b", "c"):
            await system.spawn(Recorder(name, log))
    assert [e for e in log if e.endswith(":finished")] == [
        "c:finished",
        "b:finished",
        "a:finished",
    ]


async def test_system_wait_returns_when_every_root_ended(actor_system: ActorSystem) -> None:
    """system.wait() returns once the last root actor has ended."""
    first = await actor_system.spawn(Recorder("a"))
    second = await actor_system.spawn(Recorder("b"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.wait)
        await trio.testing.wait_all_tasks_blocked()
        first.end()
        await trio.testing.wait_all_tasks_blocked()
        assert len(nursery.child_tasks) == 1
        second.end()
    assert actor_system.actors == {}


async def test_system_end_from_an_actor_ends_the_session(actor_system: ActorSystem) -> None:
    """An actor calling self.system.end() ends every actor and releases wait()."""

    class Quitter(Recorder):
        async def on_message(self, envelope: Envelope) -> None:
            await super().on_message(envelope)
            self.system.end("done")

    await actor_system.spawn(Recorder("other"))
    await actor_system.spawn(Quitter("quitter"))
    sender = actor_system.actors["other"]
    await sender.send_message("quitter", Note("quit"))
    await actor_system.wait()
    assert actor_system.actors == {}


async def test_no_runtime_task_outlives_the_system() -> None:
    """After the system's block exits, no task it started is still alive."""
    before = trio.lowlevel.current_statistics().tasks_living
    async with open_test_system() as system:
        parent = await system.spawn(Recorder("parent"))
        await parent.add_child(Sleeper("child"))
        await parent.send_message("child", Note("busy"))
        async with system.open_bridge("voice"):
            await trio.testing.wait_all_tasks_blocked()
    assert trio.lowlevel.current_statistics().tasks_living == before


async def test_actor_cannot_be_used_before_it_starts() -> None:
    """Using an actor that never started raises a clear ActorStateError."""
    actor = Actor("idle")
    with pytest.raises(ActorStateError, match="has not been started"):
        _ = actor.system
    with pytest.raises(ValueError, match=r"^an actor needs a non-empty name$"):
        Actor("")
