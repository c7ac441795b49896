"""A Trio process serving workers over the WebSocket link, for the client's tests.

Usage: ``python worker_server.py PORT`` (0: any free port); prints ``ready <port>`` once it
listens. Its system "workers" exports "alpha", "beta" and "gamma", each a `Worker`
(with ``tests/`` on the path, so that ``client.client_support.Note`` has one wire name). With
``--token T`` it refuses clients that do not send ``Authorization: Bearer T``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import trio

from actors import Actor, Envelope, JobCancellation, JobRequest, job, open_actor_system
from client.client_support import Note
from transports import LinkRequest, serve_websocket_link

WORKERS = ("alpha", "beta", "gamma")


class Worker(Actor):
    """Jobs of every kind; records the cancellations that reach it (job "cancellations")."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.cancellations: dict[str, str | None] = {}
        self.notes: list[str] = []

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        await self.send_job_update(request.job_id, {"progress": 50, "by": self.name})
        return {"echo": request.payload, "by": self.name}

    @job(name="stream")
    async def stream(self, request: JobRequest[Any]) -> None:
        count = int(request.payload or 3)
        await self.send_job_stream_start(request.job_id, "start")
        for index in range(count):
            await self.send_job_stream_data(request.job_id, index)
        await self.send_job_stream_end(request.job_id, "end")

    @job(name="slow")
    async def slow(self, request: JobRequest[Any]) -> None:
        await self.send_job_update(request.job_id, "started")
        await trio.sleep_forever()

    @job(name="sleep")
    async def sleep(self, request: JobRequest[Any]) -> Any:
        await trio.sleep(float(request.payload))
        return "slept"

    @job(name="fail")
    async def fail(self, request: JobRequest[Any]) -> None:
        raise ValueError(f"{self.name} was told to fail")

    @job(name="budget")
    async def budget(self, request: JobRequest[Any]) -> Any:
        if request.deadline is None:
            return None
        return request.deadline - trio.current_time()

    @job(name="cancellations")
    async def report(self, request: JobRequest[Any]) -> Any:
        return dict(self.cancellations)

    @job(name="notes")
    async def report_notes(self, request: JobRequest[Any]) -> Any:
        return list(self.notes)

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        if isinstance(envelope.body, Note):
            self.notes.append(envelope.body.text)

    async def on_job_cancelled(self, cancellation: JobCancellation) -> None:
        await super().on_job_cancelled(cancellation)
        self.cancellations[cancellation.job_id] = cancellation.reason


async def main(port: int, token: str | None) -> None:
    """Serve the workers until killed."""

    def authenticate(request: LinkRequest) -> bool:
        return token is None or request.header("authorization") == f"Bearer {token}"

    async with open_actor_system("workers") as system, trio.open_nursery() as nursery:
        for name in WORKERS:
            await system.spawn(Worker(name))

        async def serve(task_status: trio.TaskStatus[Any]) -> None:
            await serve_websocket_link(
                system,
                host="127.0.0.1",
                port=port,
                exports=WORKERS,
                authenticate=authenticate,
                ping_interval=2.0,
                task_status=task_status,
            )

        server = await nursery.start(serve)
        print(f"ready {server.port}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--token")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    trio.run(main, arguments.port, arguments.token)
