"""Tests for supervision._policy: restart decisions on a fake clock, without trio."""

from __future__ import annotations

import random
from typing import Any

import pytest

from supervision import (
    Action,
    Backoff,
    ChildExit,
    Decision,
    Restart,
    RestartIntensity,
    Strategy,
    SupervisorPolicy,
)


class Boom(Exception):
    """The crash used throughout these tests."""


def crash(name: str) -> ChildExit:
    """The event for a child that raised."""
    return ChildExit(name, Boom(name))


def normal(name: str) -> ChildExit:
    """The event for a child that returned."""
    return ChildExit(name, None)


def policy_with(
    *children: tuple[str, Restart],
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: RestartIntensity | None = None,
    backoff: Backoff | None = None,
    rng: random.Random | None = None,
) -> SupervisorPolicy:
    """A policy that already knows the given children, in order."""
    policy = SupervisorPolicy(
        strategy, intensity if intensity is not None else RestartIntensity(), backoff, rng
    )
    for name, restart in children:
        policy.add_child(name, restart)
    return policy


ABC = (("a", Restart.PERMANENT), ("b", Restart.PERMANENT), ("c", Restart.PERMANENT))


def test_one_for_one_restarts_only_the_crashed_child() -> None:
    """ONE_FOR_ONE restarts the child that crashed and stops no sibling."""
    policy = policy_with(*ABC)

    decision = policy.decide(crash("b"), now=1.0)

    assert decision == Decision(Action.RESTART, restart=("b",), stop=(), history=(1.0,))
    assert policy.children == ("a", "b", "c")


def test_one_for_all_stops_others_in_reverse_and_restarts_all_in_order() -> None:
    """ONE_FOR_ALL stops every other child in reverse start order and restarts all in order."""
    policy = policy_with(*ABC, ("d", Restart.PERMANENT), strategy=Strategy.ONE_FOR_ALL)

    decision = policy.decide(crash("b"), now=0.0)

    assert decision.action is Action.RESTART
    assert decision.stop == ("d", "c", "a")
    assert decision.restart == ("a", "b", "c", "d")


def test_rest_for_one_restarts_the_crashed_child_and_those_after_it() -> None:
    """REST_FOR_ONE stops the later children in reverse and restarts from the crashed one on."""
    policy = policy_with(*ABC, ("d", Restart.PERMANENT), strategy=Strategy.REST_FOR_ONE)

    decision = policy.decide(crash("b"), now=0.0)

    assert decision.stop == ("d", "c")
    assert decision.restart == ("b", "c", "d")


def test_rest_for_one_on_the_last_child_restarts_only_it() -> None:
    """REST_FOR_ONE on the last child started is the same as ONE_FOR_ONE."""
    policy = policy_with(*ABC, strategy=Strategy.REST_FOR_ONE)

    decision = policy.decide(crash("c"), now=0.0)

    assert (decision.stop, decision.restart) == ((), ("c",))


def test_permanent_child_is_restarted_after_a_normal_exit() -> None:
    """A PERMANENT child that returns is restarted like one that crashed."""
    policy = policy_with(("a", Restart.PERMANENT))

    assert policy.decide(normal("a"), now=0.0).restart == ("a",)


def test_transient_child_is_restarted_after_a_crash() -> None:
    """A TRANSIENT child that crashes is restarted."""
    policy = policy_with(("a", Restart.TRANSIENT))

    decision = policy.decide(crash("a"), now=0.0)

    assert decision.action is Action.RESTART
    assert decision.restart == ("a",)


def test_transient_child_is_not_restarted_after_a_normal_exit() -> None:
    """A TRANSIENT child that returns is dropped, its siblings left alone, nothing counted."""
    policy = policy_with(("a", Restart.TRANSIENT), ("b", Restart.PERMANENT))
    policy.strategy = Strategy.ONE_FOR_ALL

    decision = policy.decide(normal("a"), now=0.0)

    assert decision == Decision(Action.IGNORE)
    assert policy.children == ("b",)


def test_temporary_child_is_never_restarted() -> None:
    """A TEMPORARY child that crashes is dropped without a restart."""
    policy = policy_with(("a", Restart.TEMPORARY), ("b", Restart.PERMANENT))

    decision = policy.decide(crash("a"), now=0.0)

    assert decision.action is Action.IGNORE
    assert decision.restart == ()
    assert policy.children == ("b",)


def test_ignored_exits_do_not_count_towards_intensity() -> None:
    """Exits that need no restart use up none of the restart intensity."""
    policy = policy_with(intensity=RestartIntensity(max_restarts=0, within=5.0))
    for index in range(3):
        policy.add_child(f"t{index}", Restart.TEMPORARY)
        assert policy.decide(crash(f"t{index}"), now=0.0).action is Action.IGNORE


def test_temporary_sibling_stopped_by_a_group_restart_is_dropped() -> None:
    """As in OTP, a TEMPORARY sibling stopped for ONE_FOR_ALL is stopped but not restarted."""
    policy = policy_with(
        ("a", Restart.PERMANENT),
        ("b", Restart.TEMPORARY),
        ("c", Restart.TRANSIENT),
        strategy=Strategy.ONE_FOR_ALL,
    )

    decision = policy.decide(crash("a"), now=0.0)

    assert decision.stop == ("c", "b")
    assert decision.restart == ("a", "c")
    assert policy.children == ("a", "c")


def test_more_restarts_than_allowed_within_the_window_gives_up() -> None:
    """The restart past max_restarts inside the window gives up, with the window's history."""
    policy = policy_with(*ABC, intensity=RestartIntensity(max_restarts=3, within=5.0))
    for now in (0.0, 1.0, 2.0):
        assert policy.decide(crash("a"), now).action is Action.RESTART

    decision = policy.decide(crash("b"), now=3.0)

    assert decision == Decision(Action.GIVE_UP, stop=("c", "a"), history=(0.0, 1.0, 2.0, 3.0))


def test_window_boundary_is_inclusive() -> None:
    """A restart exactly `within` seconds ago is still inside the window, as in OTP."""
    policy = policy_with(ABC[0], intensity=RestartIntensity(max_restarts=1, within=5.0))
    policy.decide(crash("a"), now=0.0)

    decision = policy.decide(crash("a"), now=5.0)

    assert decision.action is Action.GIVE_UP
    assert decision.history == (0.0, 5.0)


def test_restarts_older_than_the_window_are_forgotten() -> None:
    """Once old restarts fall out of the window, restarting is allowed again."""
    policy = policy_with(ABC[0], intensity=RestartIntensity(max_restarts=1, within=5.0))
    policy.decide(crash("a"), now=0.0)

    decision = policy.decide(crash("a"), now=5.5)

    assert decision.action is Action.RESTART
    assert decision.history == (5.5,)


def test_zero_max_restarts_gives_up_on_the_first_crash() -> None:
    """With max_restarts=0 the first restart is already one too many."""
    policy = policy_with(ABC[0], intensity=RestartIntensity(max_restarts=0))

    decision = policy.decide(crash("a"), now=2.0)

    assert decision == Decision(Action.GIVE_UP, history=(2.0,))


def test_backoff_attempt_is_the_number_of_restarts_in_the_window() -> None:
    """Delays grow while restarts crowd the window and reset once it has emptied."""
    policy = policy_with(
        ABC[0], intensity=RestartIntensity(max_restarts=10, within=1.0), backoff=Backoff()
    )

    delays = [policy.decide(crash("a"), now).delay for now in (0.0, 0.1, 0.3, 0.7)]
    after_quiet_spell = policy.decide(crash("a"), now=10.0).delay

    assert delays == [0.1, 0.2, 0.4, 0.8]
    assert after_quiet_spell == 0.1


def test_no_backoff_means_no_delay() -> None:
    """Without a Backoff, restarts are immediate."""
    policy = policy_with(ABC[0])

    assert policy.decide(crash("a"), now=0.0).delay == 0.0


def test_backoff_jitter_uses_the_injected_rng() -> None:
    """Jittered delays come from the policy's seeded rng, reproducibly."""
    backoff = Backoff(initial=1.0, maximum=10.0, jitter=0.5)
    policy = policy_with(
        ABC[0], intensity=RestartIntensity(10, 60.0), backoff=backoff, rng=random.Random(42)
    )

    delays = [policy.decide(crash("a"), now).delay for now in (0.0, 1.0)]

    assert delays == [1.1394267984578836, 1.0500215104453339]


def test_duplicate_child_is_rejected() -> None:
    """Adding a name twice raises ValueError."""
    policy = policy_with(ABC[0])

    with pytest.raises(ValueError, match=r"^a child named 'a' is already supervised$"):
        policy.add_child("a", Restart.TEMPORARY)


def test_removed_child_is_forgotten() -> None:
    """remove_child drops the child while the others keep their order."""
    policy = policy_with(*ABC)

    policy.remove_child("b")

    assert policy.children == ("a", "c")
    assert policy.decide(crash("c"), now=0.0).restart == ("c",)


def test_unknown_child_raises_key_error() -> None:
    """Removing or deciding on an unknown child raises KeyError listing the known ones."""
    policy = policy_with(ABC[0], ABC[1])

    with pytest.raises(KeyError) as removing:
        policy.remove_child("zed")
    with pytest.raises(KeyError) as deciding:
        policy.decide(crash("zed"), now=0.0)

    message = "no child named 'zed' is supervised; known: 'a', 'b'"
    assert removing.value.args == (message,)
    assert deciding.value.args == (message,)


def test_repr_shows_state() -> None:
    """The repr shows strategy, children and the restart count."""
    policy = policy_with(ABC[0], ("b", Restart.TEMPORARY))
    policy.decide(crash("a"), now=0.0)

    assert repr(policy) == (
        "<SupervisorPolicy [ONE_FOR_ONE, children: {'a': PERMANENT, 'b': TEMPORARY}, "
        "restarts: 1/3 within 5.0s]>"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"within": 0}, r"^within must be > 0, got 0$"),
        ({"within": -1.5}, r"^within must be > 0, got -1\.5$"),
        ({"max_restarts": -1}, r"^max_restarts must be >= 0, got -1$"),
    ],
)
def test_invalid_intensity_is_rejected(kwargs: dict[str, Any], message: str) -> None:
    """RestartIntensity validates its fields with messages naming them."""
    with pytest.raises(ValueError, match=message):
        RestartIntensity(**kwargs)
