"""The pytest plugin of trio-actors (entry point ``pytest11``): fixtures for tests.

Fixtures are async and run under pytest-trio; use them in ``trio_mode`` test suites or in
tests marked ``@pytest.mark.trio``. Pair them with pytest-trio's ``autojump_clock`` fixture so
that timeouts, grace periods and backoff run in virtual time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from transports import MemoryTransport

from .._system import ActorSystem
from ._helpers import open_test_system


@pytest.fixture
def strict_transport() -> MemoryTransport:
    """A strict in-memory transport: several systems opened on it act like processes."""
    return MemoryTransport(strict=True)


@pytest.fixture
async def actor_system(
    autojump_clock: trio.testing.MockClock, strict_transport: MemoryTransport
) -> AsyncIterator[ActorSystem]:
    """An in-memory actor system in strict mode on the autojump clock, open for the test.

    Time is virtual: timeouts, grace periods and backoff elapse at once, exactly.
    """
    async with open_test_system("test", transport=strict_transport) as system:
        yield system
