"""Tests for supervision._backoff: the restart delay schedule, without trio."""

from __future__ import annotations

import random

import pytest

from supervision import Backoff


def test_delay_doubles_from_initial() -> None:
    """With the defaults, each attempt waits twice as long as the one before."""
    backoff = Backoff()

    assert [backoff.delay(attempt) for attempt in range(4)] == [0.1, 0.2, 0.4, 0.8]


def test_restarts_land_at_cumulative_delays() -> None:
    """Crashing instantly, a child is restarted 0.1, 0.3 and 0.7 seconds after its first crash."""
    backoff = Backoff(initial=0.1, multiplier=2.0, jitter=0.0)
    now = 0.0
    restarts = []
    for attempt in range(3):
        now += backoff.delay(attempt)
        restarts.append(now)

    assert restarts == pytest.approx([0.1, 0.3, 0.7], abs=1e-12)


def test_delay_is_capped_at_maximum() -> None:
    """The delay grows until maximum and then stays there."""
    backoff = Backoff(initial=1.0, maximum=5.0, multiplier=3.0)

    assert [backoff.delay(attempt) for attempt in range(4)] == [1.0, 3.0, 5.0, 5.0]


def test_huge_attempt_does_not_overflow() -> None:
    """An attempt count past float range still gives the maximum."""
    assert Backoff(maximum=2.0).delay(100_000) == 2.0


def test_multiplier_one_gives_constant_delay() -> None:
    """A multiplier of 1 waits initial seconds every time."""
    backoff = Backoff(initial=0.5, multiplier=1.0)

    assert {backoff.delay(attempt) for attempt in range(5)} == {0.5}


def test_seeded_jitter_gives_exact_delays() -> None:
    """A seeded random.Random makes jittered delays reproducible to the last bit."""
    backoff = Backoff(initial=1.0, maximum=10.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(42)

    delays = [backoff.delay(attempt, rng) for attempt in range(4)]

    assert delays == [1.1394267984578836, 1.0500215104453339, 3.100117273476477, 5.785685905190582]


def test_jitter_stays_within_its_fraction() -> None:
    """Jitter moves a delay by at most jitter times the unjittered delay."""
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.25)
    rng = random.Random(0)

    delays = [backoff.delay(0, rng) for _ in range(1000)]

    assert min(delays) >= 0.75
    assert max(delays) <= 1.25
    assert len(set(delays)) > 1


def test_jitter_without_rng_uses_global_random() -> None:
    """Without an rng, jitter draws from the random module's generator."""
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.5)
    saved = random.getstate()
    try:
        random.seed(7)
        first = backoff.delay(0)
        random.seed(7)
        second = backoff.delay(0)
    finally:
        random.setstate(saved)

    assert second == first
    assert first != 1.0


def test_no_jitter_ignores_rng() -> None:
    """With jitter 0 the rng is not drawn from."""
    rng = random.Random(1)
    state = rng.getstate()

    assert Backoff().delay(2, rng) == 0.4
    assert rng.getstate() == state


def test_negative_attempt_is_rejected() -> None:
    """A negative attempt number is a caller bug."""
    with pytest.raises(ValueError, match=r"^attempt must be >= 0, got -1$"):
        Backoff().delay(-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -0.1}, r"^initial must be >= 0, got -0\.1$"),
        ({"maximum": -1.0, "initial": 0.0}, r"^maximum must be >= 0, got -1\.0$"),
        ({"multiplier": 0.5}, r"^multiplier must be >= 1, got 0\.5$"),
        ({"jitter": 1.5}, r"^jitter must be between 0 and 1, got 1\.5$"),
        ({"jitter": -0.1}, r"^jitter must be between 0 and 1, got -0\.1$"),
        (
            {"initial": 2.0, "maximum": 1.0},
            r"^maximum must be >= initial, got maximum=1\.0 and initial=2\.0$",
        ),
    ],
)
def test_invalid_fields_are_rejected(kwargs: dict[str, float], message: str) -> None:
    """Out-of-range fields raise ValueError naming the field and the value."""
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
