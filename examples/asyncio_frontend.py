"""A plain asyncio program dispatches a job group to workers that a Trio process serves.

This is how an asyncio application (a FastAPI service, a pipecat bot) calls into an actor
tree: `actors.client.open_client` connects to the Trio process's WebSocket link, and the
front end opens one `job_group` to the three researchers of `research_workers.py`, printing
their updates and streamed findings as they arrive, interleaved, then every summary. The
program runs under ``asyncio.run`` and imports nothing of Trio itself.

Run the workers, then the front end::

    python examples/research_workers.py --port 8766
    python examples/asyncio_frontend.py --url ws://127.0.0.1:8766/ws --topic "tidal power"
"""

from __future__ import annotations

import argparse
import asyncio

from actors.client import JobEventType, open_client

RESEARCHERS = ("researcher-1", "researcher-2", "researcher-3")


async def research(url: str, topic: str) -> dict[str, str]:
    """Ask every researcher about `topic`, printing what streams back; return the summaries."""
    async with open_client(url, system="asyncio-frontend") as client, asyncio.timeout(30):
        async with client.job_group(
            *RESEARCHERS, name="research", payload={"topic": topic}, timeout=20
        ) as group:
            async for event in group:
                if event.type is JobEventType.UPDATE:
                    print(f"[{event.actor_name}] ... {event.data}", flush=True)
                elif event.type is JobEventType.STREAM_DATA:
                    print(f"[{event.actor_name}] {event.data}", flush=True)
        summaries: dict[str, str] = group.responses
    for name in RESEARCHERS:
        print(f"{name}: {summaries[name]}", flush=True)
    return summaries


def main() -> None:
    """Parse the command line and run the front end under `asyncio.run`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8766/ws")
    parser.add_argument("--topic", default="tidal power")
    arguments = parser.parse_args()
    asyncio.run(research(arguments.url, arguments.topic))


if __name__ == "__main__":
    main()
