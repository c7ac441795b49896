"""An anyio client for the WebSocket link: asyncio (and Trio) programs run jobs on actors.

``async with open_client("ws://host:port/ws") as client:`` connects to a
`transports.serve_websocket_link` server as a tiny actor system with no actors of its own,
and offers the requester API of `actors.ActorSystem` with the same semantics, statuses and
exceptions (`JobError`, `JobGroupError`, `JobTimeout`). It is built on anyio streams and
wsproto, so it runs under plain ``asyncio.run`` (a FastAPI service, a pipecat bot) as well as
under Trio; nothing it runs needs a Trio event loop.

Cancellation follows the host loop: an asyncio task cancelled inside ``client.job(...)``
cancels the remote job and goes on with its `asyncio.CancelledError`, and ``asyncio.timeout()``
around a job cancels the remote job and raises `TimeoutError`, as ``move_on_after`` and
``fail_after`` do on Trio. On Trio, an enclosing deadline also travels to the workers.

Answers of fire-and-forget jobs (`Client.request_job`) arrive on a `JobHooks` object passed to
`open_client`, like an actor's ``on_job_*`` hooks. Connection errors are the link's own, from
`transports`: `transports.LinkRejected` (401, 403, ...), `transports.LinkHandshakeError`.
"""

from .._jobs.types import JobError as JobError
from .._jobs.types import JobEvent as JobEvent
from .._jobs.types import JobEventType as JobEventType
from .._jobs.types import JobGroupError as JobGroupError
from .._jobs.types import JobResponse as JobResponse
from .._jobs.types import JobResult as JobResult
from .._jobs.types import JobTimeout as JobTimeout
from .._wire.envelope import AgentInfo as AgentInfo
from .._wire.envelope import JobStatus as JobStatus
from ._client import Client as Client
from ._client import ClientStatistics as ClientStatistics
from ._client import open_client as open_client
from ._context import ClientJob as ClientJob
from ._context import ClientJobGroup as ClientJobGroup
from ._hooks import ClientWatch as ClientWatch
from ._hooks import JobHooks as JobHooks

__all__ = [
    "AgentInfo",
    "Client",
    "ClientJob",
    "ClientJobGroup",
    "ClientStatistics",
    "ClientWatch",
    "JobError",
    "JobEvent",
    "JobEventType",
    "JobGroupError",
    "JobHooks",
    "JobResponse",
    "JobResult",
    "JobStatus",
    "JobTimeout",
    "open_client",
]
