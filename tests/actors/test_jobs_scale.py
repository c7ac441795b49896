"""Scale: a thousand concurrent jobs to one worker complete and leave nothing behind."""

from __future__ import annotations

from typing import Any

import trio
from trio.testing import MockClock

from actors import Actor, JobRequest, JobStatus, job
from actors.testing import open_test_system

from actor_support import held_jobs, open_jobs

JOBS = 1000


class Doubler(Actor):
    """Sends one update, waits a second, and answers twice its payload."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.running = 0
        self.max_running = 0

    @job
    async def double(self, request: JobRequest[Any]) -> Any:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await self.send_job_update(request.job_id, "working")
            await trio.sleep(1)
        finally:
            self.running -= 1
        return request.payload * 2


async def test_a_thousand_concurrent_jobs_complete_and_leave_no_task(
    autojump_clock: MockClock,
) -> None:
    """1,000 concurrent `job()` calls to one worker all complete, at once in virtual time;
    afterwards the worker holds no job, the system tracks no request, and closing the system
    leaves exactly as many Trio tasks as there were before it opened."""
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    responses: dict[int, Any] = {}
    async with open_test_system("scale") as system:
        worker = await system.spawn(Doubler("doubler"))

        async def one(index: int) -> None:
            async with system.job("doubler", payload=index) as j:
                updates = [event.data async for event in j]
            assert updates == ["working"]
            assert j.status is JobStatus.COMPLETED
            responses[index] = j.response

        async with trio.open_nursery() as nursery:
            for index in range(JOBS):
                nursery.start_soon(one, index)
        assert trio.current_time() == 1
        assert responses == {index: index * 2 for index in range(JOBS)}
        assert worker.max_running == JOBS
        await trio.testing.wait_all_tasks_blocked()
        assert held_jobs(worker) == {}
        assert open_jobs(system) == {}
        assert trio.lowlevel.current_statistics().tasks_living > tasks_before
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before
