"""Plain tests of the worker's pure job table (`actors._jobs.table`): held jobs, tombstones."""

from __future__ import annotations

from actors import JobRequest
from actors._jobs.table import TOMBSTONE_SECONDS, WorkerTable
from actors._jobs.types import CREDIT_WINDOW


def _request(job_id: str, sender: str = "asker") -> JobRequest[None]:
    return JobRequest(job_id=job_id, name=None, payload=None, sender=sender)


def test_a_cancel_before_its_request_leaves_a_tombstone_that_is_consumed_once() -> None:
    """A cancel for an unknown job waits for its request; the request takes it, once."""
    table: WorkerTable[str] = WorkerTable()
    assert table.on_cancel("j", "stop", now=0, budget=None) is None
    assert table.pending_cancels() == {"j": "stop"}
    assert table.take_tombstone("j", now=1) == (True, "stop")
    assert table.take_tombstone("j", now=1) == (False, None)


def test_tombstones_expire_with_the_job_deadline_or_the_window() -> None:
    """A tombstone lives for the cancelled job's budget (plus a margin) or a bounded window."""
    table: WorkerTable[str] = WorkerTable()
    table.on_cancel("short", None, now=0, budget=5)
    table.on_cancel("long", None, now=0, budget=None)
    assert table.take_tombstone("other", now=6.5) == (False, None)
    assert table.pending_cancels() == {"long": None}
    table.take_tombstone("other", now=TOMBSTONE_SECONDS + 1)
    assert table.tombstones == 0


def test_a_tombstone_is_never_evicted_by_count() -> None:
    """Many live tombstones all stay until they expire."""
    table: WorkerTable[str] = WorkerTable()
    for index in range(20_000):
        table.on_cancel(f"j{index}", None, now=0, budget=None)
    assert table.tombstones == 20_000
    assert table.take_tombstone("j0", now=1) == (True, None)


def test_a_cancel_for_a_held_job_returns_it_once() -> None:
    """A cancel of a held job hands it back to be cancelled; a second cancel does nothing."""
    table: WorkerTable[str] = WorkerTable()
    held = table.hold(_request("j"), "envelope-1", "scope")
    assert table.on_cancel("j", None, now=0, budget=None) is held
    assert held.cancel_reason == "cancelled by the requester"
    assert table.on_cancel("j", "again", now=0, budget=None) is None
    assert table.tombstones == 0


def test_credits_are_spent_and_granted() -> None:
    """Events spend credits; a grant makes room again."""
    table: WorkerTable[str] = WorkerTable()
    held = table.hold(_request("j"), "envelope-1", "scope")
    for _ in range(CREDIT_WINDOW):
        assert table.spend_credit(held)
    assert not table.spend_credit(held)
    assert table.on_credit("j", 3) is held
    assert table.spend_credit(held)


def test_jobs_of_a_requester_that_is_gone() -> None:
    """The unanswered jobs a vanished requester asked for are found by its name."""
    table: WorkerTable[str] = WorkerTable()
    mine = table.hold(_request("a", sender="gone"), "e1", "s1")
    table.hold(_request("b", sender="other"), "e2", "s2")
    answered = table.hold(_request("c", sender="gone"), "e3", "s3")
    answered.answered = True
    assert table.sent_by("gone") == [mine]
    table.release("a")
    assert table.sent_by("gone") == []
