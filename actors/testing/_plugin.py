"""The pytest plugin of trio-actors (entry point ``pytest11``): fixtures for tests.

Fixtures are async and run under pytest-trio (``trio_mode = true``, or tests marked
``@pytest.mark.trio``).

A test that uses the ``actor_system`` fixture runs on Trio's autojump clock
(`trio.testing.MockClock` with ``autojump_threshold=0``): timeouts, grace periods and backoff
elapse at once and exactly, in virtual time. pytest-trio only takes a clock from the test's own
arguments, so the plugin marks such tests with a runner that supplies the clock; a test that
asks for ``autojump_clock`` or ``mock_clock`` itself keeps that one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import trio
import trio.testing

from transports import MemoryTransport

from .._runtime.system import ActorSystem
from ._helpers import open_test_system


def run_on_autojump_clock(
    fn: Callable[[], Any],
    *,
    clock: trio.abc.Clock | None = None,
    instruments: Sequence[trio.abc.Instrument] = (),
) -> Any:
    """Like `trio.run`, with an autojump `MockClock` when no clock is given."""
    if clock is None:
        clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, clock=clock, instruments=instruments)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every test that uses ``actor_system`` on the autojump clock."""
    for item in items:
        if "actor_system" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trio(run=run_on_autojump_clock), append=False)


@pytest.fixture
def strict_transport() -> MemoryTransport:
    """A strict in-memory transport: several systems opened on it act like processes."""
    return MemoryTransport(strict=True)


@pytest.fixture
async def actor_system(strict_transport: MemoryTransport) -> AsyncIterator[ActorSystem]:
    """An in-memory actor system in strict mode, open for the test, on the autojump clock.

    Strict mode round-trips every envelope through the codec, so a payload that could not cross
    a process boundary fails the test. Time is virtual (see the module docstring).
    """
    async with open_test_system("test", transport=strict_transport) as system:
        yield system
