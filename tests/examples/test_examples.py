"""Every example runs and does what it says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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


def test_local_handoff_runs_as_a_program() -> None:
    """`python examples/local_handoff.py` exits 0 and prints the conversation."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "local_handoff.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "support  > Glad to help" in result.stdout
