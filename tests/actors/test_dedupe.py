"""Plain tests of the dedupe window (`actors._routing.dedupe`)."""

from __future__ import annotations

import pytest

from actors._routing.dedupe import DedupeWindow


def test_an_id_seen_within_the_window_is_a_duplicate() -> None:
    """A second arrival within the window is reported; after it, the id is new again."""
    window = DedupeWindow(seconds=10)
    assert not window.seen("a", now=0)
    assert window.seen("a", now=9.9)
    assert not window.seen("a", now=10.1)


def test_the_window_expires_with_time_not_count() -> None:
    """Entries leave as they expire, whatever their number."""
    window = DedupeWindow(seconds=1)
    for index in range(1000):
        window.seen(str(index), now=0)
    assert len(window) == 1000
    window.seen("later", now=2)
    assert len(window) == 1


def test_the_memory_guard_evicts_the_oldest_and_counts_it() -> None:
    """Past max_entries the oldest id goes first, and the eviction is counted."""
    window = DedupeWindow(seconds=100, max_entries=2)
    for name in ("a", "b", "c"):
        window.seen(name, now=0)
    assert window.evicted == 1
    assert not window.seen("a", now=0)


def test_bounds_must_be_positive() -> None:
    """Bad bounds are refused with a message naming the parameter."""
    with pytest.raises(ValueError, match=r"^seconds must be > 0, got 0$"):
        DedupeWindow(seconds=0)
    with pytest.raises(ValueError, match=r"^max_entries must be > 0, got 0$"):
        DedupeWindow(max_entries=0)
