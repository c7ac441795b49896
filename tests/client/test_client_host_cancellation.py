"""Cancellation follows the host loop: asyncio's task cancellation and timeouts, Trio's scopes.

Each cancellation must reach the remote handler: the worker records the cancellations of its
jobs, and its "cancellations" job reports them.
"""

from __future__ import annotations

import asyncio

import pytest
import trio

from actors.client import open_client
from client.client_support import HEADERS, ServerProcess, remote_cancellation

pytestmark = pytest.mark.anyio
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
trio_only = pytest.mark.parametrize("anyio_backend", ["trio"])


@asyncio_only
async def test_an_asyncio_task_cancelled_in_a_job_cancels_the_remote_handler(
    worker_server: ServerProcess,
) -> None:
    """A task cancelled inside `job()` (pipecat's tool interruption) sends JobCancel: the
    worker's handler is cancelled, and the task ends with its own CancelledError."""
    async with open_client(worker_server.url, headers=HEADERS) as client:
        started = asyncio.Event()
        job_ids: list[str] = []

        async def tool_call() -> None:
            async with client.job("alpha", name="slow") as job:
                job_ids.append(job.job_id)
                async for _ in job:
                    started.set()

        task = asyncio.create_task(tool_call())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        reason = await remote_cancellation(client, "alpha", job_ids[0])
        assert reason is not None and "CancelledError" in reason
        assert client.statistics().jobs == 0


@asyncio_only
async def test_asyncio_timeout_around_a_job_cancels_it_and_raises_timeout_error(
    worker_server: ServerProcess,
) -> None:
    """``asyncio.timeout()`` works as ``fail_after`` does in Trio: the remote job is cancelled
    and asyncio's own TimeoutError comes out (not a JobTimeout)."""
    async with open_client(worker_server.url, headers=HEADERS) as client:
        job_ids: list[str] = []
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.5):
                async with client.job("beta", name="slow") as job:
                    job_ids.append(job.job_id)
                    async for _ in job:
                        pass
        assert type(caught.value) is TimeoutError
        assert await remote_cancellation(client, "beta", job_ids[0]) is not None
        # Cancelled while waiting for readiness: nothing is left open.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), client.job("nobody"):
                pass
        assert client.statistics().jobs == 0
        # The client goes on serving jobs afterwards.
        async with asyncio.timeout(10), client.job("beta", payload=7) as after:
            pass
        assert after.response == {"echo": 7, "by": "beta"}


@trio_only
async def test_trio_scopes_cancel_the_remote_job_and_their_deadline_travels(
    worker_server: ServerProcess,
) -> None:
    """On Trio, ``move_on_after`` moves on and ``fail_after`` raises TooSlowError, each after
    cancelling the worker; an enclosing deadline travels in the request."""
    async with open_client(worker_server.url, headers=HEADERS) as client:
        job_ids: list[str] = []
        with trio.move_on_after(0.5) as moved:
            async with client.job("gamma", name="slow") as job:
                job_ids.append(job.job_id)
                async for _ in job:
                    pass
        assert moved.cancelled_caught
        with pytest.raises(trio.TooSlowError), trio.fail_after(0.5):
            async with client.job("gamma", name="slow") as job:
                job_ids.append(job.job_id)
                async for _ in job:
                    pass
        for job_id in job_ids:
            # The scope's deadline travelled, so the worker's own copy may have cancelled it
            # first (no reason then); either way the handler was cancelled.
            await remote_cancellation(client, "gamma", job_id)
        with trio.fail_after(5):
            async with client.job("gamma", name="budget") as budget:
                pass
        assert 3.0 < budget.response <= 5.0
