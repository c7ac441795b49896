"""Research workers in a Trio process, served over the WebSocket link to any front end.

Three actors, ``researcher-1`` to ``researcher-3``, each answer a "research" job: a progress
update, then their findings streamed one at a time, then a one-line summary (the stream's end,
which is the job's response). Deterministic, no API keys: the findings are scripted, and each
researcher "reads" for a scripted number of milliseconds per finding. `asyncio_frontend.py`
is the front end: a plain asyncio program.

Run it with ``python examples/research_workers.py --port 8766``; it prints the URL it serves.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import msgspec
import trio

from actors import Actor, JobRequest, job, open_actor_system
from transports import serve_websocket_link

RESEARCHERS = ("researcher-1", "researcher-2", "researcher-3")
"""The exported workers' names."""

ANGLES = {
    "researcher-1": ("history", 0.03),
    "researcher-2": ("economics", 0.05),
    "researcher-3": ("risks", 0.04),
}


class ResearchTopic(msgspec.Struct, frozen=True):
    """What the front end asks every researcher about."""

    topic: str
    findings: int = 3


class Researcher(Actor):
    """Streams scripted findings about a topic from its own angle."""

    @job(name="research")
    async def research(self, request: JobRequest[ResearchTopic]) -> None:
        angle, pause = ANGLES.get(self.name, ("general", 0.03))
        topic = request.payload.topic
        await self.send_job_update(request.job_id, f"reading about the {angle} of {topic}")
        await self.send_job_stream_start(request.job_id, angle)
        for index in range(1, request.payload.findings + 1):
            await trio.sleep(pause)
            finding = f"{angle} finding {index} on {topic}"
            await self.send_job_stream_data(request.job_id, finding)
        summary = f"{request.payload.findings} {angle} findings on {topic}"
        await self.send_job_stream_end(request.job_id, summary)


async def serve(host: str, port: int) -> None:
    """Serve the researchers until cancelled; prints the URL once listening."""
    async with open_actor_system("research-workers") as system, trio.open_nursery() as nursery:
        for name in RESEARCHERS:
            await system.spawn(Researcher(name))

        async def run(task_status: trio.TaskStatus[Any]) -> None:
            await serve_websocket_link(
                system, host=host, port=port, exports=RESEARCHERS, task_status=task_status
            )

        server = await nursery.start(run)
        print(f"listening on ws://{host}:{server.port}/ws", flush=True)


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    trio.run(serve, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
