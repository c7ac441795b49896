"""Actors: supervised Trio tasks that share nothing and talk through mailboxes.

Start with `open_actor_system`, subclass `Actor`, and `spawn` it.
"""

from ._actor import Actor as Actor
from ._actor import Finished as Finished
from ._bridge import Bridge as Bridge
from ._codec import EnvelopeCodec as EnvelopeCodec
from ._envelope import AgentError as AgentError
from ._envelope import AgentInfo as AgentInfo
from ._envelope import Envelope as Envelope
from ._envelope import JobStatus as JobStatus
from ._exceptions import ActorError as ActorError
from ._exceptions import ActorNotFound as ActorNotFound
from ._exceptions import ActorStateError as ActorStateError
from ._exceptions import DecodeError as DecodeError
from ._exceptions import EncodeError as EncodeError
from ._exceptions import NameTaken as NameTaken
from ._job_context import JobContext as JobContext
from ._job_context import JobGroupContext as JobGroupContext
from ._jobs import JobCancellation as JobCancellation
from ._jobs import JobError as JobError
from ._jobs import JobEvent as JobEvent
from ._jobs import JobEventType as JobEventType
from ._jobs import JobGroupError as JobGroupError
from ._jobs import JobRequest as JobRequest
from ._jobs import JobResponse as JobResponse
from ._jobs import JobResult as JobResult
from ._jobs import JobTimeout as JobTimeout
from ._jobs import job as job
from ._lifecycle import ActorSpec as ActorSpec
from ._mailbox import Mailbox as Mailbox
from ._mailbox import MailboxInterrupted as MailboxInterrupted
from ._mailbox import MailboxStatistics as MailboxStatistics
from ._registry import Watch as Watch
from ._system import ActorSystem as ActorSystem
from ._system import SystemStatistics as SystemStatistics
from ._system import open_actor_system as open_actor_system

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
