"""Issue 8, mistakes at the API: waits that could never succeed, and bad arguments.

Each mistake raises a clear error at the call (no wait, no timeout), naming what was wrong.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from actors import Actor, ActorStateError, ActorSystem, JobRequest, job
from actors.testing import open_test_system
from supervision import Restart


class Echo(Actor):
    @job
    async def echo(self, request: JobRequest[Any]) -> Any:
        return request.payload


# --- item 10 -----------------------------------------------------------------------------------


async def test_waits_that_could_never_succeed_raise_at_once(autojump_clock: MockClock) -> None:
    """`job()` from an actor that has ended, `job()` on a closed system, `end()` of an actor
    never spawned and `spawn()` of an instance that already ran each raise `ActorStateError`
    at the call, without waiting (no virtual time passes)."""
    async with open_test_system("s") as system:
        await system.spawn(Echo("w"))
        ended = await system.spawn(Echo("ended"))
        await ended.end()
        started = trio.current_time()
        with pytest.raises(ActorStateError, match=r"'ended' cannot open jobs: .*has ended"):
            ended.job("w")
        with pytest.raises(ActorStateError, match=r"'ended' cannot open jobs"):
            await ended.request_job("w")
        with pytest.raises(ActorStateError, match=r"already started"):
            await system.spawn(ended)
        never = Echo("never")
        with pytest.raises(ActorStateError, match=r"'never'.*(not been started|never)"):
            await never.end()
        with pytest.raises(ActorStateError, match=r"'never'.*(not been started|never)"):
            await never.cancel()
        with pytest.raises(ActorStateError, match=r"'never'"):
            never.job("w")
        assert trio.current_time() == started
    closed = system
    with pytest.raises(ActorStateError, match=r"cannot open jobs: actor system 's' is closing"):
        closed.job("w")
    with pytest.raises(ActorStateError, match=r"'s'"):
        await closed.spawn(Echo("late"))


# --- item 13 -----------------------------------------------------------------------------------


async def test_bad_arguments_raise_naming_the_parameter_at_the_call(
    actor_system: ActorSystem,
) -> None:
    """Wrong types and values at the API raise `TypeError`/`ValueError` at the call, naming the
    parameter, what was expected and what was given (no `'<' not supported`, no
    `AttributeError`, no "unhashable type")."""
    await actor_system.spawn(Echo("a"))
    await actor_system.spawn(Echo("b"))
    cases: list[tuple[type[Exception], str, Any]] = [
        (
            TypeError,
            r"^restart must be a supervision\.Restart member, got 'permanent'",
            lambda: actor_system.spawn(Echo("x"), restart="permanent"),  # type: ignore[call-overload]
        ),
        (
            TypeError,
            r"^mailbox_size must be a positive int, got 1\.5$",
            lambda: Echo("x", mailbox_size=1.5),  # type: ignore[arg-type]
        ),
        (
            ValueError,
            r"^mailbox_size must be > 0, got 0$",
            lambda: Echo("x", mailbox_size=0),
        ),
        (
            TypeError,
            r"^name must be a string, got 123$",
            lambda: Echo(123),  # type: ignore[arg-type]
        ),
        (
            TypeError,
            r"^timeout must be a number of seconds or None, got '1'$",
            lambda: actor_system.job("a", timeout="1"),  # type: ignore[arg-type]
        ),
        (
            ValueError,
            r"^timeout must be >= 0, got -1$",
            lambda: actor_system.job("a", timeout=-1),
        ),
        (
            TypeError,
            r"^actor must be an Actor instance or an ActorSpec, got 'worker'",
            lambda: actor_system.spawn("worker"),  # type: ignore[call-overload]
        ),
        (
            TypeError,
            r"^worker names must be strings, got \['a', 'b'\]; pass several names as "
            r"separate arguments: job_group\('a', 'b'\)$",
            lambda: actor_system.job_group(["a", "b"]),  # type: ignore[arg-type]
        ),
        (
            TypeError,
            r"^timeout must be a number of seconds or None, got '1'$",
            lambda: actor_system.request_job("a", timeout="1"),  # type: ignore[arg-type]
        ),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            result = call()
            if hasattr(result, "__await__"):
                await result
    # Nothing was started by the bad calls.
    assert sorted(actor_system.actors) == ["a", "b"]
    # A valid restart type works as before.
    await actor_system.spawn(Echo("ok"), restart=Restart.TEMPORARY)
