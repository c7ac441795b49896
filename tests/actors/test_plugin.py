"""Tests of the pytest plugin shipped with the package (`actors.testing`)."""

from __future__ import annotations

import importlib.metadata

import pytest

pytest_plugins = ["pytester"]

INNER_TEST = """
import msgspec
import pytest
import trio

from actors import Actor, ActorSystem
from actors.testing import capture, wait_ready


class Note(msgspec.Struct, frozen=True):
    text: str


@pytest.mark.trio
async def test_capture_through_fixture(actor_system: ActorSystem) -> None:
    listener = Actor("listener")
    received = capture(listener)
    await actor_system.spawn(listener)
    sender = await actor_system.spawn(Actor("sender"))
    with trio.fail_after(5):
        infos = await wait_ready(actor_system, "listener", "sender")
    assert [info.name for info in infos] == ["listener", "sender"]
    assert actor_system.strict
    await sender.send_message("listener", Note("hi"))
    with trio.fail_after(5):
        assert await received.wait_for(1) == [Note("hi")]
    assert received.envelopes[0].sender == "sender"
"""


def test_plugin_is_registered_under_pytest11() -> None:
    """The package registers `actors.testing._plugin` as the `trio_actors` pytest11 plugin."""
    entry_points = importlib.metadata.entry_points(group="pytest11")
    ours = [ep for ep in entry_points if ep.name == "trio_actors"]
    assert len(ours) == 1
    assert ours[0].value == "actors.testing._plugin"
    assert ours[0].dist is not None
    assert ours[0].dist.name == "trio-actors"
    module = ours[0].load()
    assert hasattr(module, "actor_system")
    assert hasattr(module, "strict_transport")


def test_fixture_and_helpers_in_a_fresh_pytest_run(pytester: pytest.Pytester) -> None:
    """A test using `actor_system`, `capture` and `wait_ready` passes under @pytest.mark.trio."""
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.stdout.fnmatch_lines(["plugins:*trio-actors-*"])
    result.assert_outcomes(passed=1)


def test_fixture_runs_on_the_autojump_clock(pytester: pytest.Pytester) -> None:
    """The `actor_system` fixture puts the test on a MockClock with autojump, so sleeps are free."""
    pytester.makepyfile(
        test_clock="""
        import pytest
        import trio
        import trio.testing

        @pytest.mark.trio
        async def test_virtual_time(actor_system, autojump_clock):
            assert isinstance(autojump_clock, trio.testing.MockClock)
            start = trio.current_time()
            await trio.sleep(3600)
            assert trio.current_time() - start == 3600
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1)
