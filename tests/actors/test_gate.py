"""FifoGate: admission strictly in ticket order, whatever order the tasks run in."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from actors._jobs.gate import FifoGate


async def test_holders_enter_in_ticket_order_not_task_order() -> None:
    """Tasks started in reverse ticket order still get in by ticket."""
    gate = FifoGate(1)
    entered: list[int] = []
    tickets = [gate.ticket() for _ in range(5)]

    async def holder(ticket: int) -> None:
        await gate.enter(ticket)
        entered.append(ticket)
        await trio.lowlevel.checkpoint()
        gate.leave()

    async with trio.open_nursery() as nursery:
        for ticket in reversed(tickets):
            nursery.start_soon(holder, ticket)
    assert entered == tickets


async def test_capacity_bounds_holders_inside(autojump_clock: trio.testing.MockClock) -> None:
    """At most `capacity` holders are inside at once."""
    gate = FifoGate(2)
    inside = peak = 0

    async def holder(ticket: int) -> None:
        nonlocal inside, peak
        await gate.enter(ticket)
        inside += 1
        peak = max(peak, inside)
        await trio.sleep(0.01)
        inside -= 1
        gate.leave()

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(holder, gate.ticket())
    assert peak == 2


async def test_a_forgotten_ticket_lets_the_next_one_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A place given up before use does not block those behind it."""
    gate = FifoGate(1)
    first, second = gate.ticket(), gate.ticket()
    gate.forget(first)
    with trio.fail_after(1):
        await gate.enter(second)
    gate.leave()


async def test_a_cancelled_waiter_can_give_up_its_place(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A waiter cancelled in line, then forgotten, lets the next ticket in."""
    gate = FifoGate(1)
    holder, waiter, last = gate.ticket(), gate.ticket(), gate.ticket()
    await gate.enter(holder)
    with trio.move_on_after(0.01):
        await gate.enter(waiter)
    gate.forget(waiter)
    gate.leave()
    with trio.fail_after(1):
        await gate.enter(last)


def test_capacity_must_be_positive() -> None:
    """A gate needs room for at least one holder."""
    with pytest.raises(ValueError, match=r"^capacity must be > 0, got 0$"):
        FifoGate(0)
