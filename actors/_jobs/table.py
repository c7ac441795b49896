"""The worker's table of jobs: what it holds, what it was told to cancel early. Pure.

Theory of operation
-------------------
Everything a worker knows about its jobs lives in one `WorkerTable`: the jobs it holds (each
with its request, credits and whether it has answered) and the *tombstones*, cancels that
arrived before their request. The table does no I/O and reads no clock; each held job carries
an opaque `handle` that the Trio component uses for the job's cancel scope.

Rule 1: a cancel never loses to its request. A cancel for a job id the worker does not hold
leaves a tombstone; the request, when it comes, is answered CANCELLED without running.

Rule 2: bounded by time. A tombstone lives until the deadline of the job it cancels (plus a
margin), or `TOMBSTONE_SECONDS` when the job has none: a request arriving later than that would
be refused as expired anyway. Tombstones are never evicted early, so a live one is never lost.
And bounded by count: past `MAX_TOMBSTONES` live ones (only a flood of cancels for jobs that
never come does that), a new cancel leaves none and is counted in `tombstones_refused`.
"""

from __future__ import annotations

import heapq
from typing import Any, Generic, TypeVar

import attrs

from .types import CREDIT_WINDOW, JobRequest

H = TypeVar("H")

TOMBSTONE_SECONDS = 300.0
"""How long a cancel without a deadline waits for its request."""

MAX_TOMBSTONES = 100_000
"""Most tombstones one worker keeps (see Rule 2)."""


@attrs.define(eq=False)
class HeldJob(Generic[H]):
    """One job a worker holds, from its request to its answer."""

    request: JobRequest[Any]
    """The request as its handler sees it."""
    envelope_id: str
    """Id of the request's envelope (its delivery is acknowledged by the answer)."""
    handle: H
    """The component's own per-job object (its cancel scope)."""
    credits: int = CREDIT_WINDOW
    """Events the worker may still send before the requester grants more."""
    answered: bool = False
    """Whether the terminal answer has gone out."""
    cancel_reason: str | None = None
    """Why it was cancelled, once it was."""


@attrs.define(eq=False)
class WorkerTable(Generic[H]):
    """Held jobs and tombstones of one worker."""

    held: dict[str, HeldJob[H]] = attrs.field(factory=dict)
    """Job id -> the job, while held."""
    _tombstones: dict[str, tuple[str | None, float, str | None]] = attrs.field(factory=dict)
    """Job id -> (reason, expiry, sender of the cancel)."""
    _expiries: list[tuple[float, str]] = attrs.field(factory=list)
    """A heap of (expiry, job id); an entry whose tombstone was taken or renewed is stale."""
    max_tombstones: int = MAX_TOMBSTONES
    """Most live tombstones; a cancel past it leaves none (Rule 2)."""
    tombstones_refused: int = 0
    """Cancels that left no tombstone because `max_tombstones` were live."""

    def __repr__(self) -> str:
        return f"<WorkerTable [held: {len(self.held)}, tombstones: {len(self._tombstones)}]>"

    @property
    def tombstones(self) -> int:
        """Cancels waiting for their request."""
        return len(self._tombstones)

    def tombstones_at(self, now: float) -> int:
        """Cancels still waiting for their request at time `now` (expired ones are dropped)."""
        self._expire(now)
        return len(self._tombstones)

    def pending_cancels(self) -> dict[str, str | None]:
        """Job id -> reason, for every cancel waiting for its request."""
        return {job_id: reason for job_id, (reason, _, _) in self._tombstones.items()}

    def hold(self, request: JobRequest[Any], envelope_id: str, handle: H) -> HeldJob[H]:
        """Start holding a job."""
        held = HeldJob(request, envelope_id, handle)
        self.held[request.job_id] = held
        return held

    def release(self, job_id: str) -> None:
        """Stop holding a job (it answered and its task ended)."""
        self.held.pop(job_id, None)

    def take_tombstone(
        self, job_id: str, now: float, *, sender: str | None = None
    ) -> tuple[bool, str | None]:
        """Whether a cancel overtook this job's request; consumes it. Returns (found, reason).

        Args:
            sender: the request's sender; a tombstone left by a cancel from anyone else does
                not count (only a job's requester may cancel it).
        """
        if not self._tombstones:
            return False, None
        self._expire(now)
        entry = self._tombstones.pop(job_id, None)
        if entry is None or (sender is not None and entry[2] not in (None, sender)):
            return False, None
        return True, entry[0]

    def has_tombstone(self, job_id: str) -> bool:
        """Whether a cancel waits for this job's request."""
        return job_id in self._tombstones

    def on_cancel(
        self,
        job_id: str,
        reason: str | None,
        now: float,
        budget: float | None,
        *,
        sender: str | None = None,
    ) -> HeldJob[H] | None:
        """A cancel arrived; return the held job to cancel, or leave a tombstone (None).

        Args:
            budget: seconds left of the job's deadline, as the cancel carried it.
            sender: who sent the cancel; kept with a tombstone (see `take_tombstone`).
        """
        held = self.held.get(job_id)
        if held is not None:
            if held.answered or held.cancel_reason is not None:
                return None
            held.cancel_reason = reason or "cancelled by the requester"
            return held
        self._expire(now)
        if len(self._tombstones) >= self.max_tombstones and job_id not in self._tombstones:
            self.tombstones_refused += 1
            return None
        lifetime = TOMBSTONE_SECONDS if budget is None else min(budget + 1.0, TOMBSTONE_SECONDS)
        self._tombstones[job_id] = (reason, now + lifetime, sender)
        heapq.heappush(self._expiries, (now + lifetime, job_id))
        return None

    def on_credit(self, job_id: str, count: int) -> HeldJob[H] | None:
        """The requester granted `count` more events; return the job to wake, if held."""
        held = self.held.get(job_id)
        if held is None or count <= 0:
            return None
        held.credits += count
        return held

    def spend_credit(self, held: HeldJob[H]) -> bool:
        """Spend one credit for an event; False when none is left (the sender must wait)."""
        if held.credits <= 0:
            return False
        held.credits -= 1
        return True

    def sent_by(self, requester: str) -> list[HeldJob[H]]:
        """Unanswered jobs requested by `requester` (which is gone)."""
        return [
            held
            for held in self.held.values()
            if held.request.sender == requester and not held.answered
        ]

    def _expire(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            until, job_id = heapq.heappop(expiries)
            entry = self._tombstones.get(job_id)
            if entry is not None and entry[1] == until:
                del self._tombstones[job_id]
        if not self._tombstones:
            expiries.clear()
