"""Errors raised by the actor runtime.

Every error subclasses `ActorError`, and where it resembles a builtin it subclasses that too,
so callers can catch either. Messages are built from fields kept as attributes.
"""

from __future__ import annotations

from collections.abc import Iterable


class ActorError(Exception):
    """Base class of every error the actor runtime raises."""


class ActorNotFound(ActorError, LookupError):
    """No live actor is registered under the name a message or job was addressed to.

    Attributes:
        name: the name that was looked up.
        known: names that were registered at the time, sorted (may be empty).
        reason: why it is gone, when that is known (its supervisor gave up on it, say).
    """

    def __init__(self, name: str, known: Iterable[str] = (), *, reason: str | None = None) -> None:
        self.name = name
        """The name that was looked up."""
        self.known = tuple(sorted(known))
        """Names that were registered at the time, sorted (may be empty)."""
        self.reason = reason
        """Why it is gone, when that is known."""
        message = f"no actor named {name!r} is registered"
        if reason:
            message += f" ({reason})"
        if self.known:
            shown = ", ".join(repr(n) for n in self.known[:10])
            more = ", ..." if len(self.known) > 10 else ""
            message += f"; known: {shown}{more}"
        super().__init__(message)


class NameTaken(ActorError, ValueError):
    """An actor was registered under a name that a live actor already holds.

    Attributes:
        name: the contested name.
        owner: the actor system (node) that holds it, if known.
    """

    def __init__(self, name: str, owner: str | None = None) -> None:
        self.name = name
        """The contested name."""
        self.owner = owner
        """The actor system (node) that holds it, if known."""
        where = f" on system {owner!r}" if owner else ""
        super().__init__(
            f"an actor named {name!r} is already registered{where}; actor names must be unique"
        )


class DecodeError(ActorError, ValueError):
    """Bytes could not be decoded into an envelope.

    Raised for garbage, truncated or oversized input, an unsupported protocol version, an
    unknown message type, or a body that does not match its declared type. A receive loop
    that gets one reports it, counts it and goes on.

    Attributes:
        reason: what was wrong, one lowercase sentence.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        """What was wrong, one lowercase sentence."""
        super().__init__(f"cannot decode envelope: {reason}")


class EncodeError(ActorError, TypeError):
    """A message or payload cannot be encoded, so it could not cross a process boundary.

    Attributes:
        reason: what could not be encoded and why.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        """What could not be encoded and why."""
        super().__init__(f"cannot encode envelope: {reason}")


class ActorStateError(ActorError, RuntimeError):
    """An operation was attempted in a state that does not allow it.

    Examples: spawning into a system that is shutting down, or adding a child to an actor
    that is not running.
    """
