"""The client under plain ``asyncio.run`` in a process of its own: no Trio loop anywhere."""

from __future__ import annotations

import json
import subprocess
import sys

from client.client_support import HERE, ROOT, TOKEN, ServerProcess, environment


def test_the_asyncio_scenario_runs_with_no_trio_loop_in_the_process(
    worker_server: ServerProcess,
) -> None:
    """Jobs, a stream, a group, a cancelled task (the worker saw the cancel) and
    ``asyncio.timeout`` all work under ``asyncio.run``; nothing tried to start Trio, and no
    Trio run was active inside the loop or after it."""
    finished = subprocess.run(
        [sys.executable, str(HERE / "asyncio_scenario.py"), worker_server.url, TOKEN],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr.decode()
    result = json.loads(finished.stdout.decode().strip().splitlines()[-1])
    assert result["library"] == "asyncio"
    assert result["updates"] == [{"progress": 50, "by": "alpha"}]
    assert result["single"] == ["COMPLETED", {"echo": 1, "by": "alpha"}]
    assert result["stream"] == ["start", 0, 1, 2, "end"]
    assert result["group"] == {"alpha": "COMPLETED", "beta": "COMPLETED", "gamma": "COMPLETED"}
    assert result["task"] == "cancelled"
    assert "CancelledError" in result["remote_reason"]
    assert result["timeout"] == "TimeoutError"
    assert result["trio_active_inside"] is False
    assert result["trio_active_after"] is False
    assert result["trio_starts"] == []
