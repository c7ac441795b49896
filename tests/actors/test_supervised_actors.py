"""Actors supervised by their parents: restart types, strategies, intensity, backoff."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorSpec,
    ActorSystem,
    AgentInfo,
    Envelope,
    JobError,
    JobRequest,
    JobStatus,
    job,
)
from supervision import Backoff, Restart, RestartIntensity, Strategy

from actor_support import Note, Recorder

STARTS: list[tuple[str, float]] = []
"""(name, time) of every Child start, in order."""
_start_events: list[trio.Event] = []


async def wait_for_starts(count: int) -> None:
    """Wait until at least `count` Child starts were recorded."""
    while len(STARTS) < count:
        event = trio.Event()
        _start_events.append(event)
        await event.wait()


class Child(Recorder):
    """Crashes on a "crash" message, ends itself on "end"; counts its own messages."""

    def __init__(self, name: str, log: list[str] | None = None) -> None:
        super().__init__(name, log)
        self.handled = 0

    async def on_ready(self) -> None:
        await super().on_ready()
        STARTS.append((self.name, trio.current_time()))
        while _start_events:
            _start_events.pop().set()

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        self.handled += 1
        if envelope.body.text == "crash":
            raise RuntimeError(f"{self.name} crashed")
        if envelope.body.text == "end":
            self.end()

    @job
    async def slow(self, request: JobRequest[Any]) -> str:
        await trio.sleep_forever()
        return "never"  # pragma: no cover


def make_parent(
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: RestartIntensity | None = None,
    backoff: Backoff | None = None,
) -> type[Recorder]:
    class Parent(Recorder):
        pass

    Parent.strategy = strategy
    Parent.intensity = intensity or RestartIntensity()
    Parent.backoff = backoff
    return Parent


async def send(system: ActorSystem, name: str, text: str) -> None:
    """Send a Note from a throwaway sender; tolerate the target restarting."""
    await system.registry.wait_ready(name)
    await system.actors["parent"].send_message(name, Note(text))


async def wait_for_start(system: ActorSystem, name: str, old: Actor) -> Actor:
    """Wait until a new instance of `name` is ready, and return it."""
    while True:
        await system.registry.wait_ready(name)
        current = system.actors.get(name)
        if current is not None and current is not old and current.ready:
            return current
        await trio.sleep(0.001)


@pytest.fixture(autouse=True)
def _clear_starts() -> None:
    STARTS.clear()


async def test_one_for_one_restarts_only_the_crashed_child(actor_system: ActorSystem) -> None:
    """ONE_FOR_ONE: the crashed child restarts fresh; its sibling keeps its instance."""
    parent = await actor_system.spawn(make_parent()("parent"))
    a = await parent.add_child(Child("a"), restart=Restart.PERMANENT)
    b = await parent.add_child(Child("b"), restart=Restart.PERMANENT)
    await send(actor_system, "a", "hello")
    await send(actor_system, "a", "crash")
    new_a = await wait_for_start(actor_system, "a", a)
    assert isinstance(new_a, Child) and new_a is not a
    assert new_a.handled == 0  # fresh state
    assert actor_system.actors["b"] is b
    await parent.wait_until(lambda: parent.agent_errors)
    error = parent.agent_errors[0]
    assert (error.name, error.fatal, error.decision) == ("a", True, "restart")
    assert error.error == "RuntimeError: a crashed"


async def test_one_for_all_restarts_every_child(actor_system: ActorSystem) -> None:
    """ONE_FOR_ALL: one crash stops every child and starts them all again, in order."""
    log: list[str] = []
    parent = await actor_system.spawn(make_parent(Strategy.ONE_FOR_ALL)("parent"))
    olds = [await parent.add_child(Child(n, log), restart=Restart.PERMANENT) for n in "abc"]
    STARTS.clear()
    await send(actor_system, "b", "crash")
    for old in olds:
        await wait_for_start(actor_system, old.name, old)
    assert [name for name, _ in STARTS] == ["a", "b", "c"]
    assert all(actor_system.actors[o.name] is not o for o in olds)
    # b crashed first; the survivors were stopped in reverse start order: c, then a.
    finished = [entry for entry in log if entry.endswith(":finished")]
    assert finished == ["b:finished", "c:finished", "a:finished"]


async def test_rest_for_one_restarts_the_crashed_and_later_children(
    actor_system: ActorSystem,
) -> None:
    """REST_FOR_ONE: the crashed child and those started after it restart, in order."""
    parent = await actor_system.spawn(make_parent(Strategy.REST_FOR_ONE)("parent"))
    a, b, c = [await parent.add_child(Child(n), restart=Restart.PERMANENT) for n in "abc"]
    STARTS.clear()
    await send(actor_system, "b", "crash")
    await wait_for_start(actor_system, "b", b)
    await wait_for_start(actor_system, "c", c)
    assert [name for name, _ in STARTS] == ["b", "c"]
    assert actor_system.actors["a"] is a


async def test_transient_restarts_after_a_crash_only(actor_system: ActorSystem) -> None:
    """TRANSIENT: restarted after a crash, not after it ended normally."""
    parent = await actor_system.spawn(make_parent()("parent"))
    first = await parent.add_child(Child("t"), restart=Restart.TRANSIENT)
    await send(actor_system, "t", "crash")
    second = await wait_for_start(actor_system, "t", first)
    await send(actor_system, "t", "end")
    await second._finished_event.wait()
    await trio.sleep(1)
    assert "t" not in actor_system.actors


async def test_temporary_is_never_restarted(actor_system: ActorSystem) -> None:
    """TEMPORARY (the default): a crashed child stays down; the parent is still told."""
    parent = await actor_system.spawn(make_parent()("parent"))
    child = await parent.add_child(Child("tmp"))
    await send(actor_system, "tmp", "crash")
    await child._finished_event.wait()
    await parent.wait_until(lambda: parent.agent_errors)
    await trio.sleep(1)
    assert "tmp" not in actor_system.actors
    assert parent.agent_errors[0].decision == "ignore"


async def test_permanent_restarts_even_after_a_normal_end(actor_system: ActorSystem) -> None:
    """PERMANENT: restarted even after ending normally; remove_child stops it for good."""
    parent = await actor_system.spawn(make_parent()("parent"))
    first = await parent.add_child(Child("p"), restart=Restart.PERMANENT)
    await send(actor_system, "p", "end")
    second = await wait_for_start(actor_system, "p", first)
    await parent.remove_child("p")
    assert second._finished_event.is_set()
    await trio.sleep(1)
    assert "p" not in actor_system.actors


async def test_intensity_exceeded_fails_the_parent_and_its_parent_is_told(
    actor_system: ActorSystem,
) -> None:
    """More restarts than allowed: the supervising actor crashes and its parent hears of it."""
    grandparent = await actor_system.spawn(Recorder("grandparent"))
    strict = make_parent(intensity=RestartIntensity(max_restarts=2, within=10))
    parent = await grandparent.add_child(strict("parent"))
    await parent.add_child(Child("fragile"), restart=Restart.PERMANENT)
    for _ in range(3):
        old = actor_system.actors["fragile"]
        await send(actor_system, "fragile", "crash")
        if _ < 2:
            await wait_for_start(actor_system, "fragile", old)
    await grandparent.wait_until(lambda: grandparent.agent_errors)
    error = grandparent.agent_errors[0]
    assert error.name == "parent" and error.fatal
    assert "supervisor gave up" in error.error
    assert "parent" not in actor_system.actors and "fragile" not in actor_system.actors


async def test_backoff_restarts_at_exact_times(actor_system: ActorSystem) -> None:
    """Backoff(0.1, x2) restarts a child that crashes at once at t+0.1, t+0.3, t+0.7."""

    class CrashOnStart(Child):
        crashes: ClassVar[int] = 0

        async def on_ready(self) -> None:
            await super().on_ready()
            if CrashOnStart.crashes < 3:
                CrashOnStart.crashes += 1
                self.start_soon(self._explode)

        async def _explode(self) -> None:
            raise RuntimeError("unlucky start")

    backoff = Backoff(initial=0.1, multiplier=2.0, maximum=10.0)
    parent = await actor_system.spawn(make_parent(backoff=backoff)("parent"))
    start = trio.current_time()
    await parent.add_child(ActorSpec(lambda: CrashOnStart("b"), restart=Restart.PERMANENT))
    await wait_for_starts(4)
    times = [round(t - start, 9) for _, t in STARTS]
    assert times == [0.0, 0.1, 0.3, 0.7]


async def test_job_on_a_crashing_child_fails_at_once(actor_system: ActorSystem) -> None:
    """A job held by a child that crashes ends FAILED immediately, not at its timeout."""
    parent = await actor_system.spawn(make_parent()("parent"))
    await parent.add_child(Child("worker"), restart=Restart.PERMANENT)
    start = trio.current_time()
    with pytest.raises(JobError) as caught:
        async with actor_system.job("worker", timeout=100) as j:
            await trio.testing.wait_all_tasks_blocked()
            await send(actor_system, "worker", "crash")
    assert caught.value.statuses == {"worker": JobStatus.FAILED}
    assert trio.current_time() == start
    assert j.status is JobStatus.FAILED


async def test_job_sent_while_restarting_waits_for_the_new_instance(
    actor_system: ActorSystem,
) -> None:
    """A job requested while its worker restarts (with backoff) reaches the new instance."""

    class Answering(Child):
        @job(name="ping")
        async def ping(self, request: JobRequest[Any]) -> str:
            return self._incarnation

    parent = await actor_system.spawn(make_parent(backoff=Backoff(initial=1.0))("parent"))
    old = await parent.add_child(Answering("w"), restart=Restart.PERMANENT)
    await send(actor_system, "w", "crash")
    await old._finished_event.wait()
    async with actor_system.job("w", name="ping", timeout=5) as j:
        pass
    assert j.response == actor_system.actors["w"]._incarnation != old._incarnation


async def test_watchers_see_a_restarted_actor_ready_again(actor_system: ActorSystem) -> None:
    """watch_agent fires again when the watched actor comes back after a crash."""
    parent = await actor_system.spawn(make_parent()("parent"))
    watcher = await actor_system.spawn(Recorder("watcher"))
    first = await parent.add_child(Child("w"), restart=Restart.PERMANENT)
    await watcher.watch_agent("w")

    def seen() -> list[AgentInfo]:
        # Root actors also hear of each other ("parent"): only "w" matters here.
        return [info for info in watcher.agent_ready if info.name == "w"]

    await watcher.wait_until(lambda: len(seen()) == 1)
    await send(actor_system, "w", "crash")
    await wait_for_start(actor_system, "w", first)
    await watcher.wait_until(lambda: len(seen()) == 2)
    assert seen()[0].incarnation != seen()[1].incarnation


async def test_stopping_a_child_asks_first_then_cancels_at_grace(
    actor_system: ActorSystem,
) -> None:
    """remove_child gives a busy child its shutdown grace, then cancels it, exactly."""

    class Stubborn(Child):
        shutdown_grace = 2.0

        async def on_message(self, envelope: Envelope) -> None:
            try:
                await trio.sleep_forever()
            finally:
                self.log.append(f"cancelled@{trio.current_time()}")

    parent = await actor_system.spawn(make_parent()("parent"))
    child = await parent.add_child(Stubborn("s"))
    await send(actor_system, "s", "work")
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    await parent.remove_child("s")
    assert child.log[-2:] == [f"cancelled@{start + 2.0}", "s:finished"]


async def test_shielded_cleanup_past_grace_is_reported_by_name(
    actor_system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """A child whose shielded cleanup outlasts its grace is named in a warning and awaited."""

    class Shielded(Child):
        shutdown_grace = 1.0

        async def on_message(self, envelope: Envelope) -> None:
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(5)

    parent = await actor_system.spawn(make_parent()("parent"))
    await parent.add_child(Shielded("slowpoke"))
    await send(actor_system, "slowpoke", "work")
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    with caplog.at_level(logging.WARNING, logger="supervision"):
        await parent.remove_child("slowpoke")
    assert trio.current_time() == start + 1.0 + 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("slowpoke" in w and "shutdown grace period" in w for w in warnings)


async def test_root_actors_are_supervised_too(actor_system: ActorSystem) -> None:
    """spawn(restart=PERMANENT) makes the system restart a crashed root actor."""
    first = await actor_system.spawn(Child("root"), restart=Restart.PERMANENT)
    helper = await actor_system.spawn(Recorder("parent"))
    await helper.send_message("root", Note("crash"))
    second = await wait_for_start(actor_system, "root", first)
    assert second is not first and second.parent is None


class FailsToStart(Recorder):
    async def on_ready(self) -> None:
        raise ValueError("cannot start")


async def test_spawn_raises_the_actors_own_start_error(actor_system: ActorSystem) -> None:
    """A failing on_ready surfaces as itself (not a group), and wait() still sees live roots."""
    alive = await actor_system.spawn(Recorder("alive"))
    with pytest.raises(ValueError, match=r"^cannot start$"):
        await actor_system.spawn(FailsToStart("broken"))
    parent = await actor_system.spawn(Recorder("parent"))
    with pytest.raises(ValueError, match=r"^cannot start$"):
        await parent.add_child(FailsToStart("broken-child"))
    with trio.move_on_after(1) as waited:
        await actor_system.wait()
    assert waited.cancelled_caught  # "alive" and "parent" still run
    assert alive.ready


async def test_system_end_does_not_restart_permanent_roots(actor_system: ActorSystem) -> None:
    """system.end() ends PERMANENT roots for good, and wait() returns."""
    await actor_system.spawn(Child("p1"), restart=Restart.PERMANENT)
    await actor_system.spawn(Child("p2"), restart=Restart.PERMANENT)
    STARTS.clear()
    await actor_system.end("shutdown", grace=1)
    with trio.fail_after(1):
        await actor_system.wait()
    await trio.sleep(5)
    assert STARTS == [] and actor_system.actors == {}


async def test_system_cancel_does_not_restart_permanent_roots(actor_system: ActorSystem) -> None:
    """system.cancel() stops PERMANENT roots at once and restarts none."""
    await actor_system.spawn(Child("p1"), restart=Restart.PERMANENT)
    STARTS.clear()
    start = trio.current_time()
    await actor_system.cancel()
    assert trio.current_time() == start
    await trio.sleep(5)
    assert STARTS == [] and actor_system.actors == {}


async def test_wait_does_not_return_while_a_root_restarts(actor_system: ActorSystem) -> None:
    """A crashed PERMANENT root is restarted, not ended: wait() keeps waiting through it."""
    first = await actor_system.spawn(ActorSpec(lambda: Child("r"), restart=Restart.PERMANENT))
    helper = await actor_system.spawn(Recorder("helper"))
    await helper.send_message("r", Note("crash"))
    await first._finished_event.wait()
    await helper.end()
    with trio.move_on_after(0.5) as waited:
        await actor_system.wait()
    assert waited.cancelled_caught
    assert actor_system.actors["r"] is not first
