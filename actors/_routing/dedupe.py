"""DedupeWindow: which message ids arrived recently, so a redelivery is dropped. Pure.

At-least-once links deliver again what was not acknowledged in time (a reconnect, a reclaim).
The receiver remembers each id for `seconds` after it arrived and drops a second copy within
that window. Entries expire with time, oldest first, so the table holds what arrived in the
last `seconds`, whatever the rate; `max_entries` is only a guard against memory exhaustion,
far above any legitimate rate, and evicting under it is logged by the caller.
"""

from __future__ import annotations

from collections import OrderedDict


class DedupeWindow:
    """Remembers message ids for a while.

    Args:
        seconds: how long an id is remembered after it arrived.
        max_entries: hard bound on remembered ids (the oldest go first past it).

    Raises:
        ValueError: if a bound is not positive.
    """

    def __init__(self, seconds: float = 300.0, max_entries: int = 1_000_000) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds!r}")
        if max_entries <= 0:
            raise ValueError(f"max_entries must be > 0, got {max_entries!r}")
        self.seconds = seconds
        self.max_entries = max_entries
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self.evicted = 0
        """Ids forgotten before their time because of `max_entries`."""

    def __repr__(self) -> str:
        return f"<DedupeWindow [{len(self._expiry)} ids, {self.seconds}s]>"

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, message_id: str, now: float) -> bool:
        """Record `message_id`; return True if it already arrived within the window."""
        self._expire(now)
        if message_id in self._expiry:
            return True
        self._expiry[message_id] = now + self.seconds
        if len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
            self.evicted += 1
        return False

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            oldest, when = next(iter(expiry.items()))
            if when > now:
                return
            del expiry[oldest]
