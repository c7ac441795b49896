"""The client's tests run on both anyio backends, not in pytest-trio's trio mode.

The repository sets ``trio_mode = true``, and pytest-trio then marks *every* coroutine test
``trio`` at collection and runs it under `trio.run` itself, which would run these tests on Trio
only and ignore the `anyio_backend` parameter. So, after pytest-trio's own hook, the ``trio``
mark is taken off the tests marked ``anyio``, and anyio's plugin runs each of them on asyncio
and on Trio. (Async fixtures would be claimed by pytest-trio too, so these tests have none:
they open what they need inside the test.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from client.client_support import ServerProcess


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Take pytest-trio's ``trio`` mark off the tests marked ``anyio``."""
    for item in items:
        if item.get_closest_marker("anyio") is not None:
            item.own_markers[:] = [mark for mark in item.own_markers if mark.name != "trio"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Each anyio test runs on asyncio and on Trio."""
    backend: str = request.param
    return backend


@pytest.fixture(scope="module")
def worker_server() -> Iterator[ServerProcess]:
    """One worker server process (a Trio program) for a test module."""
    server = ServerProcess()
    try:
        yield server
    finally:
        server.kill()
