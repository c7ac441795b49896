"""Every example runs and does what it says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    """Import an example module from the examples directory."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_local_handoff_follows_the_active_agent() -> None:
    """The handoff demo's replies come from whichever agent holds the conversation."""
    demo = load("local_handoff")
    transcript = await demo.run_conversation()
    assert [(r.agent, r.text.split()[0]) for r in transcript] == [
        ("greeter", "Hello!"),
        ("greeter", "Let"),
        ("support", "Support"),
        ("support", "Try"),
        ("support", "Glad"),
        ("greeter", "Welcome"),
        ("greeter", "Hello!"),
    ]
    assert "'the router'" in transcript[3].text
    assert "'bye'" in transcript[6].text


async def test_parallel_debate_streams_every_side_and_synthesizes(
    autojump_clock: object,
) -> None:
    """The debate streams each debater's sentences as they come and synthesizes all three."""
    demo = load("parallel_debate")
    moderator = await demo.run_debate("testing")
    assert [name for name, _ in moderator.transcript] == [
        "critic",
        "analyst",
        "advocate",
        "critic",
        "analyst",
        "advocate",
        "critic",
        "analyst",
        "advocate",
    ]
    assert [line.split(":")[0] for line in moderator.synthesis.splitlines()] == [
        "ADVOCATE",
        "CRITIC",
        "ANALYST",
    ]
    assert "testing lets small teams" in moderator.synthesis


async def test_sensor_controller_survives_crashes_without_hanging(
    autojump_clock: object,
) -> None:
    """The sensor crashes twice and is restarted; every read gets an answer or a prompt error."""
    demo = load("sensor_controller")
    outcomes = await demo.run_plant(steps=20)
    assert outcomes["crashes"] == [("sensor", "restart"), ("sensor", "restart")]
    assert len(outcomes["readings"]) + len(outcomes["failures"]) == 20
    # A read interrupted by a crash fails FAILED at once: never a timeout.
    assert all(kind == "JobError" for _, kind in outcomes["failures"])
    assert outcomes["readings"][-1][2] == 3
    assert outcomes["stats"]["instance"] == 3
    # The restarted sensor was given its target again and converged on it.
    assert abs(outcomes["readings"][-1][1] - 25.0) < 0.5


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("local_handoff", "support  > Glad to help"),
        ("parallel_debate", "moderator: synthesis"),
        ("sensor_controller", "never a hang"),
        ("code_assistant", "(the blocking call alone takes 30 s)"),
    ],
)
def test_example_runs_as_a_program(example: str, expected: str) -> None:
    """`python examples/<example>.py` exits 0 and prints what it is about."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{example}.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
