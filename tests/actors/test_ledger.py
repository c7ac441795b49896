"""Plain tests of the requester's pure job ledger (`actors._jobs.ledger`): no Trio, no clock."""

from __future__ import annotations

import math

from actors import JobEvent, JobGroupError, JobStatus, JobTimeout
from actors._jobs.ledger import JobLedger
from actors._jobs.types import CREDIT_WINDOW, DEADLINE_PASSED
from actors._wire.envelope import (
    JobResponseMessage,
    JobStreamData,
    JobStreamEnd,
    JobUpdateMessage,
)


def _ledger(*members: str, cancel_on_error: bool = True, deadline: float = math.inf) -> JobLedger:
    ledger = JobLedger("job-1", members, cancel_on_error, direct=True, deadline=deadline)
    for member in members:
        ledger.on_sent(member)
    return ledger


def test_a_completed_answer_settles_the_member_and_ends_a_single_job() -> None:
    """COMPLETED settles the member, records its response, and the job is done."""
    ledger = _ledger("w")
    decisions = ledger.on_reply("w", JobResponseMessage(status=JobStatus.COMPLETED, response=7), 0)
    assert decisions.done
    assert decisions.settled is not None and decisions.settled.response == 7
    assert decisions.failure is None
    assert ledger.failure(single=True) is None
    assert ledger.responses == {"w": 7}


def test_a_member_settles_once() -> None:
    """A second terminal answer, or a late 'worker gone' notice, changes nothing."""
    ledger = _ledger("w")
    ledger.on_reply("w", JobResponseMessage(status=JobStatus.COMPLETED, response=1), 0)
    again = ledger.on_reply("w", JobResponseMessage(status=JobStatus.ERROR, error="late"), 0)
    gone = ledger.on_worker_gone("w", crashed=True, now=0)
    assert again.settled is None and gone.settled is None
    assert ledger.statuses == {"w": JobStatus.COMPLETED}


def test_the_first_failure_cancels_the_other_working_members() -> None:
    """ERROR from one member of a group decides to cancel every other member still working."""
    ledger = _ledger("a", "b", "c")
    ledger.on_reply("c", JobResponseMessage(status=JobStatus.COMPLETED), 0)
    decisions = ledger.on_reply("a", JobResponseMessage(status=JobStatus.ERROR, error="boom"), 0)
    assert decisions.failure is not None and decisions.failure.actor_name == "a"
    assert decisions.cancel == ("b",)
    assert decisions.cancel_reason == "'a' failed"
    # The cancelled member's CANCELLED is not a second failure.
    later = ledger.on_reply("b", JobResponseMessage(status=JobStatus.CANCELLED), 0)
    assert later.failure is None and later.done
    error = ledger.failure(single=False)
    assert isinstance(error, JobGroupError)
    assert error.statuses == {
        "a": JobStatus.ERROR,
        "b": JobStatus.CANCELLED,
        "c": JobStatus.COMPLETED,
    }


def test_without_cancel_on_error_a_failure_cancels_nothing_and_raises_nothing() -> None:
    """With cancel_on_error=False outcomes are only recorded."""
    ledger = _ledger("a", "b", cancel_on_error=False)
    decisions = ledger.on_reply("a", JobResponseMessage(status=JobStatus.FAILED), 0)
    assert decisions.cancel == ()
    ledger.on_reply("b", JobResponseMessage(status=JobStatus.COMPLETED), 0)
    assert ledger.failure(single=False) is None


def test_unrequested_cancelled_is_a_failure_until_the_deadline() -> None:
    """CANCELLED the requester did not ask for fails the job, unless the deadline passed."""
    early = _ledger("w", deadline=10)
    assert early.on_reply("w", JobResponseMessage(status=JobStatus.CANCELLED), 5).failure
    late = _ledger("w", deadline=10)
    assert late.on_reply("w", JobResponseMessage(status=JobStatus.CANCELLED), 10).failure is None
    asked = _ledger("w")
    asked.cancel("stop")
    assert asked.on_reply("w", JobResponseMessage(status=JobStatus.CANCELLED), 0).failure is None


def test_events_queue_in_order_and_stream_end_completes() -> None:
    """Updates and stream chunks queue as events; the stream's end settles COMPLETED."""
    ledger = _ledger("w")
    ledger.on_reply("w", JobUpdateMessage(data="u"), 0)
    ledger.on_reply("w", JobStreamData(data=1), 0)
    end = ledger.on_reply("w", JobStreamEnd(data="all"), 0)
    assert [event.type for event in ledger.events] == [
        JobEvent.UPDATE,
        JobEvent.STREAM_DATA,
        JobEvent.STREAM_END,
    ]
    assert end.done and ledger.responses == {"w": "all"}


def test_credits_are_granted_in_batches_of_half_the_window() -> None:
    """Reading events grants credit back once half the window was read."""
    ledger = _ledger("w")
    grants = [ledger.on_read("w") for _ in range(CREDIT_WINDOW)]
    assert grants.count(CREDIT_WINDOW // 2) == 2
    assert sum(grants) == CREDIT_WINDOW


def test_expiry_settles_pending_members_and_names_what_they_did() -> None:
    """The deadline passing cancels working members; the timeout says why each waited."""
    ledger = JobLedger("job-2", ("ready", "ghost"), True, direct=True, deadline=3)
    ledger.on_sent("ready")
    decisions = ledger.expire()
    assert decisions.cancel == ("ready",)
    assert ledger.statuses == {"ready": JobStatus.CANCELLED, "ghost": JobStatus.CANCELLED}
    error = ledger.timeout_error({"ghost": "was never registered"})
    assert isinstance(error, JobTimeout)
    assert str(error) == (
        "job job-2 timed out: 'ready' was still working; 'ghost' was never registered"
    )
    assert ledger.errors["ready"] == DEADLINE_PASSED


def test_the_budget_a_request_carries_is_what_is_left() -> None:
    """A request carries the seconds left before the deadline, never a negative number."""
    assert _ledger("w", deadline=10).budget(4) == 6
    assert _ledger("w", deadline=10).budget(12) == 0
    assert _ledger("w").budget(4) is None
