"""The code assistant example answers, streams, and cancels promptly, on a real project folder.

The example runs as a program (``python examples/code_assistant.py --project <folder>``) on a
small project made here, under a real-time bound; its output must prove what its docstring
says: answers streamed in several chunks with progress updates, a follow-up answered from the
worker's session state, a question cancelled midway ending CANCELLED, and a blocking call in a
thread (30 s unless cancelled) cancelled in well under that.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "code_assistant.py"

BLOCKING_SECONDS = 30
"""The example's default: its blocking call takes this long unless it is cancelled."""
CANCEL_BOUND_MS = 5000
"""Loose enough for a loaded two-core CI machine, far below the blocking call's 30 s."""
RUN_BOUND = 25.0
"""The whole program, interpreter start included, must end before the blocking call would."""

PROJECT = {
    "README.md": "# Demo\n\nA tiny app.\n",
    "src/app/cli.py": (
        "import sys\n\nfrom app.util import greet\n\n\n"
        "def main() -> None:\n    print(greet(sys.argv[1]))\n"
    ),
    "src/app/util.py": "import os\n\n\ndef greet(name: str) -> str:\n    return name + os.sep\n",
    "tests/test_util.py": "from app.util import greet\n\n\ndef test_greet() -> None:\n    ...\n",
    ".git/HEAD": "ref: refs/heads/main\n",
    "src/app/__pycache__/cli.cpython-311.pyc": "not really bytecode\n",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project folder: four files, plus a hidden and a cache folder to be skipped."""
    root = tmp_path / "demo-project"
    for relative, text in PROJECT.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def run_example(*args: str, cwd: Path) -> tuple[str, str, float]:
    """Run the example as a program; return its stdout, stderr and wall-clock seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr, elapsed


def answer_to(stdout: str, question: str) -> list[str]:
    """The output lines after ``you> <question>``, up to and including its ``=`` outcome."""
    lines = stdout.splitlines()
    start = lines.index(f"you> {question}")
    for index in range(start + 1, len(lines)):
        if lines[index].startswith("  = "):
            return lines[start + 1 : index + 1]
    raise AssertionError(f"no outcome for {question!r} in:\n{stdout}")


def test_code_assistant_streams_answers_and_cancels_promptly(project: Path) -> None:
    """Every claim of the example, checked on its output."""
    stdout, _, elapsed = run_example(str(EXAMPLE), "--project", str(project), cwd=project.parent)

    # Answers stream in several chunks, each with progress updates, and complete.
    outcomes = re.findall(r"^  = COMPLETED: streamed in (\d+) chunks$", stdout, re.MULTILINE)
    assert len(outcomes) == 5, stdout
    assert all(int(count) >= 2 for count in outcomes), stdout
    updates = re.findall(r"^  ~ (\w+): ", stdout, re.MULTILINE)
    assert set(updates) == {"list", "glob", "grep", "read", "tour", "scan", "recall"}, stdout

    # Real file tools on the project folder; hidden and cache folders are skipped.
    listing = answer_to(stdout, "What is in this project?")
    assert "  coder> The project has 4 files." in listing
    cli_size = len(PROJECT["src/app/cli.py"].encode())
    assert f"  coder>   src/app/cli.py ({cli_size} bytes)" in listing
    assert ".git" not in stdout and "__pycache__" not in stdout
    python_files = answer_to(stdout, "Which Python files are there?")
    assert "  coder> Found 3 files matching '**/*.py'." in python_files
    assert "  coder>   tests/test_util.py" in python_files

    # The follow-up was asked before the search had answered; the sequential handler ran it
    # afterwards, and it read the file the search found (session state).
    lines = stdout.splitlines()
    asked = lines.index("you> Where is main() defined?")
    assert lines[asked + 1] == "you> Show me the top of that file."
    follow_up = lines[lines.index("  (now the follow-up)") :]
    search = lines[asked : lines.index("  (now the follow-up)")]
    assert "  coder>   src/app/cli.py:6: def main() -> None:" in search
    assert "  ~ read: reading src/app/cli.py" in follow_up
    assert "  coder>     6 | def main() -> None:" in follow_up

    # Cancelled midway: two chunks arrived, then CANCELLED, and the rest never came.
    tour = answer_to(stdout, "Walk me through every file.")
    assert sum(line.startswith("  coder> ") for line in tour) == 2, tour
    assert "you> (interrupting after 2 chunks) Never mind, stop." in tour
    assert tour[-1] == "  = CANCELLED: the user interrupted"
    assert "That was every file." not in stdout

    # The blocking call in a thread was cancelled promptly, not after its 30 s.
    scan = answer_to(stdout, "Run the dependency scan.")
    assert any("waiting for the analysis service" in line for line in scan), scan
    match = re.fullmatch(
        rf"  = CANCELLED in ([\d.]+) ms \(the blocking call alone takes {BLOCKING_SECONDS} s\)",
        scan[-1],
    )
    assert match is not None, scan
    assert float(match.group(1)) < CANCEL_BOUND_MS
    assert elapsed < RUN_BOUND

    # The worker kept its session through both cancels and took the next question at once.
    recall = answer_to(stdout, "Which files have you looked at so far?")
    assert "  coder> So far I have looked at 2 files:" in recall
    assert recall[-2] == (
        "  coder> I answered 4 questions; 2 interrupted:"
        " 'Walk me through every file.' 'Run the dependency scan.'"
    )


def test_code_assistant_defaults_to_the_current_directory(project: Path) -> None:
    """Without ``--project`` it answers about the folder it runs in."""
    stdout, _, _ = run_example(str(EXAMPLE), cwd=project)
    assert stdout.startswith("code assistant on .\n")
    assert "  coder> The project has 4 files." in stdout


def test_code_assistant_leaves_no_unfinished_async_generator(project: Path) -> None:
    """Breaking out of ``async for event in j`` (as the example does) warns about nothing."""
    _, stderr, _ = run_example("-X", "dev", str(EXAMPLE), "--project", str(project), cwd=project)
    assert "ResourceWarning" not in stderr, stderr
