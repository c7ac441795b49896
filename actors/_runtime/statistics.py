"""SystemStatistics: the counters an actor system reports, for tests and monitoring."""

from __future__ import annotations

import attrs


@attrs.frozen
class SystemStatistics:
    """Counters of an actor system, for tests and monitoring."""

    local_actors: int
    """Actors of this system that are registered now."""
    known_actors: int
    """Actors in the registry, local and remote."""
    decode_errors: int
    """Packets from the transport that could not be decoded (each logged and dropped)."""
    undeliverable: int
    """Envelopes that arrived for a name no local actor holds (dropped, or answered FAILED)."""
    duplicates: int = 0
    """Redelivered envelopes dropped by message id."""
    hostile: int = 0
    """Packets ignored because a peer spoke for actors it does not own or could not be read,
    and floods dropped past a bound (an actor's backlog, a worker's tombstones)."""
    dead_letters: int = 0
    """What was given up on instead of delivered again: job requests reclaimed from a dead
    system (answered FAILED), messages whose handler raised, poison bridge frames."""
    jobs_requested: int = 0
    """Jobs local requesters (actors and the system) have in flight."""
    jobs_held: int = 0
    """Jobs local workers hold (running or admitted)."""
    tombstones: int = 0
    """Cancels waiting for their request at local workers."""
    unacknowledged: int = 0
    """Deliveries from the link handed to actors and not yet acknowledged."""
    blocked_senders: int = 0
    """Tasks waiting for room in a full local mailbox (see ``slow_send_warning``)."""
