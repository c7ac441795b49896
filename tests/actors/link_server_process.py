"""A WebSocket link server in a process of its own, for tests that kill it.

Usage: ``python link_server_process.py PORT``; prints ``ready`` once it listens. Its system
"back" exports "assistant", whose default job echoes and whose "slow" job never ends.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from actors import Actor, JobRequest, job, open_actor_system
from transports import serve_websocket_link


class Assistant(Actor):
    """Echoes the payload; its "slow" job waits until it is cancelled."""

    @job
    async def work(self, request: JobRequest[Any]) -> Any:
        return {"echo": request.payload, "by": self.name}

    @job(name="slow")
    async def slow(self, request: JobRequest[Any]) -> None:
        await trio.sleep_forever()


async def main(port: int) -> None:
    async with open_actor_system("back") as system, trio.open_nursery() as nursery:
        await system.spawn(Assistant("assistant"))

        async def serve(task_status: trio.TaskStatus[Any]) -> None:
            await serve_websocket_link(
                system, host="127.0.0.1", port=port, exports=["assistant"], task_status=task_status
            )

        await nursery.start(serve)
        print("ready", flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
