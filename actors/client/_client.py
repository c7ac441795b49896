"""`open_client`: an asyncio (or Trio) program as a tiny actor system across a WebSocket link.

A `Client` *has* a `ClientLink` (the connection, the server's announced actors, the traffic)
and a `ClientRequester` (the jobs, on the runtime's pure `JobLedger`); it checks arguments and
hands over, like the runtime's requester facade. One task group, `open_client`'s, holds the
client's tasks: the link's connection keeper, the timer of job deadlines and the runner of
`JobHooks`. See `_link` for the link's rules and `_requester` for the jobs'.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, NoReturn, final

import anyio
import attrs
import msgspec

from transports import ReconnectBackoff
from transports import _websocket_protocol as protocol

from .._exceptions import ActorNotFound
from .._jobs.requester import check_members, check_timeout
from .._wire.envelope import AgentInfo, SystemMessage
from ._context import ClientJob, ClientJobGroup
from ._hooks import ClientWatch, JobHooks, WatchCallback
from ._link import ClientLink
from ._requester import ClientRequester

DEFAULT_PING_INTERVAL: Final = 10.0
"""Default seconds between two pings; a server silent that long after one is dead."""


@attrs.frozen
class ClientStatistics:
    """Counters of one client."""

    connections: int
    """How many times it has connected."""
    connected: bool
    """Whether a link is up now."""
    jobs: int
    """Jobs open now."""
    sent: int
    """Packets sent."""
    received: int
    """Packets received and taken."""
    refused: int
    """Messages refused: text, oversized, malformed or undecodable."""
    hostile: int
    """Envelopes dropped for what they claimed (a wrong recipient or system)."""
    dropped: int
    """Control traffic dropped because the link was down (its job had ended already)."""


@final
class Client:
    """A connection to a `serve_websocket_link` server that runs jobs on its actors.

    Made by `open_client`. It offers the requester API of an actor system, with the same
    semantics, statuses and exceptions: `job`, `job_group`, `request_job`,
    `request_job_group`, `cancel_job`, `request_job_update`, `send_message`, plus the
    readiness of the server's exported actors (`wait_ready`, `watch`, `agents`).
    """

    def __init__(self, link: ClientLink, requester: ClientRequester) -> None:
        self._link = link
        self._requester = requester

    def __repr__(self) -> str:
        state = "connected" if self.connected else "reconnecting"
        return (
            f"<Client [{self.system!r} -> {self.url!r}, {state}, "
            f"connections: {self._link.connections}, jobs: {len(self._requester.jobs)}]>"
        )

    # --- state ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's URL."""
        return self._link.url

    @property
    def system(self) -> str:
        """This client's system name (sent in its hello)."""
        return self._link.system

    @property
    def peer_system(self) -> str | None:
        """The server system's name, from its hello (None before the first connection)."""
        return self._link.peer_system

    @property
    def address(self) -> str:
        """The name the server's workers answer to (``system:<name>``)."""
        return self._link.address

    @property
    def connected(self) -> bool:
        """Whether a link is up now."""
        return self._link.connected

    @property
    def agents(self) -> dict[str, AgentInfo]:
        """The server's exported actors that are ready now, by name."""
        return self._link.agents

    def statistics(self) -> ClientStatistics:
        """Return the client's counters."""
        link = self._link
        return ClientStatistics(
            connections=link.connections,
            connected=link.connected,
            jobs=len(self._requester.jobs),
            sent=link.sent,
            received=link.received,
            refused=link.refused,
            hostile=link.hostile,
            dropped=link.dropped,
        )

    async def wait_connected(self) -> None:
        """Wait until a link is up (a checkpoint even when it already is)."""
        await self._link.wait_connected()

    async def wait_ready(self, name: str) -> AgentInfo:
        """Wait until the server announces actor `name` as ready; return its entry.

        Bound it with the host loop's timeout (``asyncio.timeout``, ``anyio.fail_after``).
        """
        return await self._link.wait_ready(name)

    def watch(self, name: str, callback: WatchCallback) -> ClientWatch:
        """Call `callback(info)` each time actor `name` becomes ready, at once if it is.

        Returns:
            The `ClientWatch`; `cancel` it, or use it as a ``with`` block, to release it.
        """
        return self._link.watch(name, callback)

    # --- the requester API ------------------------------------------------------------------

    def job(
        self,
        actor_name: str,
        *,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,
    ) -> ClientJob:
        """Dispatch a job to one worker: ``async with client.job("w", payload=...) as j:``.

        Entering waits for the worker to be ready and sends the request; ``async for event in
        j`` yields its updates and stream events; leaving waits for its answer (`j.response`,
        `j.status`).

        Raises:
            TypeError, ValueError: for a bad worker name or timeout (at the call).
            ActorStateError: if the client has closed.
            JobError: on leaving, if the worker answered ERROR, FAILED or CANCELLED (a dropped
                link ends it FAILED).
            JobTimeout: if `timeout` passed first (the worker was cancelled).
        """
        members = check_members((actor_name,))
        seconds = check_timeout(timeout)
        self._requester.check_open()
        return ClientJob(self._requester, members, name, payload, seconds, True)

    def job_group(
        self,
        *actor_names: str,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,
        cancel_on_error: bool = True,
    ) -> ClientJobGroup:
        """Dispatch one job to many workers at once; see `job`.

        ``g.responses``, ``g.statuses`` and ``g.errors`` map each worker's name to its outcome.

        Raises:
            JobGroupError: on leaving, with ``cancel_on_error`` (the default), when a member did
                not complete (the others were cancelled at once).
            JobTimeout: if `timeout` passed first (every member still working was cancelled).
        """
        members = check_members(actor_names)
        seconds = check_timeout(timeout)
        self._requester.check_open()
        return ClientJobGroup(self._requester, members, name, payload, seconds, cancel_on_error)

    async def request_job(
        self,
        actor_name: str,
        *,
        name: str | None = None,
        payload: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's own budget (STYLE section 4)
    ) -> str:
        """Send a job and return its id once sent; answers arrive on the client's `JobHooks`.

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
        """Send one job to many workers and return its id; answers arrive on the `JobHooks`.

        Raises:
            JobTimeout: if a worker is not ready before the deadline.
        """
        members = check_members(actor_names)
        seconds = check_timeout(timeout)
        requester = self._requester
        job = requester.open(members, cancel_on_error, seconds, direct=False)
        await requester.dispatch(job, name, payload)
        return job.ledger.job_id

    async def cancel_job(self, job_id: str, reason: str | None = None) -> None:
        """Cancel every member of job `job_id` still working; each answers CANCELLED.

        Unknown or finished jobs are ignored.
        """
        await self._requester.cancel_job(job_id, reason)

    async def request_job_update(self, job_id: str, actor_name: str) -> None:
        """Ask worker `actor_name` for a progress update on `job_id` (it answers with one)."""
        await self._requester.request_update(job_id, actor_name)

    async def send_message(
        self, name: str, message: msgspec.Struct, *, urgent: bool = False
    ) -> None:
        """Send a user-defined message to the server's actor `name` (its `on_message`).

        Messages arrive in the order they were sent; a full outbox makes this wait.

        Raises:
            TypeError: if `message` is not a frozen msgspec Struct.
            ActorNotFound: if the server has not announced `name` as ready.
            EncodeError: if the message cannot be encoded.
        """
        if not isinstance(message, msgspec.Struct) or isinstance(message, SystemMessage):
            raise TypeError(
                f"a message must be a user-defined msgspec.Struct, got {type(message).__name__!r}"
            )
        if not message.__struct_config__.frozen:
            raise TypeError(
                f"messages are immutable: declare {type(message).__name__} with "
                "msgspec.Struct(frozen=True)"
            )
        link = self._link
        if not link.is_ready(name):
            raise ActorNotFound(name, link.agents)
        if not await link.send(link.envelope(name, message, urgent=urgent)):
            raise ActorNotFound(name, link.agents, reason="the link dropped")


def _check_settings(ping_interval: float, max_message_size: int) -> None:
    if not ping_interval > 0:
        raise ValueError(f"ping_interval must be > 0, got {ping_interval!r}")
    if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
        raise TypeError(f"max_message_size must be an int, got {max_message_size!r}")
    if max_message_size <= 0:
        raise ValueError(f"max_message_size must be > 0, got {max_message_size!r}")


@asynccontextmanager
async def open_client(
    url: str,
    *,
    system: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    ssl_context: ssl.SSLContext | None = None,
    hooks: JobHooks | None = None,
    ping_interval: float = DEFAULT_PING_INTERVAL,
    max_message_size: int = protocol.DEFAULT_MAX_MESSAGE_SIZE,
    backoff: ReconnectBackoff | None = None,
) -> AsyncIterator[Client]:
    """Connect to a `serve_websocket_link` server and run jobs on its actors in the block.

    Runs on asyncio (``asyncio.run``) and on Trio alike: it is built on anyio streams and
    wsproto, with no Trio call on its path. Entering connects once (and raises if that
    fails); afterwards a dropped link ends the jobs in flight FAILED at once and the client
    reconnects with backoff, sending its hello again. Leaving cancels the jobs still open and
    says goodbye.

    Args:
        url: ``ws://host:port/path`` or ``wss://...``.
        system: this client's system name (unique among the server's peers; default: a
            random ``client-...``).
        headers: extra request headers, for example ``[("Authorization", "Bearer ...")]``.
        ssl_context: the context for ``wss://`` (for example one trusting a private CA).
        hooks: callbacks for the answers of `Client.request_job` jobs (default: none).
        ping_interval: seconds between pings; a server silent that long after one is dead.
        max_message_size: largest packet accepted or sent, in bytes.
        backoff: the reconnect schedule (default: 0.1 s doubling to 5 s, 20% jitter).

    Raises:
        LinkRejected: if the server refused the connection (401, 403, ...).
        LinkVersionMismatch: if the server speaks another link protocol version.
        LinkHandshakeError: if the handshake failed otherwise.
        OSError: if the first connection could not be made.

    Cancellation: entering waits for the first connection; leaving is bounded and shielded.
    """
    _check_settings(ping_interval, max_message_size)
    link = ClientLink(
        url,
        system=system if system is not None else f"client-{secrets.token_hex(4)}",
        headers=headers,
        ssl_context=ssl_context,
        ping_interval=ping_interval,
        max_message_size=max_message_size,
        backoff=backoff if backoff is not None else ReconnectBackoff(),
    )
    requester = ClientRequester(link, hooks if hooks is not None else JobHooks())
    link.requester = requester
    client = Client(link, requester)
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as services:
            await services.start(link.keep_connected)
            services.start_soon(requester.run_timers)
            services.start_soon(requester.run_hooks)
            try:
                yield client
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await link.leave()
                services.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One policy (STYLE section 4): the block's own exception comes out as itself; a
        # failure of the client's tasks comes out alone when it is the only one.
        cancelled = anyio.get_cancelled_exc_class()
        leaves = [leaf for leaf in _leaves(group) if not isinstance(leaf, cancelled)]
        if body_error is not None and not leaves:
            _reraise_alone(body_error)
        if len(leaves) == 1:
            _reraise_alone(leaves[0])
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_leaves(error))
        else:
            found.append(error)
    return found


def _reraise_alone(error: BaseException) -> NoReturn:
    """Raise `error` itself, keeping the cause and context it had."""
    cause, context, suppress = error.__cause__, error.__context__, error.__suppress_context__
    try:
        raise error
    finally:
        error.__cause__, error.__context__ = cause, context
        error.__suppress_context__ = suppress
