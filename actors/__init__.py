"""Actors: supervised Trio tasks that share nothing and talk through mailboxes.

Start with `open_actor_system`, subclass `Actor`, and `spawn` it.
"""

from ._bridges.endpoint import Bridge as Bridge
from ._exceptions import ActorError as ActorError
from ._exceptions import ActorNotFound as ActorNotFound
from ._exceptions import ActorStateError as ActorStateError
from ._exceptions import DecodeError as DecodeError
from ._exceptions import EncodeError as EncodeError
from ._exceptions import NameTaken as NameTaken
from ._jobs.context import JobContext as JobContext
from ._jobs.context import JobGroupContext as JobGroupContext
from ._jobs.types import JobCancellation as JobCancellation
from ._jobs.types import JobError as JobError
from ._jobs.types import JobEvent as JobEvent
from ._jobs.types import JobEventType as JobEventType
from ._jobs.types import JobGroupError as JobGroupError
from ._jobs.types import JobRequest as JobRequest
from ._jobs.types import JobResponse as JobResponse
from ._jobs.types import JobResult as JobResult
from ._jobs.types import JobTimeout as JobTimeout
from ._jobs.types import job as job
from ._routing.mailbox import Mailbox as Mailbox
from ._routing.mailbox import MailboxInterrupted as MailboxInterrupted
from ._routing.mailbox import MailboxStatistics as MailboxStatistics
from ._routing.registry import Watch as Watch
from ._runtime.actor import Actor as Actor
from ._runtime.finished import Finished as Finished
from ._runtime.instance import ActorSpec as ActorSpec
from ._runtime.statistics import SystemStatistics as SystemStatistics
from ._runtime.system import ActorSystem as ActorSystem
from ._runtime.system import open_actor_system as open_actor_system
from ._wire.codec import EnvelopeCodec as EnvelopeCodec
from ._wire.envelope import AgentError as AgentError
from ._wire.envelope import AgentInfo as AgentInfo
from ._wire.envelope import Envelope as Envelope
from ._wire.envelope import JobStatus as JobStatus

__all__ = [
    "Actor",
    "ActorError",
    "ActorNotFound",
    "ActorSpec",
    "ActorStateError",
    "ActorSystem",
    "AgentError",
    "AgentInfo",
    "Bridge",
    "DecodeError",
    "EncodeError",
    "Envelope",
    "EnvelopeCodec",
    "Finished",
    "JobCancellation",
    "JobContext",
    "JobError",
    "JobEvent",
    "JobEventType",
    "JobGroupContext",
    "JobGroupError",
    "JobRequest",
    "JobResponse",
    "JobResult",
    "JobStatus",
    "JobTimeout",
    "Mailbox",
    "MailboxInterrupted",
    "MailboxStatistics",
    "NameTaken",
    "SystemStatistics",
    "Watch",
    "job",
    "open_actor_system",
]
