"""The client's link: a dropped server ends jobs in flight FAILED at once; it reconnects."""

from __future__ import annotations

from contextlib import suppress

import anyio
import anyio.abc
import pytest

from actors.client import AgentInfo, JobError, JobHooks, JobResponse, JobStatus, open_client
from client.client_support import HEADERS, ServerProcess, free_port
from transports import ReconnectBackoff

pytestmark = pytest.mark.anyio


class Outcomes(JobHooks):
    """Records the terminal answers of fire-and-forget jobs."""

    def __init__(self) -> None:
        self.responses: list[JobResponse] = []
        self.answered = anyio.Event()

    async def on_job_response(self, response: JobResponse) -> None:
        self.responses.append(response)
        self.answered.set()


async def test_a_killed_server_fails_jobs_at_once_and_the_client_reconnects() -> None:
    """kill -9 of the server process mid-job: jobs in flight end FAILED at once (no timeout),
    the fire-and-forget one on its hook; the client reconnects with backoff to the restarted
    server, says hello again, its watch fires for the new start, and the next job works."""
    port = free_port()
    server = ServerProcess(port)
    try:
        backoff = ReconnectBackoff(initial=0.05, maximum=0.2)
        hooks = Outcomes()
        ready: list[AgentInfo] = []
        async with open_client(server.url, headers=HEADERS, backoff=backoff, hooks=hooks) as client:
            with anyio.fail_after(20):
                client.watch("alpha", ready.append)
                fired_and_forgotten = await client.request_job("gamma", name="slow")
                killed_at = 0.0
                with pytest.raises(JobError, match="FAILED") as caught:
                    async with client.job_group("alpha", "beta", name="slow") as group:
                        async for event in group:
                            if event.actor_name == "alpha":
                                killed_at = anyio.current_time()
                                server.kill()
                assert set(caught.value.statuses.values()) == {JobStatus.FAILED}
                assert anyio.current_time() - killed_at < 2.0
                assert group.statuses == {"alpha": JobStatus.FAILED, "beta": JobStatus.FAILED}
                assert not client.agents
                await hooks.answered.wait()
                [response] = hooks.responses
                assert (response.job_id, response.status) == (fired_and_forgotten, JobStatus.FAILED)
                server = ServerProcess(port)
                await client.wait_ready("alpha")
                async with client.job("alpha", payload="again") as job:
                    pass
                assert job.response == {"echo": "again", "by": "alpha"}
                assert client.statistics().connections == 2
                # The restarted server's actor is a new start: the watch fired again.
                assert len(ready) == 2 and ready[0].incarnation != ready[1].incarnation
    finally:
        server.kill()


class FreezingProxy:
    """A TCP proxy that can stop forwarding without closing anything: a server that hangs."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.frozen = False

    async def handle(self, downstream: anyio.abc.SocketStream) -> None:
        """Forward one connection both ways until either side ends (or forever, once frozen)."""
        async with (
            downstream,
            await anyio.connect_tcp("127.0.0.1", self.target) as upstream,
            anyio.create_task_group() as pumps,
        ):
            pumps.start_soon(self._pump, downstream, upstream)
            pumps.start_soon(self._pump, upstream, downstream)

    async def _pump(self, source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
        try:
            async for chunk in source:
                if self.frozen:
                    await anyio.sleep_forever()
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await sink.send_eof()


async def test_a_server_that_stops_answering_is_found_by_pings(
    worker_server: ServerProcess,
) -> None:
    """A server that hangs without closing its socket answers no ping: within about two ping
    intervals the link is dropped, and the job in flight ends FAILED."""
    proxy = FreezingProxy(worker_server.port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as services:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        services.start_soon(listener.serve, proxy.handle)
        url = f"ws://127.0.0.1:{port}/ws"
        async with open_client(url, headers=HEADERS, ping_interval=0.3) as client:
            with anyio.fail_after(10):
                frozen_at = 0.0
                with pytest.raises(JobError, match="FAILED"):
                    async with client.job("alpha", name="slow") as job:
                        async for _ in job:
                            frozen_at = anyio.current_time()
                            proxy.frozen = True
                assert anyio.current_time() - frozen_at < 1.5
                assert not client.connected
        services.cancel_scope.cancel()
