"""What the helper processes of the integration tests share (imported by them and the tests).

The worker and requester scripts run as `python tests/integration/<script>.py ...`, so this
directory is on their `sys.path`, as it is on the tests' (pytest puts a test's directory there).

- The *ledger*: every worker process appends one line per event of a job it runs
  (`start`, `done`, `cancelled`) to a file shared by all processes of a test. Each line is one
  `os.write` on a descriptor opened with `O_APPEND`, so lines of concurrent processes never
  interleave, and a line written before a `kill -9` is in the file (the kernel has it; no
  user-space buffer is lost).
- The *leak check*: after its actor system has exited, a helper process checks that no Trio task
  besides its own and no socket besides Trio's wakeup pair is left, and exits with
  `LEAK_EXIT` if one is.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Final

import attrs
import trio

READY: Final = "ready"
"""The first word of the line a helper process prints once its actors are ready."""

NAME_TAKEN_EXIT: Final = 3
"""Exit status of a worker process whose actor name a live actor elsewhere holds."""
LEAK_EXIT: Final = 4
"""Exit status of a helper process that found a task or a socket left after its system exited."""


@attrs.frozen
class LedgerEntry:
    """One line of the ledger: what happened to which job, in which actor and system."""

    event: str
    """`start`, `done` or `cancelled`."""
    system: str
    """The actor system (process) it happened in."""
    actor: str
    """The worker actor."""
    job_id: str
    """The job's id, as the requester knows it."""


class Ledger:
    """Appends the events of the jobs a process runs to a file shared by several processes."""

    def __init__(self, path: Path, system: str) -> None:
        self.system = system
        """The system whose events this ledger writes."""
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, event: str, actor: str, job_id: str) -> None:
        """Append one event (a single write, so it is atomic and survives a SIGKILL)."""
        os.write(self._fd, f"{event} {self.system} {actor} {job_id}\n".encode())

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def read_ledger(path: Path) -> list[LedgerEntry]:
    """Every entry of a ledger file, in the order they were written (empty if no file)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        event, system, actor, job_id = line.split()
        entries.append(LedgerEntry(event, system, actor, job_id))
    return entries


def starts(entries: Iterable[LedgerEntry]) -> Counter[str]:
    """How many times each job id was started, over every process."""
    return Counter(entry.job_id for entry in entries if entry.event == "start")


def open_sockets() -> int:
    """How many sockets this process has open (Linux: read from /proc/self/fd)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            # The descriptor listdir itself used is gone by now.
            continue
    return count


def other_tasks() -> list[str]:
    """The names of the Trio tasks alive besides the calling one, its ancestors and Trio's own.

    Trio's own tasks (the `run_sync_soon` queue) are the root task's direct children other
    than the main task; nothing of the runtime runs there (it never spawns system tasks), so
    whatever else is alive was left behind.
    """
    current: trio.lowlevel.Task | None = trio.lowlevel.current_task()
    ancestors = set()
    while current is not None:
        ancestors.add(current)
        parent = current.parent_nursery
        current = parent.parent_task if parent is not None else None
    root = trio.lowlevel.current_root_task()
    assert root is not None, "called outside trio.run"
    found: list[str] = []
    pending = [task for nursery in root.child_nurseries for task in nursery.child_tasks]
    pending = [task for task in pending if task in ancestors]
    while pending:
        task = pending.pop()
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
        if task not in ancestors:
            found.append(task.name)
    return found


def leaks(sockets_before: int) -> list[str]:
    """What is left that should not be: other tasks, and sockets beyond `sockets_before`."""
    problems = [f"task {name!r} still running" for name in other_tasks()]
    extra = open_sockets() - sockets_before
    if extra > 0:
        problems.append(f"{extra} socket(s) still open")
    return problems


def exit_on_leaks(problems: list[str]) -> None:
    """Exit with `LEAK_EXIT` (saying what leaked on stderr) if there were problems."""
    if problems:
        print("leaked: " + "; ".join(problems), file=sys.stderr, flush=True)
        sys.exit(LEAK_EXIT)


def stop_signals() -> AbstractContextManager[AsyncIterator[int]]:
    """SIGTERM and SIGINT, caught from now on: how a test asks a helper to end cleanly.

    Open it before printing `ready`, so that a stop request sent at once is never missed
    (without it, SIGTERM would kill the process instead).
    """
    return trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)


async def first_signal(signals: AsyncIterator[int]) -> None:
    """Return when the first of `signals` arrives."""
    async for _ in signals:
        return
