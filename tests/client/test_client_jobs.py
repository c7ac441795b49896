"""The anyio client's jobs, groups, streams and cancellation, on asyncio and on Trio.

The workers run in a Trio process of their own (`worker_server.py`), served over the
WebSocket link on 127.0.0.1; each test runs once per anyio backend.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import EncodeError
from actors.client import (
    JobError,
    JobEvent,
    JobEventType,
    JobGroupError,
    JobHooks,
    JobResponse,
    JobResult,
    JobStatus,
    JobTimeout,
    open_client,
)
from client.client_support import HEADERS, Note, ServerProcess, remote_cancellation
from transports import LinkRejected

pytestmark = pytest.mark.anyio


def _connect(server: ServerProcess, **options: Any) -> Any:
    return open_client(server.url, headers=HEADERS, **options)


async def test_a_job_streams_its_update_and_answers(worker_server: ServerProcess) -> None:
    """A job yields the worker's update and ends COMPLETED with its response."""
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            async with client.job("alpha", payload=1) as job:
                events = [(event.type, event.data, event.actor_name) async for event in job]
    assert events == [(JobEventType.UPDATE, {"progress": 50, "by": "alpha"}, "alpha")]
    assert job.response == {"echo": 1, "by": "alpha"}
    assert job.status is JobStatus.COMPLETED
    assert job.actor_name == "alpha"


async def test_a_stream_arrives_in_order_with_credits_granted(
    worker_server: ServerProcess,
) -> None:
    """Stream events arrive in order; 300 of them cross a window of 64 because the client
    grants credit back as it reads."""
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            async with client.job("beta", name="stream", payload=3) as job:
                events = [(event.type, event.data) async for event in job]
            assert events == [
                (JobEvent.STREAM_START, "start"),
                (JobEvent.STREAM_DATA, 0),
                (JobEvent.STREAM_DATA, 1),
                (JobEvent.STREAM_DATA, 2),
                (JobEvent.STREAM_END, "end"),
            ]
            assert job.response == "end"
            async with client.job("beta", name="stream", payload=300) as long:
                count = 0
                async for _ in long:
                    count += 1
            assert count == 302
            # Unread events are discarded on leaving, their credit still granted.
            async with client.job("beta", name="stream", payload=300) as unread:
                pass
            assert unread.status is JobStatus.COMPLETED


async def test_a_group_answers_for_every_member(worker_server: ServerProcess) -> None:
    """A group's members each answer; statuses and responses are by worker."""
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            async with client.job_group("alpha", "beta", "gamma", payload=2) as group:
                senders = sorted([event.actor_name async for event in group])
    assert senders == ["alpha", "beta", "gamma"]
    assert group.statuses == dict.fromkeys(["alpha", "beta", "gamma"], JobStatus.COMPLETED)
    assert group.responses["gamma"] == {"echo": 2, "by": "gamma"}
    assert group.errors == {}


async def test_failures_raise_job_error_and_job_group_error(worker_server: ServerProcess) -> None:
    """ERROR raises JobError (single) and JobGroupError (group); without cancel_on_error the
    statuses say it all."""
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            with pytest.raises(JobError, match=r"ended ERROR: ValueError") as single:
                async with client.job("alpha", name="fail"):
                    pass
            assert single.value.status is JobStatus.ERROR
            with pytest.raises(JobGroupError) as grouped:
                async with client.job_group("alpha", "beta", name="fail"):
                    pass
            assert JobStatus.ERROR in grouped.value.statuses.values()
            async with client.job_group(
                "alpha", "beta", name="fail", cancel_on_error=False
            ) as lenient:
                pass
            assert lenient.statuses == {"alpha": JobStatus.ERROR, "beta": JobStatus.ERROR}
            assert "was told to fail" in lenient.errors["beta"]
            # A payload that cannot cross a process fails at once, and leaves nothing open.
            with pytest.raises(EncodeError):
                async with client.job("alpha", payload=object()):
                    pass
            assert client.statistics().jobs == 0
            with pytest.raises(TypeError, match="separate arguments"):
                client.job_group(["alpha", "beta"])


async def test_a_timeout_cancels_the_worker_and_raises_job_timeout(
    worker_server: ServerProcess,
) -> None:
    """``timeout=`` ends in JobTimeout, the remote handler is cancelled, and the budget
    travels in the request."""
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            with pytest.raises(JobTimeout) as caught:
                async with client.job("gamma", name="slow", timeout=0.3) as job:
                    async for _ in job:
                        pass
            assert caught.value.statuses == {"gamma": JobStatus.CANCELLED}
            await remote_cancellation(client, "gamma", caught.value.job_id)
            async with client.job("gamma", name="budget", timeout=5) as budget:
                pass
            assert 3.0 < budget.response <= 5.0
            with pytest.raises(JobTimeout, match="never announced"):
                async with client.job("nobody", timeout=0.2):
                    pass


async def test_cancel_job_reaches_the_remote_handler(worker_server: ServerProcess) -> None:
    """`cancel_job` ends the job CANCELLED and the worker's handler is cancelled."""
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            with pytest.raises(JobError, match="CANCELLED") as caught:
                async with client.job("alpha", name="slow") as job:
                    async for event in job:
                        assert event.data == "started"
                        await client.cancel_job(job.job_id, reason="changed my mind")
            assert caught.value.status is JobStatus.CANCELLED
            assert await remote_cancellation(client, "alpha", job.job_id) == "changed my mind"


async def test_an_anyio_cancel_scope_cancels_the_remote_job(worker_server: ServerProcess) -> None:
    """A cancelled scope around a job (the host loop's cancellation) cancels the worker."""
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            with anyio.CancelScope() as scope:
                async with client.job("beta", name="slow") as job:
                    async for _ in job:
                        scope.cancel()
            assert scope.cancelled_caught
            reason = await remote_cancellation(client, "beta", job.job_id)
    assert reason is not None and "interrupted" in reason


async def test_readiness_watch_and_messages(worker_server: ServerProcess) -> None:
    """The server's exported actors are announced; watches fire; messages arrive."""
    seen: list[str] = []
    async with _connect(worker_server) as client:
        with anyio.fail_after(10):
            for name in ("alpha", "beta", "gamma"):
                info = await client.wait_ready(name)
                assert info.system == "workers"
            assert client.peer_system == "workers"
            with client.watch("alpha", lambda entry: seen.append(entry.name)) as watch:
                assert seen == ["alpha"]
            assert watch.cancelled
            assert set(client.agents) == {"alpha", "beta", "gamma"}
            await client.send_message("alpha", Note("hello"))
            async with client.job("alpha", name="notes") as notes:
                pass
            assert "hello" in notes.response
            with pytest.raises(LookupError, match="no actor named 'nobody'"):
                await client.send_message("nobody", Note("lost"))
        stats = client.statistics()
    assert stats.connections == 1 and stats.refused == 0 and stats.hostile == 0


class Recorder(JobHooks):
    """Records what the hooks of fire-and-forget jobs are told."""

    def __init__(self) -> None:
        self.events: list[tuple[JobEventType, Any]] = []
        self.responses: list[JobResponse] = []
        self.completed: list[JobResult] = []
        self.done = anyio.Event()

    async def on_job_stream_start(self, event: JobEvent) -> None:
        self.events.append((event.type, event.data))

    async def on_job_stream_data(self, event: JobEvent) -> None:
        self.events.append((event.type, event.data))

    async def on_job_stream_end(self, event: JobEvent) -> None:
        self.events.append((event.type, event.data))

    async def on_job_response(self, response: JobResponse) -> None:
        self.responses.append(response)

    async def on_job_completed(self, result: JobResult) -> None:
        self.completed.append(result)
        self.done.set()


async def test_request_job_answers_on_hooks(worker_server: ServerProcess) -> None:
    """`request_job` returns the id; events, the response and completion arrive on hooks."""
    hooks = Recorder()
    async with _connect(worker_server, hooks=hooks) as client:
        with anyio.fail_after(10):
            job_id = await client.request_job("gamma", name="stream", payload=100)
            await hooks.done.wait()
    assert len(hooks.events) == 102
    assert hooks.events[0] == (JobEventType.STREAM_START, "start")
    assert hooks.events[-1] == (JobEventType.STREAM_END, "end")
    assert [(r.job_id, r.status) for r in hooks.responses] == [(job_id, JobStatus.COMPLETED)]
    assert hooks.completed[0].statuses == {"gamma": JobStatus.COMPLETED}


async def test_a_client_without_the_token_is_refused(worker_server: ServerProcess) -> None:
    """The server's authentication hook answers 401 before any packet."""
    with anyio.fail_after(10), pytest.raises(LinkRejected) as caught:
        async with open_client(worker_server.url):
            pass
    assert caught.value.status == 401


async def test_many_jobs_in_flight_from_many_tasks(worker_server: ServerProcess) -> None:
    """A hundred jobs from a hundred tasks at once each get their own answer."""
    answers: dict[int, object] = {}
    async with _connect(worker_server) as client:

        async def one(index: int) -> None:
            async with client.job(("alpha", "beta", "gamma")[index % 3], payload=index) as job:
                async for _ in job:
                    pass
            answers[index] = job.response["echo"]

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                for index in range(100):
                    tasks.start_soon(one, index)
        assert client.statistics().jobs == 0
    assert answers == {index: index for index in range(100)}


async def test_an_exception_of_the_block_comes_out_as_itself(worker_server: ServerProcess) -> None:
    """An exception of the `open_client` block comes out unwrapped (no ExceptionGroup), and
    so does a cancellation of the block: the client's own tasks add nothing to them."""
    with pytest.raises(KeyError, match="mine"):
        async with _connect(worker_server):
            raise KeyError("mine")
    with anyio.move_on_after(0.2) as scope:
        async with _connect(worker_server) as client:
            await client.wait_ready("nobody")
    assert scope.cancelled_caught
