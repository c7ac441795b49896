"""The client's asyncio scenario under plain ``asyncio.run``, in a process with no Trio loop.

Usage: ``python asyncio_scenario.py URL TOKEN``. Before anything else it replaces every way to
start a Trio event loop (`trio.run`, `trio.lowlevel.start_guest_run`) with one that records
the attempt and refuses. It then runs a job with an update, a stream, a group, a task
cancelled inside a job (whose cancellation the worker reports), and ``asyncio.timeout()``
around a job, checking inside the loop that no Trio run is active. It prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, NoReturn

import sniffio
import trio
import trio.lowlevel
from trio._core import _run as trio_run

STARTS: list[str] = []


def _refuse(name: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        STARTS.append(name)
        raise AssertionError(f"{name} was called in a plain asyncio process")

    return refuse


trio.run = _refuse("trio.run")
trio_run.run = _refuse("trio._core._run.run")
trio.lowlevel.start_guest_run = _refuse("trio.lowlevel.start_guest_run")
trio_run.start_guest_run = _refuse("trio._core._run.start_guest_run")

from actors.client import Client, JobEventType, open_client  # noqa: E402


def trio_loop_active() -> bool:
    """Whether a Trio run is active in this thread (either way of asking Trio)."""
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return hasattr(trio_run.GLOBAL_RUN_CONTEXT, "runner")
    return True


async def remote_reason(client: Client, worker: str, job_id: str) -> str | None:
    """Wait until `worker` reports that its handler of `job_id` was cancelled."""
    async with asyncio.timeout(5):
        while True:
            async with client.job(worker, name="cancellations") as report:
                pass
            if job_id in report.response:
                reason: str | None = report.response[job_id]
                return reason
            await asyncio.sleep(0.02)


async def scenario(url: str, token: str) -> dict[str, Any]:
    """Run every kind of job from plain asyncio; return what happened."""
    result: dict[str, Any] = {"library": sniffio.current_async_library()}
    async with open_client(url, headers=[("Authorization", f"Bearer {token}")]) as client:
        async with asyncio.timeout(20):
            async with client.job("alpha", payload=1) as single:
                result["updates"] = [event.data async for event in single]
            result["single"] = [single.status.name if single.status else None, single.response]
            async with client.job("beta", name="stream", payload=3) as streamed:
                result["stream"] = [
                    event.data async for event in streamed if event.type is not JobEventType.UPDATE
                ]
            async with client.job_group("alpha", "beta", "gamma", payload=2) as group:
                async for _ in group:
                    pass
            result["group"] = {name: status.name for name, status in group.statuses.items()}

            started = asyncio.Event()
            ids: list[str] = []

            async def tool_call() -> None:
                async with client.job("gamma", name="slow") as job:
                    ids.append(job.job_id)
                    async for _ in job:
                        started.set()

            task = asyncio.create_task(tool_call())
            await started.wait()
            result["trio_active_inside"] = trio_loop_active()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                result["task"] = "cancelled"
            result["remote_reason"] = await remote_reason(client, "gamma", ids[0])

            try:
                async with asyncio.timeout(0.3), client.job("alpha", name="slow"):
                    pass
            except TimeoutError as exc:
                result["timeout"] = type(exc).__name__
    result["trio_active_after"] = trio_loop_active()
    return result


def main() -> None:
    """Run the scenario under `asyncio.run` and print the result as JSON."""
    url, token = sys.argv[1], sys.argv[2]
    result = asyncio.run(scenario(url, token))
    result["trio_starts"] = STARTS
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
