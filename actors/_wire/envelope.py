"""The wire vocabulary: the envelope header and every system message body.

Pure data, no I/O. Every type here is a frozen, keyword-only `msgspec.Struct`, so a message
is immutable in-process and encodes the same way whichever transport carries it.

An `Envelope` holds a header and one body. The body is either a system message (one of the
`SystemMessage` Structs below, identified on the wire by its tag) or a user-defined frozen
Struct (identified by its module and qualified name; see `_codec`). Job payloads, responses and
update data are plain msgspec-encodable values (`Any`): dicts, lists, scalars or Structs.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

PROTOCOL_VERSION = 1
"""Version of the wire format. A peer speaking another version is refused when decoding."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One message on its way from a sender to a recipient (or to everybody).

    Attributes:
        id: unique message id; at-least-once transports drop duplicates by it.
        sender: name of the sending actor (or system).
        recipient: name of the receiving actor, or None for a broadcast.
        body: the message: a system message Struct or a user-defined frozen Struct.
        job_id: the job this message belongs to, if any.
        urgent: handled ahead of queued traffic in the recipient's mailbox.
        deadline: seconds of budget left when the message was sent, if a deadline applies.
        trace: opaque trace context (for example W3C traceparent), propagated unchanged.
        version: protocol version of the sender.
    """

    id: str
    """Unique message id; at-least-once transports drop duplicates by it."""
    sender: str
    """Name of the sending actor (or system)."""
    recipient: str | None
    """Name of the receiving actor, or None for a broadcast."""
    body: Any
    """The message: a system message Struct or a user-defined frozen Struct."""
    job_id: str | None = None
    """The job this message belongs to, if any."""
    urgent: bool = False
    """Handled ahead of queued traffic in the recipient's mailbox."""
    deadline: float | None = None
    """Seconds of budget left when the message was sent (relative, so clocks need not agree)."""
    trace: dict[str, str] | None = None
    """Opaque trace context (for example W3C traceparent), propagated unchanged."""
    version: int = PROTOCOL_VERSION
    """Protocol version of the sender."""


class SystemMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of the runtime's own message bodies; each subclass has a short wire tag."""


# --- registry and lifecycle (broadcast) ------------------------------------------------------


class AgentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the registry knows about one live actor; passed to `on_agent_ready`.

    Attributes:
        name: the actor's unique name.
        system: name of the actor system (node) that runs it.
        parent: name of its parent actor, or None for a root actor.
        active: whether it is active (bridged frames reach only active actors).
        bridged: the bridges it takes frames from: None if not bridged, () for every bridge.
        started_at: wall-clock time (Unix seconds) when it became ready.
        incarnation: identifies this start of the actor; a restart gets a new one.
    """

    name: str
    """The actor's unique name."""
    system: str
    """Name of the actor system (node) that runs it."""
    parent: str | None = None
    """Name of its parent actor, or None for a root actor."""
    active: bool = True
    """Whether it is active (bridged frames reach only active actors)."""
    bridged: tuple[str, ...] | None = None
    """The bridges it takes frames from: None if not bridged, () for every bridge."""
    started_at: float = 0.0
    """Wall-clock time (Unix seconds) when it became ready."""
    incarnation: str = ""
    """Identifies this start of the actor; a restart gets a new one."""


class AgentReady(SystemMessage, frozen=True, kw_only=True, tag="ready"):
    """Broadcast when an actor is ready, and in answer to a `RegistryQuery`."""

    info: AgentInfo


class AgentGone(SystemMessage, frozen=True, kw_only=True, tag="gone"):
    """Broadcast when an actor has finished and released its name.

    Attributes:
        crashed: True when it ended by an error (its jobs end FAILED), False when it stopped.
        restarting: True when its supervisor may start it again: the jobs it ran have
            answered for themselves, and the requests it had not started wait for the next
            instance, so requesters settle nothing on this notice.
    """

    name: str
    system: str
    crashed: bool = False
    reason: str | None = None
    restarting: bool = False


class AgentActivation(SystemMessage, frozen=True, kw_only=True, tag="activation"):
    """Broadcast when an actor becomes active or inactive."""

    name: str
    active: bool


class RegistryQuery(SystemMessage, frozen=True, kw_only=True, tag="registry_query"):
    """Broadcast by a system that joins, asking every peer to announce its live actors."""

    system: str


class SystemGone(SystemMessage, frozen=True, kw_only=True, tag="system_gone"):
    """Broadcast (or synthesized by a transport) when a whole actor system has ended or died.

    Attributes:
        crashed: True when it vanished (process died, heartbeat lost); its actors' jobs end FAILED.
    """

    system: str
    crashed: bool = False


# --- activation and errors (addressed) -------------------------------------------------------


class Activate(SystemMessage, frozen=True, kw_only=True, tag="activate"):
    """Asks the recipient to become active.

    Attributes:
        args: activation arguments, handed to `on_activated`.
        redeliver: call `on_activated` again with new args if the actor is already active.
        handoff_from: name of the actor that deactivated itself to hand off, if any.
    """

    args: Any = None
    redeliver: bool = False
    handoff_from: str | None = None


class Deactivate(SystemMessage, frozen=True, kw_only=True, tag="deactivate"):
    """Asks the recipient to become inactive (a no-op if it already is)."""


class AgentError(SystemMessage, frozen=True, kw_only=True, tag="agent_error"):
    """An error reported by an actor (`send_error`) or about it (a crash).

    Attributes:
        name: the actor the error concerns.
        error: description of the error.
        fatal: True when the actor ended because of it (a crash).
        decision: for a crash, what the supervisor decided: ``"restart"``, ``"ignore"``
            (its restart type says it stays down) or ``"give_up"`` (restart intensity was
            exceeded, so the parent itself fails).
    """

    name: str
    """The actor the error concerns."""
    error: str
    """Description of the error (``Type: message`` for a crash)."""
    fatal: bool = False
    """True when the actor ended because of it (a crash)."""
    decision: str | None = None
    """For a crash, what its supervisor decided: "restart", "ignore" or "give_up"."""


# --- bridges ---------------------------------------------------------------------------------


class BridgeFrame(SystemMessage, frozen=True, kw_only=True, tag="frame"):
    """One frame travelling on a bridge, either way.

    The frame is a user-defined Struct, carried encoded (`data`) with its type name so that the
    receiver decodes it against a type it already has loaded.

    Attributes:
        bridge: the bridge's name.
        seq: the bridge's sequence number for inbound frames (0 for outbound ones).
        epoch: the bridge's delivery epoch; once an actor hands back a frame of an epoch it
            hands back every later frame of that epoch, which keeps frames in order.
        frame_type: the frame Struct's wire type name.
        data: the encoded frame.
    """

    bridge: str
    seq: int
    epoch: int
    frame_type: str
    data: msgspec.Raw


class BridgeAck(SystemMessage, frozen=True, kw_only=True, tag="frame_ack"):
    """An actor settles an inbound frame: handled (`returned=False`) or handed back."""

    bridge: str
    seq: int
    epoch: int
    returned: bool = False


# --- jobs ------------------------------------------------------------------------------------


class JobStatus(enum.Enum):
    """Terminal status of one member of a job.

    `COMPLETED` is the only success. `ERROR`: the handler failed or refused the request.
    `FAILED`: the worker vanished (crashed, its process died, its node stopped heartbeating).
    `CANCELLED`: the job was cancelled (by the requester, a deadline, or the worker stopping).
    """

    COMPLETED = "completed"
    """The worker finished and answered: the only success."""
    ERROR = "error"
    """The handler raised, or refused the request (invalid payload, no handler)."""
    FAILED = "failed"
    """The worker vanished: it crashed, its process died or its node stopped heartbeating."""
    CANCELLED = "cancelled"
    """The job was cancelled: by the requester, a deadline, or the worker stopping."""


class JobRequestMessage(SystemMessage, frozen=True, kw_only=True, tag="job_request"):
    """Asks the recipient to run a job; the envelope carries `job_id` and the deadline.

    Attributes:
        name: which `@job(name=...)` handler to run (None for the default one).
        payload: the job's input data.
    """

    name: str | None = None
    payload: Any = None


class JobCancel(SystemMessage, frozen=True, kw_only=True, tag="job_cancel"):
    """Asks the worker to cancel a job (sent urgent). Without a reason the job still fails."""

    reason: str | None = None


class JobResponseMessage(SystemMessage, frozen=True, kw_only=True, tag="job_response"):
    """A worker's terminal answer for its part of a job.

    Attributes:
        status: the terminal status.
        response: the result (for COMPLETED) or what the worker chose to send along.
        error: for ERROR/FAILED/CANCELLED, what went wrong.
    """

    status: JobStatus
    response: Any = None
    error: str | None = None


class JobUpdateMessage(SystemMessage, frozen=True, kw_only=True, tag="job_update"):
    """A progress update from a worker."""

    data: Any = None


class JobStreamStart(SystemMessage, frozen=True, kw_only=True, tag="job_stream_start"):
    """A worker begins streaming results."""

    data: Any = None


class JobStreamData(SystemMessage, frozen=True, kw_only=True, tag="job_stream_data"):
    """One chunk of a worker's stream."""

    data: Any = None


class JobStreamEnd(SystemMessage, frozen=True, kw_only=True, tag="job_stream_end"):
    """A worker ends its stream; this completes its part of the job with `data` as response."""

    data: Any = None


class JobUpdateRequest(SystemMessage, frozen=True, kw_only=True, tag="job_update_request"):
    """The requester asks a worker for a progress update."""


class JobCredit(SystemMessage, frozen=True, kw_only=True, tag="job_credit"):
    """The requester grants a worker room for `count` more events (stream flow control)."""

    count: int


SYSTEM_MESSAGE_TYPES: tuple[type[SystemMessage], ...] = (
    AgentReady,
    AgentGone,
    AgentActivation,
    RegistryQuery,
    SystemGone,
    Activate,
    Deactivate,
    AgentError,
    BridgeFrame,
    BridgeAck,
    JobRequestMessage,
    JobCancel,
    JobResponseMessage,
    JobUpdateMessage,
    JobStreamStart,
    JobStreamData,
    JobStreamEnd,
    JobUpdateRequest,
    JobCredit,
)
"""Every system message type, in a fixed order (used to build the codec's tables)."""

REPLY_TYPES: tuple[type[SystemMessage], ...] = (
    JobResponseMessage,
    JobUpdateMessage,
    JobStreamStart,
    JobStreamData,
    JobStreamEnd,
)
"""What a worker sends its requester about a job: taken by the requester on delivery."""

CONTROL_TYPES: frozenset[type[SystemMessage]] = frozenset({*REPLY_TYPES, JobCancel, JobCredit})
"""Runtime control traffic: taken on delivery, never queued behind a full mailbox."""
