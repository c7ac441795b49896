"""The interface every transport implements: memory, Redis, WebSocket proxy.

Theory of operation
-------------------
A `Transport` is shared configuration; each actor system opens its own `TransportLink`
with `connect(system_name)` and keeps it for its lifetime. Through the link a system

- claims and releases the names of its actors (a name belongs to one live actor across every
  system on the transport);
- sends packets addressed to a name (the transport knows which system holds it), in batches
  when it can, and broadcasts packets to every other system (registry and lifecycle events);
- receives `Delivery` items addressed to its names or broadcast, and `PeerLost` notices when
  another system ends or stops answering (heartbeats), so that jobs held there end at once;
- acknowledges each delivery after handling it; an at-least-once transport redelivers what
  was not acknowledged, and the receiver drops duplicates by message id.

Flow control is per name, not per system. A link hands its system at most `window`
unacknowledged ordinary deliveries per recipient name; past that, senders to that name wait (or
its packets stay queued in the broker), while traffic to the system's other names goes on. So
one slow actor slows only its own senders. *Control* packets (job answers, cancels, credits)
are small, bounded by the jobs in flight, and must never queue behind a full actor: they skip
the window, and the receiver takes them at once.

A packet is opaque to the transport. Links whose `carries_objects` is False need `bytes` (they
cross a process boundary); the in-memory link in its default mode carries objects as they are.
Transports know nothing about actors: they move packets between names.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import attrs


@attrs.frozen
class Delivery:
    """A packet that arrived for this system."""

    recipient: str | None
    """The name it was addressed to, or None for a broadcast."""
    packet: object
    """The payload: `bytes`, or any object on a link that `carries_objects`."""
    token: object = attrs.field(default=None, eq=False)
    """What `TransportLink.ack` needs to acknowledge it (None when nothing does)."""
    reclaimed: bool = False
    """True when the transport took it over from a system that died before acknowledging it.

    The dead system may have started acting on it already, so the receiver must not run work
    it carries a second time (a job request is answered FAILED instead); plain messages are
    handled as usual (at-least-once, duplicates dropped by message id).
    """


@attrs.frozen
class PeerLost:
    """Another system on the transport has ended or stopped answering.

    A notice naming the receiving system itself means the transport lost what this system had
    announced (a broker restarted without its data): the system announces its actors again
    and asks its peers to do the same.
    """

    system: str
    """Its name."""
    crashed: bool
    """True when it vanished without a clean goodbye (died, heartbeat lost)."""
    reason: str | None = None
    """Why, when the transport knows more than "crashed" (for example a restarted broker)."""


class TransportLink(abc.ABC):
    """One actor system's connection to a transport."""

    system: str
    """The name of the system that owns this link."""

    carries_objects: bool = False
    """True when packets may be arbitrary objects; False when they must be `bytes`."""

    @abc.abstractmethod
    async def claim(self, name: str) -> None:
        """Take `name` for an actor of this system.

        Raises:
            NameClaimed: if a live actor of any system on the transport holds it.
        """

    @abc.abstractmethod
    async def release(self, name: str) -> None:
        """Give up `name` (a no-op if this system does not hold it)."""

    @abc.abstractmethod
    async def send(
        self,
        recipient: str,
        packet: object,
        *,
        control: bool = False,
        ack: Delivery | None = None,
    ) -> None:
        """Send `packet` to whichever system holds `recipient`, waiting for room.

        Args:
            recipient: the addressed name.
            packet: what to send (`bytes` unless the link `carries_objects`).
            control: runtime control traffic: it skips the per-name window (see the module
                docstring) and never waits behind ordinary packets for that name.
            ack: a delivery of this link to acknowledge together with the send. A transport
                that can, does both in one atomic step (a worker's answer and the request it
                settles), so a finished job is never redelivered; others send, then ack.

        Raises:
            UnknownRecipient: if no system holds `recipient`.
        """

    async def send_batch(
        self, items: Sequence[tuple[str, object]], *, control: bool = False
    ) -> None:
        """Send many addressed packets; transports that can batch do it in one round trip.

        Raises:
            UnknownRecipient: for the first recipient no system holds; earlier items were sent.
        """
        for recipient, packet in items:
            await self.send(recipient, packet, control=control)

    @abc.abstractmethod
    async def broadcast(self, packet: object) -> None:
        """Send `packet` to every other system on the transport."""

    @abc.abstractmethod
    async def receive(self) -> Delivery | PeerLost:
        """Wait for the next delivery or peer notice.

        Raises:
            trio.EndOfChannel: once the link is closed.
        """

    window: int = 1000
    """Most unacknowledged ordinary deliveries this link hands over per recipient name."""

    async def ack(self, delivery: Delivery) -> None:  # noqa: B027 - optional hook
        """Acknowledge `delivery` after handling it, once; this also frees its name's window.

        Acknowledging a delivery twice, or one whose token is None, is a no-op.
        """


class Transport(abc.ABC):
    """Moves packets between actor systems and tells them which names live where."""

    @abc.abstractmethod
    def connect(self, system: str) -> AbstractAsyncContextManager[TransportLink]:
        """Open this system's link; leaving the block releases its names and tells its peers.

        Raises:
            SystemNameTaken: if another connected system already uses `system`.
        """
