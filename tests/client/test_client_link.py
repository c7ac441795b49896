"""The client's link: a dropped server ends jobs in flight FAILED at once; it reconnects."""

from __future__ import annotations

import anyio
import pytest

from actors.client import JobError, JobStatus, open_client
from client.client_support import HEADERS, ServerProcess, free_port
from transports import ReconnectBackoff

pytestmark = pytest.mark.anyio


async def test_a_killed_server_fails_jobs_at_once_and_the_client_reconnects() -> None:
    """kill -9 of the server process mid-job: the job ends FAILED at once (no timeout), the
    client reconnects with backoff to the restarted server, says hello again, and the next
    job works."""
    port = free_port()
    server = ServerProcess(port)
    try:
        backoff = ReconnectBackoff(initial=0.05, maximum=0.2)
        async with open_client(server.url, headers=HEADERS, backoff=backoff) as client:
            with anyio.fail_after(20):
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
                server = ServerProcess(port)
                await client.wait_ready("alpha")
                async with client.job("alpha", payload="again") as job:
                    pass
                assert job.response == {"echo": "again", "by": "alpha"}
                assert client.statistics().connections == 2
    finally:
        server.kill()
