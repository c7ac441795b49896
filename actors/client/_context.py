"""The `async with` side of the client's jobs: `ClientJobGroup` and `ClientJob`.

The runtime's own `actors.JobGroupContext` and `actors.JobContext`, with the same rules (the
client's requester is the host they drive): entering
waits for every worker to be ready and sends; iterating yields events as they arrive, granting
credit back as they are read; leaving waits for every member's terminal answer (discarding
unread events, still granting their credit) and raises for any outcome short of success. An
exception or cancellation inside the block, or while leaving, cancels every member still
working before it goes on.
"""

from __future__ import annotations

from .._jobs.context import JobContext, JobGroupContext


class ClientJobGroup(JobGroupContext):
    """An open job with one or more workers, made by `Client.job_group` (and `Client.job`).

    ``async with client.job_group("a", "b", payload=...) as g:`` then ``async for event in
    g``; after the block `responses`, `statuses` and `errors` hold every member's outcome.

    Cancellation: entering and leaving are checkpoints; a cancellation (asyncio's or Trio's)
    at either, or in the block, cancels the job's workers and goes on as itself.
    """

    async def __aenter__(self) -> ClientJobGroup:
        await super().__aenter__()
        return self


class ClientJob(ClientJobGroup, JobContext):
    """An open job with one worker, made by `Client.job`; adds `response` and `status`."""

    async def __aenter__(self) -> ClientJob:
        await super().__aenter__()
        return self
