"""Exponential backoff between restarts: a pure schedule, with no trio inside.

A crashing child that is restarted at once can crash again at once, and a
supervisor that restarts it in a tight loop only burns its restart intensity.
`Backoff` spaces the restarts out: the first waits `initial` seconds and each
later one waits `multiplier` times longer, up to `maximum`. Optional jitter
spreads restarts of many children that crashed together, so that they do not
all hit a shared dependency at the same instant.

The schedule never draws randomness from a global source behind the caller's
back: jitter takes a `random.Random` that tests seed for exact delays.
"""

from __future__ import annotations

import math
import random

import attrs

__all__ = ["Backoff"]


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _at_least_one(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


def _fraction(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


@attrs.frozen
class Backoff:
    """How long to wait before each restart of a child.

    The delay for attempt ``n`` (counting from 0) is
    ``min(initial * multiplier ** n, maximum)``; with jitter, that delay is then
    scaled by ``1 + jitter * u`` for ``u`` drawn uniformly from ``[-1, 1]``, so
    jitter may take a delay up to ``jitter * maximum`` past `maximum`.

    With the defaults (and no jitter) the delays are 0.1, 0.2, 0.4, 0.8, ...
    seconds, so a child that crashes as soon as it starts is restarted at
    0.1, 0.3 and 0.7 seconds after its first crash.

    Raises:
        ValueError: if a field is out of range; the message names the field
            and the value, like ``multiplier must be >= 1, got 0.5``.
    """

    initial: float = attrs.field(default=0.1, validator=_non_negative)
    """Seconds to wait before the first restart."""

    maximum: float = attrs.field(default=5.0, validator=_non_negative)
    """Cap on the delay before jitter, in seconds."""

    multiplier: float = attrs.field(default=2.0, validator=_at_least_one)
    """Growth factor from one attempt to the next; 1 gives a constant delay."""

    jitter: float = attrs.field(default=0.0, validator=_fraction)
    """Fraction of the delay, between 0 and 1, by which it may randomly vary."""

    def __attrs_post_init__(self) -> None:
        if self.maximum < self.initial:
            raise ValueError(
                f"maximum must be >= initial, got maximum={self.maximum!r} "
                f"and initial={self.initial!r}"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the number of seconds to wait before restart number `attempt`.

        Args:
            attempt: how many restarts came just before this one; 0 for the
                first restart.
            rng: the source of jitter. Pass a seeded `random.Random` for a
                reproducible schedule; None uses the `random` module's global
                generator. Ignored when `jitter` is 0.

        Returns:
            The delay in seconds, never negative.

        Raises:
            ValueError: if `attempt` is negative.
        """
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        try:
            grown = self.initial * self.multiplier**attempt
        except OverflowError:
            # A float power overflows long before an attempt count could be
            # meaningful; past that point the cap applies anyway.
            grown = math.inf
        capped = min(grown, self.maximum)
        if self.jitter == 0:
            return capped
        spread = rng.uniform(-1.0, 1.0) if rng is not None else random.uniform(-1.0, 1.0)
        return capped * (1.0 + self.jitter * spread)
