"""``wss://`` with a test CA, the server in this process (the Trio backend only)."""

from __future__ import annotations

import ssl
from typing import Any

import anyio
import pytest
import trio
import trustme

from actors import Actor, JobRequest, job, open_actor_system
from actors.client import JobStatus, open_client
from transports import serve_websocket_link

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["trio"])]


class Echo(Actor):
    """Echoes the payload."""

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        return {"echo": request.payload}


async def test_a_job_over_wss_with_a_test_certificate() -> None:
    """The client trusts the test CA through `ssl_context`; one that does not is refused."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with open_actor_system("tls-server") as system, trio.open_nursery() as nursery:
        await system.spawn(Echo("echo"))

        async def serve(task_status: trio.TaskStatus[Any]) -> None:
            await serve_websocket_link(
                system,
                host="127.0.0.1",
                port=0,
                exports=["echo"],
                ssl_context=server_context,
                task_status=task_status,
            )

        server = await nursery.start(serve)
        url = f"wss://127.0.0.1:{server.port}/ws"
        with anyio.fail_after(10):
            async with (
                open_client(url, ssl_context=client_context) as client,
                client.job("echo", payload="secret") as answered,
            ):
                pass
            assert answered.status is JobStatus.COMPLETED
            assert answered.response == {"echo": "secret"}
            with pytest.raises(OSError):
                async with open_client(url, ssl_context=ssl.create_default_context()):
                    pass
        nursery.cancel_scope.cancel()
