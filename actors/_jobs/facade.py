"""The requester API that `Actor` and `ActorSystem` share: `job()`, `job_group()` and friends.

A facade without state: every method checks its arguments and hands over to the `Requester`
component its owner *has* (`_job_requester`). The `on_job_*` hooks are defined here so both
owners document them once.
"""

from __future__ import annotations

from typing import Any

from .context import JobContext, JobGroupContext
from .requester import Requester, check_members, check_timeout
from .types import JobEvent, JobResponse, JobResult


class JobRequesterAPI:
    """Dispatching jobs and receiving their answers; mixed into `Actor` and `ActorSystem`."""

    def _job_requester(self) -> Requester:
        raise NotImplementedError

    def _check_job(self, members: tuple[str, ...], name: str | None) -> None:
        """Refuse a job that could never finish (an actor's owner overrides it)."""

    def job(
        self,
        actor_name: str,
        *,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,
    ) -> JobContext:
        """Dispatch a job to one worker: ``async with self.job("w", payload=...) as j:``.

        Entering waits for the worker to be ready and sends the request; ``async for event in
        j`` yields its updates and stream events; leaving waits for its answer (`j.response`,
        `j.status`).

        Raises:
            TypeError, ValueError: for a bad worker name or timeout (at the call).
            ActorStateError: if the requester can no longer open jobs (it has ended).
            JobError: on leaving, if the worker answered ERROR, FAILED or CANCELLED.
            JobTimeout: if `timeout` passed first (the worker was cancelled).
        """
        members = check_members((actor_name,))
        seconds = check_timeout(timeout)
        requester = self._job_requester()
        requester.check_open()
        self._check_job(members, name)
        return JobContext(requester, members, name, payload, seconds, True)

    def job_group(
        self,
        *actor_names: str,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,
        cancel_on_error: bool = True,
    ) -> JobGroupContext:
        """Dispatch one job to many workers at once; see `job`.

        ``g.responses``, ``g.statuses`` and ``g.errors`` map each worker's name to its outcome.

        Raises:
            JobGroupError: on leaving, with ``cancel_on_error`` (the default), when a member did
                not complete (the others were cancelled at once). With
                ``cancel_on_error=False`` worker outcomes do not raise.
            JobTimeout: if `timeout` passed first (every member still working was cancelled).
        """
        members = check_members(actor_names)
        seconds = check_timeout(timeout)
        requester = self._job_requester()
        requester.check_open()
        self._check_job(members, name)
        return JobGroupContext(requester, members, name, payload, seconds, cancel_on_error)

    async def request_job(
        self,
        actor_name: str,
        *,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's own budget (STYLE section 4)
    ) -> str:
        """Send a job and return its id once sent; answers arrive on the `on_job_*` hooks.

        Waits for the worker to be ready first (within `timeout`).

        Raises:
            JobTimeout: if the worker is not ready before the deadline.
        """
        return await self.request_job_group(actor_name, name=name, payload=payload, timeout=timeout)

    async def request_job_group(
        self,
        *actor_names: str,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's own budget (STYLE section 4)
        cancel_on_error: bool = True,
    ) -> str:
        """Send one job to many workers and return its id; answers arrive on the hooks.

        Raises:
            JobTimeout: if a worker is not ready before the deadline.
        """
        members = check_members(actor_names)
        seconds = check_timeout(timeout)
        requester = self._job_requester()
        requester.check_open()
        self._check_job(members, name)
        return await requester.request(members, name, payload, seconds, cancel_on_error)

    async def cancel_job(self, job_id: str, reason: str | None = None) -> None:
        """Cancel every member of job `job_id` still working; each answers CANCELLED.

        Unknown or finished jobs are ignored.
        """
        await self._job_requester().cancel_job(job_id, reason)

    async def request_job_update(self, job_id: str, actor_name: str) -> None:
        """Ask worker `actor_name` for a progress update on `job_id` (it answers with one)."""
        await self._job_requester().request_update(job_id, actor_name)

    # --- hooks of fire-and-forget jobs --------------------------------------------------------

    async def on_job_response(self, response: JobResponse) -> None:
        """Called for each worker's terminal answer to a `request_job*` job (exactly once)."""

    async def on_job_update(self, event: JobEvent) -> None:
        """Called for each progress update of a `request_job*` job."""

    async def on_job_stream_start(self, event: JobEvent) -> None:
        """Called when a worker of a `request_job*` job starts streaming."""

    async def on_job_stream_data(self, event: JobEvent) -> None:
        """Called for each stream chunk of a `request_job*` job."""

    async def on_job_stream_end(self, event: JobEvent) -> None:
        """Called when a worker of a `request_job*` job ends its stream."""

    async def on_job_completed(self, result: JobResult) -> None:
        """Called once every member of a `request_job*` job has answered."""

    async def on_job_error(self, response: JobResponse) -> None:
        """Called when a member's failure cancels the job (``cancel_on_error``).

        A failure is an ERROR or FAILED answer, or CANCELLED when the requester did not ask
        for it (the worker stopped); a timeout or `cancel_job` is not one.
        """
