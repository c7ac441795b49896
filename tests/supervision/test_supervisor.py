"""Tests for supervision._supervisor: the runner, on trio's virtual clock."""

from __future__ import annotations

import logging
import random

import attrs
import pytest
import trio
import trio.testing
from trio.testing import wait_all_tasks_blocked

from supervision import (
    Action,
    Backoff,
    ChildExit,
    ChildSpec,
    Decision,
    Restart,
    RestartIntensity,
    Strategy,
    Supervisor,
    SupervisorError,
    open_supervisor,
)

MockClock = trio.testing.MockClock


class Boom(Exception):
    """The crash used throughout these tests."""


@attrs.define(eq=False)
class Child:
    """A scripted child: logs its starts and ends; a test makes it crash or return."""

    name: str
    log: list[str]
    restart: Restart = Restart.PERMANENT
    starts: int = 0
    started_at: list[float] = attrs.field(factory=list)
    stoppings: list[trio.Event] = attrs.field(factory=list)
    _exit_scope: trio.CancelScope | None = None
    _crashing: bool = False

    @property
    def spec(self) -> ChildSpec:
        return ChildSpec(self.name, self.run, self.restart)

    async def run(
        self, stopping: trio.Event, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.starts += 1
        self.started_at.append(trio.current_time())
        self.stoppings.append(stopping)
        self.log.append(f"start {self.name}")
        exit_scope = self._exit_scope = trio.CancelScope()
        task_status.started(f"{self.name}#{self.starts}")
        try:
            with exit_scope:
                await stopping.wait()
        finally:
            self.log.append(f"end {self.name}")
        if exit_scope.cancelled_caught and self._crashing:
            raise Boom(self.name)

    def crash(self) -> None:
        self._end(crashing=True)

    def finish(self) -> None:
        self._end(crashing=False)

    def _end(self, *, crashing: bool) -> None:
        assert self._exit_scope is not None
        self._crashing = crashing
        self._exit_scope.cancel()


@attrs.define(eq=False)
class Exits:
    """An on_exit callback that records what it is told."""

    seen: list[tuple[ChildExit, Decision]] = attrs.field(factory=list)

    async def __call__(self, event: ChildExit, decision: Decision) -> None:
        self.seen.append((event, decision))

    @property
    def actions(self) -> list[tuple[str, Action]]:
        return [(event.name, decision.action) for event, decision in self.seen]


def children(*names: str, log: list[str], restart: Restart = Restart.PERMANENT) -> list[Child]:
    """Scripted children sharing one log."""
    return [Child(name, log, restart) for name in names]


async def test_start_child_returns_the_started_value(autojump_clock: MockClock) -> None:
    """start_child returns what the child passed to task_status.started()."""
    a, b = children("a", "b", log=[])
    async with open_supervisor() as supervisor:
        assert await supervisor.start_child(a.spec) == "a#1"
        assert await supervisor.start_child(b.spec) == "b#1"
        assert supervisor.children == ("a", "b")


async def test_one_for_one_restarts_only_the_crashed_child(autojump_clock: MockClock) -> None:
    """ONE_FOR_ONE restarts the crashed child and leaves its siblings running."""
    log: list[str] = []
    a, b, c = children("a", "b", "c", log=log)
    async with open_supervisor(strategy=Strategy.ONE_FOR_ONE) as supervisor:
        for child in (a, b, c):
            await supervisor.start_child(child.spec)
        log.clear()

        b.crash()
        await wait_all_tasks_blocked()

        assert log == ["end b", "start b"]
        assert (a.starts, b.starts, c.starts) == (1, 2, 1)
        assert supervisor.children == ("a", "b", "c")


async def test_one_for_all_stops_in_reverse_and_restarts_all_in_order(
    autojump_clock: MockClock,
) -> None:
    """ONE_FOR_ALL stops the siblings in reverse start order, then restarts all in order."""
    log: list[str] = []
    a, b, c = children("a", "b", "c", log=log)
    async with open_supervisor(strategy=Strategy.ONE_FOR_ALL) as supervisor:
        for child in (a, b, c):
            await supervisor.start_child(child.spec)
        log.clear()

        b.crash()
        await wait_all_tasks_blocked()

        assert log == ["end b", "end c", "end a", "start a", "start b", "start c"]
        assert supervisor.children == ("a", "b", "c")


async def test_rest_for_one_restarts_the_crashed_child_and_later_ones(
    autojump_clock: MockClock,
) -> None:
    """REST_FOR_ONE restarts the crashed child and those started after it, in order."""
    log: list[str] = []
    a, b, c, d = children("a", "b", "c", "d", log=log)
    async with open_supervisor(strategy=Strategy.REST_FOR_ONE) as supervisor:
        for child in (a, b, c, d):
            await supervisor.start_child(child.spec)
        log.clear()

        b.crash()
        await wait_all_tasks_blocked()

        assert log == ["end b", "end d", "end c", "start b", "start c", "start d"]
        assert a.starts == 1
        assert supervisor.children == ("a", "b", "c", "d")


async def test_simultaneous_crashes_in_a_group_count_once(autojump_clock: MockClock) -> None:
    """A sibling that crashed while its group was being restarted is reported, not re-decided."""
    log: list[str] = []
    a, b = children("a", "b", log=log)
    exits = Exits()
    async with open_supervisor(strategy=Strategy.ONE_FOR_ALL, on_exit=exits) as supervisor:
        await supervisor.start_child(a.spec)
        await supervisor.start_child(b.spec)

        a.crash()
        b.crash()
        await wait_all_tasks_blocked()

        # Trio runs the two crashed tasks in either order: whichever reports
        # first restarts the group, and the other's exit is then stale.
        assert sorted(action.value for _, action in exits.actions) == ["ignore", "restart"]
        assert {name for name, _ in exits.actions} == {"a", "b"}
        assert (a.starts, b.starts) == (2, 2)
        assert supervisor.children == ("a", "b")


async def test_transient_child_is_restarted_only_after_a_crash(autojump_clock: MockClock) -> None:
    """A TRANSIENT child is restarted after a crash and dropped after a normal return."""
    log: list[str] = []
    (worker,) = children("worker", log=log, restart=Restart.TRANSIENT)
    exits = Exits()
    async with open_supervisor(on_exit=exits) as supervisor:
        await supervisor.start_child(worker.spec)

        worker.crash()
        await wait_all_tasks_blocked()
        assert supervisor.children == ("worker",)

        worker.finish()
        await wait_all_tasks_blocked()
        assert not supervisor.children

    assert worker.starts == 2
    assert exits.actions == [("worker", Action.RESTART), ("worker", Action.IGNORE)]


async def test_temporary_child_is_never_restarted(autojump_clock: MockClock) -> None:
    """A TEMPORARY child that crashes is reported and dropped, not restarted."""
    log: list[str] = []
    (job,) = children("job", log=log, restart=Restart.TEMPORARY)
    exits = Exits()
    async with open_supervisor(on_exit=exits) as supervisor:
        await supervisor.start_child(job.spec)

        job.crash()
        await wait_all_tasks_blocked()

        assert supervisor.children == ()
        # The name is free again, since the child left the supervisor.
        assert await supervisor.start_child(job.spec) == "job#2"

    [(event, decision)] = exits.seen
    assert event.name == "job"
    assert isinstance(event.error, Boom)
    assert decision.action is Action.IGNORE


async def test_on_exit_hears_of_an_exit_before_the_decision_is_carried_out(
    autojump_clock: MockClock,
) -> None:
    """on_exit runs with the decision while the crashed child is still down."""
    log: list[str] = []
    (a,) = children("a", log=log)
    running_during_on_exit: list[tuple[str, ...]] = []

    async def on_exit(event: ChildExit, decision: Decision) -> None:
        running_during_on_exit.append(supervisor.children)
        assert decision.restart == ("a",)

    async with open_supervisor(on_exit=on_exit) as supervisor:
        await supervisor.start_child(a.spec)
        a.crash()
        await wait_all_tasks_blocked()
        assert supervisor.children == ("a",)

    assert running_during_on_exit == [()]


async def test_intensity_exceeded_raises_supervisor_error(autojump_clock: MockClock) -> None:
    """Too many restarts stop the others in reverse order and raise a plain SupervisorError."""
    log: list[str] = []
    a, b, c = children("a", "b", "c", log=log)
    body_finished = False
    with pytest.raises(
        SupervisorError,
        match=(
            r"^supervisor gave up: restarting child 'b' would make 3 restarts within 10\.0s, "
            r"more than max_restarts=2$"
        ),
    ) as raised:
        async with open_supervisor(intensity=RestartIntensity(2, 10.0)) as supervisor:
            for child in (a, b, c):
                await supervisor.start_child(child.spec)
            try:
                for _ in range(3):
                    await trio.sleep(1.0)
                    log.clear()
                    b.crash()
                    await wait_all_tasks_blocked()
                body_finished = True
            finally:
                log.append("body ended")

    assert not body_finished
    assert log == ["end b", "end c", "end a", "body ended"]
    assert trio.current_time() == 3.0
    assert raised.value.child == "b"
    assert raised.value.history == (1.0, 2.0, 3.0)
    assert isinstance(raised.value.__cause__, Boom)
    assert supervisor.children == ()


async def test_give_up_is_a_crash_for_the_parent_supervisor(autojump_clock: MockClock) -> None:
    """A supervisor that gives up inside a child makes that child crash for its own parent."""
    (flaky,) = children("flaky", log=[])

    async def tree(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with open_supervisor(intensity=RestartIntensity(max_restarts=0)) as inner:
            await inner.start_child(flaky.spec)
            task_status.started()
            await stopping.wait()

    exits = Exits()
    async with open_supervisor(on_exit=exits) as outer:
        await outer.start_child(ChildSpec("tree", tree))
        await trio.sleep(1.0)

        flaky.crash()
        await wait_all_tasks_blocked()

        assert outer.children == ("tree",)

    [(event, decision)] = exits.seen
    assert event.name == "tree"
    assert isinstance(event.error, SupervisorError)
    assert event.error.child == "flaky"
    assert event.error.history == (1.0,)
    assert decision.action is Action.RESTART
    # Restarting the tree started a fresh inner supervisor and a fresh flaky.
    assert flaky.starts == 2


async def test_backoff_restarts_at_0_1_0_3_and_0_7(autojump_clock: MockClock) -> None:
    """A child crashing as soon as it starts is restarted at 0.1, 0.3 and 0.7 virtual seconds."""
    started_at: list[float] = []

    async def crasher(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        started_at.append(trio.current_time())
        task_status.started()
        raise Boom("instantly")

    backoff = Backoff(initial=0.1, multiplier=2.0, jitter=0.0)
    intensity = RestartIntensity(max_restarts=3, within=5.0)
    with pytest.raises(SupervisorError) as raised:
        async with open_supervisor(intensity=intensity, backoff=backoff) as supervisor:
            await supervisor.start_child(ChildSpec("crasher", crasher))
            await trio.sleep_forever()

    # Sums of binary floats: 0.1 + 0.2 is 0.30000000000000004, hence approx.
    assert started_at == pytest.approx([0.0, 0.1, 0.3, 0.7], abs=1e-12)
    assert raised.value.history == pytest.approx((0.0, 0.1, 0.3, 0.7), abs=1e-12)


async def test_backoff_jitter_with_seeded_rng_gives_exact_delays(
    autojump_clock: MockClock,
) -> None:
    """With a seeded random.Random, jittered restarts happen at exactly predictable times."""
    (a,) = children("a", log=[])
    backoff = Backoff(initial=1.0, maximum=10.0, jitter=0.5)

    async with open_supervisor(
        backoff=backoff, rng=random.Random(42), intensity=RestartIntensity(5, 60.0)
    ) as supervisor:
        await supervisor.start_child(a.spec)
        a.crash()
        await trio.sleep(5.0)
        a.crash()
        await trio.sleep(5.0)

    # The first two draws of random.Random(42), as in test_backoff.py.
    assert a.started_at == [0.0, 1.1394267984578836, 5.0 + 1.0500215104453339]


async def test_restart_calls_the_factory_again(autojump_clock: MockClock) -> None:
    """Each restart is a fresh call of spec.start with a fresh stopping event."""
    calls: list[dict[str, int]] = []

    async def counter(
        stopping: trio.Event, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        state = {"handled": 0}
        calls.append(state)
        task_status.started(len(calls))
        state["handled"] += 1
        await trio.sleep(1.0)
        raise Boom("after one second")

    stoppings: list[trio.Event] = []

    async def start(
        stopping: trio.Event, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        stoppings.append(stopping)
        await counter(stopping, task_status=task_status)

    async with open_supervisor(intensity=RestartIntensity(5, 60.0)) as supervisor:
        await supervisor.start_child(ChildSpec("counter", start))
        await trio.sleep(2.5)

    assert calls == [{"handled": 1}, {"handled": 1}, {"handled": 1}]
    assert len({id(event) for event in stoppings}) == 3


async def test_stop_child_sets_stopping_and_a_cooperative_child_ends_at_once(
    autojump_clock: MockClock,
) -> None:
    """stop_child sets stopping first; a child that honours it ends with no grace period used."""
    log: list[str] = []
    (a,) = children("a", log=log)
    exits = Exits()
    async with open_supervisor(on_exit=exits) as supervisor:
        await supervisor.start_child(a.spec)

        await supervisor.stop_child("a")

        assert trio.current_time() == 0.0
        assert a.stoppings[0].is_set()
        assert log == ["start a", "end a"]
        assert supervisor.children == ()
        await trio.sleep(10.0)

    assert a.starts == 1
    assert exits.seen == []


async def test_stop_child_cancels_a_child_ignoring_stopping_exactly_at_grace(
    autojump_clock: MockClock,
) -> None:
    """A child that ignores stopping is cancelled exactly when its grace period ends."""
    cancelled_at: list[float] = []

    async def stubborn(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    async with open_supervisor() as supervisor:
        await supervisor.start_child(ChildSpec("stubborn", stubborn, shutdown=2.0))
        await trio.sleep(1.0)

        await supervisor.stop_child("stubborn")

        assert cancelled_at == [3.0]
        assert trio.current_time() == 3.0
        assert supervisor.children == ()


async def test_shielded_cleanup_past_grace_is_reported_and_awaited(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A child whose shielded cleanup outlasts its grace is named in a warning and awaited."""
    cleaned_up_at: list[float] = []

    async def slow(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(3.0)
            cleaned_up_at.append(trio.current_time())

    async with open_supervisor() as supervisor:
        await supervisor.start_child(ChildSpec("slow", slow, shutdown=1.0))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.stop_child, "slow")
            await trio.sleep(2.0)

            warnings = [
                record.getMessage()
                for record in caplog.records
                if record.levelno == logging.WARNING
            ]
            assert warnings == [
                "child 'slow' did not stop within its 1.0s shutdown grace period; "
                "waiting for its shielded cleanup"
            ]
            assert cleaned_up_at == []

        assert cleaned_up_at == [4.0]
        assert trio.current_time() == 4.0


async def test_leaving_the_block_stops_children_in_reverse_order(
    autojump_clock: MockClock,
) -> None:
    """Leaving the block stops every child gracefully, last started first."""
    log: list[str] = []
    a, b, c = children("a", "b", "c", log=log)
    async with open_supervisor() as supervisor:
        for child in (a, b, c):
            await supervisor.start_child(child.spec)
        log.clear()

    assert log == ["end c", "end b", "end a"]
    assert all(child.stoppings[0].is_set() for child in (a, b, c))


async def test_cancelled_block_cancels_children_at_once(autojump_clock: MockClock) -> None:
    """Cancelling the scope around a supervisor cancels its children without a grace wait."""
    ended: list[tuple[str, float]] = []

    def lingering(name: str) -> ChildSpec:
        async def start(
            stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                ended.append((name, trio.current_time()))

        return ChildSpec(name, start, shutdown=10.0)

    with trio.move_on_after(1.0):
        async with open_supervisor() as supervisor:
            for name in ("a", "b", "c"):
                await supervisor.start_child(lingering(name))
            await trio.sleep_forever()

    assert sorted(ended) == [("a", 1.0), ("b", 1.0), ("c", 1.0)]
    assert trio.current_time() == 1.0


async def test_a_slow_start_does_not_hold_up_other_starts(autojump_clock: MockClock) -> None:
    """A child waiting during its start for a later child lets that child start."""
    later_ready = trio.Event()

    async def waits_for_later(
        stopping: trio.Event, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await later_ready.wait()
        task_status.started("first")
        await stopping.wait()

    async def later(
        stopping: trio.Event, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        later_ready.set()
        task_status.started("later")
        await stopping.wait()

    async with open_supervisor() as supervisor, trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.start_child, ChildSpec("first", waits_for_later))
        await trio.testing.wait_all_tasks_blocked()
        assert await supervisor.start_child(ChildSpec("later", later)) == "later"
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.children == ("first", "later")


async def test_failure_to_start_counts_as_a_crash(autojump_clock: MockClock) -> None:
    """A child raising before started() is restarted; start_child returns the restart's value."""
    attempts: list[float] = []

    async def flaky_start(
        stopping: trio.Event, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        attempts.append(trio.current_time())
        if len(attempts) == 1:
            raise Boom("first start")
        task_status.started("ready")
        await stopping.wait()

    exits = Exits()
    async with open_supervisor(on_exit=exits, backoff=Backoff(initial=0.25)) as supervisor:
        assert await supervisor.start_child(ChildSpec("flaky", flaky_start)) == "ready"
        assert supervisor.children == ("flaky",)

    assert attempts == [0.0, 0.25]
    [(event, decision)] = exits.seen
    assert isinstance(event.error, Boom)
    assert decision.action is Action.RESTART


async def test_failure_to_start_a_temporary_child_raises_its_error(
    autojump_clock: MockClock,
) -> None:
    """A TEMPORARY child that fails to start is not restarted; start_child raises its error."""

    async def broken(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        raise Boom("cannot start")

    exits = Exits()
    async with open_supervisor(on_exit=exits) as supervisor:
        with pytest.raises(Boom, match=r"^cannot start$"):
            await supervisor.start_child(ChildSpec("broken", broken, Restart.TEMPORARY))
        assert supervisor.children == ()

    assert exits.actions == [("broken", Action.IGNORE)]


async def test_failure_to_start_can_make_the_supervisor_give_up(
    autojump_clock: MockClock,
) -> None:
    """Failing to start past the restart intensity gives up like any crash."""

    async def broken(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        raise Boom("cannot start")

    with pytest.raises(SupervisorError) as raised:
        async with open_supervisor(intensity=RestartIntensity(max_restarts=1)) as supervisor:
            await supervisor.start_child(ChildSpec("broken", broken))

    assert raised.value.child == "broken"
    assert raised.value.history == (0.0, 0.0)
    assert isinstance(raised.value.__cause__, Boom)


async def test_give_up_through_start_child_inside_the_block_comes_out_plain(
    autojump_clock: MockClock,
) -> None:
    """A SupervisorError that start_child raises inside the block leaves it ungrouped."""

    async def broken(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        raise Boom("cannot start")

    with pytest.raises(SupervisorError) as raised:
        async with open_supervisor(intensity=RestartIntensity(max_restarts=0)) as supervisor:
            # Shielded, so start_child sees the outcome instead of the block's cancellation.
            with trio.CancelScope(shield=True):
                await supervisor.start_child(ChildSpec("broken", broken))

    assert raised.value.child == "broken"


async def test_cancelled_start_child_forgets_the_child(autojump_clock: MockClock) -> None:
    """Cancelling start_child before the child started cancels the child and frees its name."""
    cancelled_at: list[float] = []

    async def slow_start(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await trio.sleep(2.0)
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise
        task_status.started()

    (a,) = children("slow", log=[])
    async with open_supervisor() as supervisor:
        with trio.move_on_after(1.0):
            await supervisor.start_child(ChildSpec("slow", slow_start))

        assert cancelled_at == [1.0]
        assert not supervisor.children
        assert await supervisor.start_child(a.spec) == "slow#1"


async def test_start_child_waiting_for_a_restart_is_released_on_close(
    autojump_clock: MockClock,
) -> None:
    """A start_child waiting out a restart's backoff raises the start error when the block ends."""
    outcomes: list[BaseException] = []

    async def broken(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        raise Boom("cannot start")

    async def start_from_outside(supervisor: Supervisor) -> None:
        try:
            await supervisor.start_child(ChildSpec("broken", broken))
        except Boom as exc:
            outcomes.append(exc)

    backoff = Backoff(initial=10.0, maximum=10.0)
    async with trio.open_nursery() as nursery, open_supervisor(backoff=backoff) as supervisor:
        nursery.start_soon(start_from_outside, supervisor)
        await trio.sleep(1.0)

    assert trio.current_time() == 1.0
    assert [str(exc) for exc in outcomes] == ["cannot start"]


async def test_closing_during_backoff_cancels_the_restart(autojump_clock: MockClock) -> None:
    """Leaving the block while a restart waits out its backoff ends without restarting."""
    (a,) = children("a", log=[])
    async with open_supervisor(backoff=Backoff(initial=1.0)) as supervisor:
        await supervisor.start_child(a.spec)
        a.crash()
        await trio.sleep(0.5)

    assert trio.current_time() == 0.5
    assert a.starts == 1


async def test_on_exit_may_stop_a_sibling(autojump_clock: MockClock) -> None:
    """on_exit can call stop_child without deadlocking the supervisor."""
    log: list[str] = []
    a, b = children("a", "b", log=log, restart=Restart.TEMPORARY)

    async def on_exit(event: ChildExit, decision: Decision) -> None:
        await supervisor.stop_child("b")

    async with open_supervisor(on_exit=on_exit) as supervisor:
        await supervisor.start_child(a.spec)
        await supervisor.start_child(b.spec)
        a.crash()
        await wait_all_tasks_blocked()
        assert supervisor.children == ()


async def test_on_exit_may_not_start_a_child(autojump_clock: MockClock) -> None:
    """start_child from on_exit raises RuntimeError instead of deadlocking."""
    (a,) = children("a", log=[], restart=Restart.TEMPORARY)
    errors: list[str] = []

    async def on_exit(event: ChildExit, decision: Decision) -> None:
        try:
            await supervisor.start_child(ChildSpec("late", a.run))
        except RuntimeError as exc:
            errors.append(str(exc))

    async with open_supervisor(on_exit=on_exit) as supervisor:
        await supervisor.start_child(a.spec)
        a.crash()
        await wait_all_tasks_blocked()

    assert errors == ["start_child cannot be called from on_exit"]


async def test_on_exit_error_propagates_as_a_group(autojump_clock: MockClock) -> None:
    """An error in on_exit ends the supervisor like a nursery error, in an ExceptionGroup."""
    log: list[str] = []
    a, b = children("a", "b", log=log)

    async def on_exit(event: ChildExit, decision: Decision) -> None:
        raise KeyError("callback bug")

    with pytest.RaisesGroup(KeyError):
        async with open_supervisor(on_exit=on_exit) as supervisor:
            await supervisor.start_child(a.spec)
            await supervisor.start_child(b.spec)
            a.crash()
            await trio.sleep_forever()

    assert log[-1] == "end b"


async def test_duplicate_and_unknown_names_are_rejected(autojump_clock: MockClock) -> None:
    """Starting a name twice raises ValueError; stopping an unknown one raises KeyError."""
    (a,) = children("a", log=[])
    async with open_supervisor() as supervisor:
        await supervisor.start_child(a.spec)

        with pytest.raises(ValueError, match=r"^a child named 'a' is already supervised$"):
            await supervisor.start_child(a.spec)
        with pytest.raises(KeyError) as unknown:
            await supervisor.stop_child("b")

    assert unknown.value.args == ("no child named 'b' is supervised; known: 'a'",)
    assert a.starts == 1


async def test_closed_supervisor_refuses_new_children(autojump_clock: MockClock) -> None:
    """After the block, start_child raises ClosedResourceError."""
    (a,) = children("a", log=[])
    async with open_supervisor() as supervisor:
        pass

    with pytest.raises(trio.ClosedResourceError, match=r"^supervisor is closed to new children$"):
        await supervisor.start_child(a.spec)


async def test_repr_shows_state(autojump_clock: MockClock) -> None:
    """The repr shows whether it is open, its strategy, running children and restarts."""
    (a,) = children("a", log=[])
    async with open_supervisor(strategy=Strategy.ONE_FOR_ALL) as supervisor:
        await supervisor.start_child(a.spec)
        a.crash()
        await wait_all_tasks_blocked()
        assert repr(supervisor) == "<Supervisor [open, ONE_FOR_ALL, running: 'a', restarts: 1]>"

    assert repr(supervisor) == "<Supervisor [closed, ONE_FOR_ALL, running: none, restarts: 1]>"


def test_negative_shutdown_grace_is_rejected() -> None:
    """ChildSpec refuses a negative grace period."""

    async def noop(stopping: trio.Event) -> None:
        pass

    with pytest.raises(ValueError, match=r"^shutdown must be >= 0, got -1\.0$"):
        ChildSpec("a", noop, shutdown=-1.0)


async def test_cancel_stops_every_child_at_once_and_restarts_none(
    autojump_clock: MockClock,
) -> None:
    """Supervisor.cancel() cancels permanent children without restarting them; the block goes on."""
    log: list[str] = []
    kids = children("a", "b", log=log)
    async with open_supervisor() as supervisor:
        for kid in kids:
            await supervisor.start_child(kid.spec)
        start = trio.current_time()
        supervisor.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.children == ()
        assert sorted(entry for entry in log if entry.startswith("end")) == ["end a", "end b"]
        with pytest.raises(trio.ClosedResourceError):
            await supervisor.start_child(Child("c", log).spec)
        block_went_on = True
    assert block_went_on
    assert trio.current_time() == start
    assert [kid.starts for kid in kids] == [1, 1]


async def test_supervised_lists_children_waiting_for_a_restart(autojump_clock: MockClock) -> None:
    """A child waiting out its backoff is still supervised, though not running."""
    log: list[str] = []
    (kid,) = children("a", log=log)
    async with open_supervisor(backoff=Backoff(initial=1.0)) as supervisor:
        await supervisor.start_child(kid.spec)
        kid.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.children == ()
        assert supervisor.supervised == ("a",)
        await trio.sleep(1.5)
        assert tuple(supervisor.children) == ("a",)
