"""The asyncio front end example: a plain asyncio process and a Trio worker process.

The workers (``examples/research_workers.py``, a Trio program) serve the WebSocket link on
127.0.0.1; the front end (``examples/asyncio_frontend.py``) runs under ``asyncio.run``,
dispatches one job group to the three researchers and prints what they stream.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _environment() -> dict[str, str]:
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _start_workers() -> tuple[subprocess.Popen[bytes], str]:
    """Start the worker process on a free port; return it and the URL it serves."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "research_workers.py"), "--port", "0"],
        cwd=ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(20):
            process.kill()
            raise AssertionError("the research workers did not listen within 20 s")
    line = process.stdout.readline().decode().strip()
    assert line.startswith("listening on "), line
    return process, line.removeprefix("listening on ")


def test_the_asyncio_front_end_streams_a_job_group_from_trio_workers() -> None:
    """The front end prints every researcher's update and findings as they stream, then the
    three summaries; it never imports Trio itself."""
    workers, url = _start_workers()
    try:
        front_end = subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "asyncio_frontend.py"),
                "--url",
                url,
                "--topic",
                "tidal power",
            ],
            cwd=ROOT,
            env=_environment(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        workers.kill()
        workers.wait(timeout=10)
        assert workers.stdout is not None
        workers.stdout.close()
    assert front_end.returncode == 0, front_end.stderr.decode()
    lines = front_end.stdout.decode().splitlines()
    assert "[researcher-1] ... reading about the history of tidal power" in lines
    for name, angle in [("researcher-1", "history"), ("researcher-2", "economics")]:
        for index in (1, 2, 3):
            assert f"[{name}] {angle} finding {index} on tidal power" in lines
    assert lines[-3:] == [
        "researcher-1: 3 history findings on tidal power",
        "researcher-2: 3 economics findings on tidal power",
        "researcher-3: 3 risks findings on tidal power",
    ]
    # Findings of one researcher keep their order; the three streams interleave.
    own = [line for line in lines if line.startswith("[researcher-3] risks")]
    assert own == [f"[researcher-3] risks finding {i} on tidal power" for i in (1, 2, 3)]


def test_the_front_end_source_imports_no_trio() -> None:
    """The example is a plain asyncio program: it imports nothing of Trio."""
    source = (ROOT / "examples" / "asyncio_frontend.py").read_text(encoding="utf-8")
    assert "import trio" not in source and "from trio" not in source
    assert "asyncio.run(" in source
