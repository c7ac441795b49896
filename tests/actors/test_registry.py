"""Tests for the registry of live actors (`actors._routing.registry`)."""

from __future__ import annotations

import trio
import trio.testing

from actors import AgentInfo
from actors._routing.registry import Registry


def _info(name: str, system: str = "node-a", **fields: object) -> AgentInfo:
    return AgentInfo(name=name, system=system, **fields)  # type: ignore[arg-type]


async def test_wait_ready_returns_at_once_for_a_registered_name() -> None:
    """wait_ready on a registered name returns its entry without waiting."""
    registry = Registry()
    info = _info("worker")
    registry.add(info)
    with trio.testing.assert_checkpoints():
        assert await registry.wait_ready("worker") is info
    assert registry.waiter_count() == 0


async def test_wait_ready_waits_for_a_later_registration() -> None:
    """wait_ready on an unknown name blocks until that name is added."""
    registry = Registry()
    got: list[AgentInfo] = []

    async def waiter() -> None:
        got.append(await registry.wait_ready("late"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert registry.waiter_count() == 1
        registry.add(_info("other"))
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        registry.add(_info("late", parent="boss"))
    assert got == [_info("late", parent="boss")]
    assert registry.waiter_count() == 0


async def test_cancelled_wait_is_released() -> None:
    """A wait_ready cancelled by its scope leaves no waiter behind."""
    registry = Registry()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(registry.wait_ready, "ghost")
        nursery.start_soon(registry.wait_ready, "ghost")
        await trio.testing.wait_all_tasks_blocked()
        assert registry.waiter_count() == 2
        nursery.cancel_scope.cancel()
    assert registry.waiter_count() == 0
    registry.add(_info("ghost"))
    assert registry.get("ghost") == _info("ghost")


async def test_wait_ready_after_removal_waits_again(autojump_clock: trio.testing.MockClock) -> None:
    """A name removed from the registry is waited for again, not answered from a stale entry."""
    registry = Registry()
    registry.add(_info("w"))
    assert registry.remove("w") == _info("w")
    with trio.move_on_after(1) as scope:
        await registry.wait_ready("w")
    assert scope.cancelled_caught
    assert registry.waiter_count() == 0


def test_watch_fires_at_once_and_on_each_add() -> None:
    """A watch fires at once for an existing entry and again each time the name is added."""
    registry = Registry()
    seen: list[AgentInfo] = []
    first = _info("w")
    registry.add(first)
    watch = registry.watch("w", seen.append)
    assert seen == [first]
    assert watch.active
    assert watch.name == "w"
    assert registry.watch_count() == 1

    registry.add(_info("other"))
    assert seen == [first]
    registry.add(_info("w"))  # the same start announced again (a peer joined): no second fire
    assert seen == [first]
    second = _info("w", system="node-b", incarnation="2")
    registry.add(second)
    assert seen == [first, second]

    watch.cancel()
    watch.cancel()
    assert not watch.active
    assert registry.watch_count() == 0
    registry.add(_info("w", system="node-c"))
    assert seen == [first, second]


def test_watch_of_absent_name_waits_for_add() -> None:
    """A watch on a name not yet registered fires only when it is added."""
    registry = Registry()
    seen: list[str] = []
    watch = registry.watch("later", lambda info: seen.append(info.system))
    assert seen == []
    registry.add(_info("later", system="s1"))
    registry.remove("later")
    registry.add(_info("later", system="s2"))
    assert seen == ["s1", "s2"]
    watch.cancel()


def test_watch_with_block_releases_it() -> None:
    """Leaving `with watch` (or `watching`) releases the watch."""
    registry = Registry()
    seen: list[AgentInfo] = []
    with registry.watch("w", seen.append) as watch:
        registry.add(_info("w"))
        assert registry.watch_count() == 1
    assert not watch.active
    assert registry.watch_count() == 0
    with registry.watching("w", seen.append) as other:
        assert other.active
        assert registry.watch_count() == 1
    assert not other.active
    assert registry.watch_count() == 0
    registry.add(_info("w"))
    assert seen == [_info("w"), _info("w")]


def test_cancelling_one_watch_keeps_the_others() -> None:
    """Two watches on one name are independent."""
    registry = Registry()
    a: list[AgentInfo] = []
    b: list[AgentInfo] = []
    watch_a = registry.watch("w", a.append)
    registry.watch("w", b.append)
    watch_a.cancel()
    registry.add(_info("w"))
    assert a == []
    assert b == [_info("w")]
    assert registry.watch_count() == 1


def test_set_active_changes_entry_and_bumps_version() -> None:
    """set_active replaces the entry with the new flag and bumps the version only on change."""
    registry = Registry()
    registry.add(_info("w", parent="p", bridged=("voice",), started_at=3.5))
    version = registry.version
    registry.set_active("w", False)
    assert registry.get("w") == _info(
        "w", parent="p", bridged=("voice",), started_at=3.5, active=False
    )
    assert registry.version == version + 1
    registry.set_active("w", False)
    assert registry.version == version + 1
    registry.set_active("missing", True)
    assert registry.version == version + 1
    assert "missing" not in registry


async def test_wait_changed_wakes_on_change() -> None:
    """wait_changed blocks while the version is unchanged and returns the new version."""
    registry = Registry()
    registry.add(_info("w"))
    start = registry.version
    results: list[int] = []

    async def waiter() -> None:
        results.append(await registry.wait_changed(start))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert results == []
        registry.set_active("w", False)
    assert results == [start + 1]
    with trio.testing.assert_checkpoints():
        assert await registry.wait_changed(start) == start + 1


def test_remove_with_system_filter() -> None:
    """remove with `system=` forgets the entry only if it lives on that system."""
    registry = Registry()
    registry.add(_info("w", system="node-a"))
    version = registry.version
    assert registry.remove("w", system="node-b") is None
    assert "w" in registry
    assert registry.version == version
    assert registry.remove("w", system="node-a") == _info("w", system="node-a")
    assert "w" not in registry
    assert registry.version == version + 1
    assert registry.remove("w") is None
    assert registry.version == version + 1


def test_queries() -> None:
    """get, names, agents and on_system reflect the current entries in registration order."""
    registry = Registry()
    a, b, c = _info("a", "s1"), _info("b", "s2"), _info("c", "s1")
    for info in (a, b, c):
        registry.add(info)
    assert registry.names() == ["a", "b", "c"]
    assert registry.agents() == [a, b, c]
    assert registry.on_system("s1") == [a, c]
    assert registry.on_system("nowhere") == []
    assert registry.get("b") is b
    assert registry.get("zzz") is None
    assert registry.version == 3
    assert repr(registry) == "<Registry [agents: 3, version: 3]>"
