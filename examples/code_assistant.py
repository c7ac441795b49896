"""A code assistant: a main agent asks a code worker questions about a project folder.

The seed's voice code assistant, without the voice and without API keys. The assistant (the
main agent) dispatches one `job()` per question to a `CodeWorker`. The worker answers with
real file tools run on the project folder (list, glob, grep, read), streams its answer a chunk
at a time (`send_job_stream_start/data/end`) and reports progress (`send_job_update`); the
assistant prints both as they arrive. Which tool answers which question is scripted (that is
the language model's part in the seed), so the output is deterministic apart from timings.

What it shows:

- **Session state.** The worker's handler is ``@job(name="ask", sequential=True)``: questions
  are answered one at a time, in the order they were asked, and share what the worker has
  found so far. The assistant asks "Show me the top of that file." *before* the answer to
  "Where is main() defined?" has finished; the follow-up waits its turn and reads the file
  the search found.
- **Cancelling midway.** The assistant interrupts a slow tour of the project after two
  chunks with `cancel_job`; the job ends CANCELLED, and the worker takes the next question.
- **Cancelling a blocking call promptly.** One question runs a blocking call (a slow scan that
  waits on an "analysis service") in a thread with
  ``trio.to_thread.run_sync(..., abandon_on_cancel=True)``. The seed's note is about an SDK
  that swallowed cancellation, so that cancelling a job waited for its timeout; here the
  assistant cancels while the thread is blocked and prints how long the cancel took: a few
  milliseconds, against the blocking call's 30 seconds.

Run it with ``python examples/code_assistant.py [--project PATH]`` (the current directory by
default; it takes about two seconds).
"""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import msgspec
import trio

from actors import Actor, JobContext, JobError, JobEvent, JobRequest, job, open_actor_system
from transports import MemoryTransport

CODER = "coder"
BLOCKING_SECONDS = 30.0
"""How long the blocking scan's "analysis service" call takes unless it is cancelled."""
SPEAKING_DELAY = 0.01
"""Seconds between two streamed chunks, as if each were spoken."""
TOUR_DELAY = 0.3
"""Seconds the worker "thinks" about each file of the tour (the question that is interrupted)."""
MAX_LINES = 12
"""Most lines an answer lists before summing up the rest."""
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "build", "dist"})
MAX_FILE_BYTES = 512 * 1024

Tool = Literal["list", "glob", "grep", "read", "tour", "scan", "recall"]
Say = Callable[[str], Awaitable[None]]


class Question(msgspec.Struct, frozen=True):
    """A question, with the tool a language model would have chosen to answer it."""

    text: str
    tool: Tool
    argument: str = ""


# --- file tools: plain blocking functions, run in a worker thread -------------------------------


def project_files(root: Path) -> list[str]:
    """Every file under `root` (hidden and build folders skipped), as sorted relative paths."""
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        folders = relative.parts[:-1]
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in folders):
            continue
        if any(part.endswith(".egg-info") for part in folders):
            continue
        if path.is_file() and not relative.name.startswith("."):
            found.append(relative.as_posix())
    return sorted(found)


def glob_files(root: Path, pattern: str) -> list[str]:
    """The project files matching a glob pattern (``**/*.py``), as sorted relative paths."""
    listed = set(project_files(root))
    matches = (path.relative_to(root).as_posix() for path in root.glob(pattern))
    return sorted(relative for relative in matches if relative in listed)


def file_sizes(root: Path, relatives: list[str]) -> list[int]:
    """The size in bytes of each file."""
    return [(root / relative).stat().st_size for relative in relatives]


def read_text(root: Path, relative: str) -> str | None:
    """The text of a project file, or None for a binary or very large one."""
    path = root / relative
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def grep_files(root: Path, relatives: list[str], pattern: str) -> list[tuple[str, int, str]]:
    """Lines matching the regular expression `pattern`: (file, line number, line)."""
    regex = re.compile(pattern)
    hits = []
    for relative in relatives:
        text = read_text(root, relative)
        for number, line in enumerate((text or "").splitlines(), start=1):
            if regex.search(line):
                hits.append((relative, number, line.strip()))
    return hits


def blocking_scan(
    root: Path, relatives: list[str], stop: threading.Event, seconds: float, report: Say
) -> list[str]:
    """Collect every Python import, then wait `seconds` for a slow "analysis service".

    The wait stands for a blocking SDK call that knows nothing about Trio's cancellation. The
    only hint it takes is `stop`, which the worker sets once it has moved on, so that the
    abandoned thread does not linger; the prompt cancel does not depend on it.
    """
    imports: set[str] = set()
    for relative in relatives:
        if not relative.endswith(".py"):
            continue
        for line in (read_text(root, relative) or "").splitlines():
            match = re.match(r"\s*(?:from|import)\s+([\w.]+)", line)
            if match:
                imports.add(match.group(1))
    trio.from_thread.run(
        report,
        f"found {len(imports)} imported modules; waiting for the analysis service"
        f" (a blocking call of {seconds:g} s)",
    )
    stop.wait(seconds)
    return sorted(imports)


def plural(count: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``3 matches``."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}{'es' if noun.endswith('ch') else 's'}"


# --- the worker ----------------------------------------------------------------------------------


@dataclass
class Session:
    """What the worker remembers between questions."""

    looked_at: list[str] = field(default_factory=list)
    """Files it has read or found matches in, in the order it first did."""
    last_found: list[str] = field(default_factory=list)
    """The files the last glob or grep found ("that file" in a follow-up)."""
    answered: list[str] = field(default_factory=list)
    """The questions it answered."""
    interrupted: list[str] = field(default_factory=list)
    """The questions that were cancelled before it finished them."""

    def saw(self, *relatives: str) -> None:
        """Remember that the worker looked at these files."""
        for relative in relatives:
            if relative not in self.looked_at:
                self.looked_at.append(relative)


class CodeWorker(Actor):
    """Answers questions about one project folder with file tools, one question at a time."""

    def __init__(self, name: str, root: Path, blocking_seconds: float = BLOCKING_SECONDS) -> None:
        super().__init__(name)
        self.root = root
        self.blocking_seconds = blocking_seconds
        self.session = Session()

    @job(name="ask", sequential=True)
    async def ask(self, request: JobRequest[Question]) -> None:
        """Answer one question, streaming the answer; follow-ups see this session's state."""
        question = request.payload
        job_id = request.job_id
        tools: dict[str, Callable[[str, str, Say], Awaitable[None]]] = {
            "list": self._list,
            "glob": self._glob,
            "grep": self._grep,
            "read": self._read,
            "tour": self._tour,
            "scan": self._scan,
            "recall": self._recall,
        }
        chunks: list[str] = []

        async def say(chunk: str) -> None:
            chunks.append(chunk)
            await self.send_job_stream_data(job_id, {"text": chunk})
            await trio.sleep(SPEAKING_DELAY)

        await self.send_job_stream_start(job_id, {"question": question.text})
        finished = False
        try:
            await tools[question.tool](job_id, question.argument, say)
            finished = True
        finally:
            # Inside the handler, so the next question (sequential) always sees it.
            (self.session.answered if finished else self.session.interrupted).append(question.text)
        await self.send_job_stream_end(job_id, {"answer": "\n".join(chunks), "chunks": len(chunks)})

    async def _update(self, job_id: str, tool: str, progress: str) -> None:
        await self.send_job_update(job_id, {"tool": tool, "progress": progress})

    async def _files(self) -> list[str]:
        return await trio.to_thread.run_sync(project_files, self.root)

    async def _list(self, job_id: str, argument: str, say: Say) -> None:
        await self._update(job_id, "list", "walking the project folder")
        files = await self._files()
        sizes = await trio.to_thread.run_sync(file_sizes, self.root, files[:MAX_LINES])
        await say(f"The project has {len(files)} files.")
        for relative, size in zip(files, sizes, strict=False):
            await say(f"  {relative} ({size} bytes)")
        if len(files) > MAX_LINES:
            await say(f"  ... and {len(files) - MAX_LINES} more.")

    async def _glob(self, job_id: str, pattern: str, say: Say) -> None:
        await self._update(job_id, "glob", f"matching {pattern!r}")
        found = await trio.to_thread.run_sync(glob_files, self.root, pattern)
        self.session.last_found = found
        await say(f"Found {plural(len(found), 'file')} matching {pattern!r}.")
        for relative in found[:MAX_LINES]:
            await say(f"  {relative}")
        if len(found) > MAX_LINES:
            await say(f"  ... and {len(found) - MAX_LINES} more.")

    async def _grep(self, job_id: str, pattern: str, say: Say) -> None:
        files = await self._files()
        hits: list[tuple[str, int, str]] = []
        batch = max(1, -(-len(files) // 3))
        for start in range(0, len(files), batch):
            part = files[start : start + batch]
            hits += await trio.to_thread.run_sync(grep_files, self.root, part, pattern)
            searched = min(start + batch, len(files))
            await self._update(
                job_id,
                "grep",
                f"searched {searched}/{len(files)} files, {plural(len(hits), 'match')}",
            )
        found = list(dict.fromkeys(relative for relative, _, _ in hits))
        self.session.last_found = found
        self.session.saw(*found)
        if not hits:
            await say(f"Nothing matches {pattern!r}.")
            return
        await say(f"Found {plural(len(hits), 'line')} in {plural(len(found), 'file')}:")
        for relative, number, line in hits[:MAX_LINES]:
            await say(f"  {relative}:{number}: {line}")

    async def _read(self, job_id: str, relative: str, say: Say) -> None:
        if not relative:
            if not self.session.last_found:
                await self._update(job_id, "read", "no file named and none found yet")
                await say("Which file? I have not found one yet; ask me to search first.")
                return
            relative = self.session.last_found[0]
        await self._update(job_id, "read", f"reading {relative}")
        text = await trio.to_thread.run_sync(read_text, self.root, relative)
        self.session.saw(relative)
        if text is None:
            await say(f"I cannot read {relative}: it is missing, binary or too large.")
            return
        lines = text.splitlines()
        await say(f"The top of {relative} ({len(lines)} lines):")
        # Stream the file a few lines per chunk, the way a voice reads it out.
        shown = lines[:MAX_LINES]
        for start in range(0, len(shown), 4):
            await say(
                "\n".join(
                    f"  {number:>3} | {line}"
                    for number, line in enumerate(shown[start : start + 4], start=start + 1)
                )
            )

    async def _tour(self, job_id: str, argument: str, say: Say) -> None:
        files = await self._files()
        await self._update(job_id, "tour", f"touring {len(files)} files")
        await say(f"Let me walk you through all {len(files)} files, one at a time.")
        for relative in files:
            await trio.sleep(TOUR_DELAY)  # "thinking" about the file
            text = await trio.to_thread.run_sync(read_text, self.root, relative)
            self.session.saw(relative)
            first = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
            await say(f"  {relative} starts with: {first or '(nothing to read)'}")
        await trio.sleep(TOUR_DELAY)
        await say("That was every file.")

    async def _scan(self, job_id: str, argument: str, say: Say) -> None:
        files = await self._files()
        await self._update(job_id, "scan", f"scanning {len(files)} files in a worker thread")
        stop = threading.Event()
        try:
            imports = await trio.to_thread.run_sync(
                blocking_scan,
                self.root,
                files,
                stop,
                self.blocking_seconds,
                partial(self._update, job_id, "scan"),
                abandon_on_cancel=True,
            )
        finally:
            stop.set()
        await say(f"The project imports {len(imports)} modules: {', '.join(imports)}.")

    async def _recall(self, job_id: str, argument: str, say: Say) -> None:
        await self._update(job_id, "recall", "looking back over this session")
        session = self.session
        await say(f"So far I have looked at {plural(len(session.looked_at), 'file')}:")
        for relative in session.looked_at[:MAX_LINES]:
            await say(f"  {relative}")
        if len(session.looked_at) > MAX_LINES:
            await say(f"  ... and {len(session.looked_at) - MAX_LINES} more.")
        await say(
            f"I answered {plural(len(session.answered), 'question')};"
            f" {len(session.interrupted)} interrupted:"
            + "".join(f" {text!r}" for text in session.interrupted)
        )


# --- the main agent ------------------------------------------------------------------------------


class Assistant(Actor):
    """The main agent: asks the worker questions and prints the answers as they stream in."""

    def __init__(self, name: str, worker: str) -> None:
        super().__init__(name)
        self.worker = worker

    def _ask(self, question: Question, timeout: float = 10) -> JobContext:
        print(f"you> {question.text}")
        return self.job(self.worker, name="ask", payload=question, timeout=timeout)

    async def _show(self, answer: JobContext, stop_after: int | None = None) -> int:
        """Print an answer's updates and chunks as they arrive; return the chunk count."""
        chunks = 0
        async for event in answer:
            if event.type is JobEvent.UPDATE:
                print(f"  ~ {event.data['tool']}: {event.data['progress']}")
            elif event.type is JobEvent.STREAM_DATA:
                chunks += 1
                for line in event.data["text"].splitlines():
                    print(f"  {event.actor_name}> {line}")
                if stop_after is not None and chunks >= stop_after:
                    break
        return chunks

    def _done(self, answer: JobContext, chunks: int) -> None:
        assert answer.status is not None
        print(f"  = {answer.status.name}: streamed in {chunks} chunks")

    async def ask(self, question: Question) -> None:
        """Ask one question and print its answer as it streams in."""
        async with self._ask(question) as answer:
            chunks = await self._show(answer)
        self._done(answer, chunks)

    async def ask_with_follow_up(self, question: Question, follow_up: Question) -> None:
        """Ask a question and, before it is answered, a follow-up that depends on it."""
        async with self._ask(question) as first, self._ask(follow_up) as second:
            # Both requests are out. The worker's sequential handler answers them in order,
            # so the follow-up's answer starts once the first one has ended.
            first_chunks = await self._show(first)
            self._done(first, first_chunks)
            print("  (now the follow-up)")
            second_chunks = await self._show(second)
        self._done(second, second_chunks)

    async def interrupt(self, question: Question, after_chunks: int) -> None:
        """Ask a question and cancel it once `after_chunks` chunks have arrived."""
        answer = self._ask(question)
        try:
            async with answer:
                chunks = await self._show(answer, stop_after=after_chunks)
                print(f"you> (interrupting after {chunks} chunks) Never mind, stop.")
                await self.cancel_job(answer.job_id, reason="the user interrupted")
        except JobError as exc:
            print(f"  = {exc.status.name if exc.status else '?'}: {exc.errors.get(self.worker)}")
        else:
            self._done(answer, chunks)

    async def interrupt_blocking(self, question: Question, blocking_seconds: float) -> float:
        """Ask a question whose worker blocks in a thread; cancel it there and time the cancel.

        Returns the seconds from `cancel_job` to the worker's CANCELLED answer.
        """
        answer = self._ask(question, timeout=2 * blocking_seconds + 10)
        took = float("nan")
        cancelled_at = trio.current_time()
        try:
            async with answer:
                async for event in answer:
                    if event.type is JobEvent.UPDATE:
                        print(f"  ~ {event.data['tool']}: {event.data['progress']}")
                        if "waiting" in event.data["progress"]:
                            break
                await trio.sleep(0.1)  # the thread is stuck in its blocking call by now
                print("you> (the scan is stuck in a blocking call) Cancel it.")
                cancelled_at = trio.current_time()
                await self.cancel_job(answer.job_id, reason="the user cancelled the scan")
        except JobError as exc:
            took = trio.current_time() - cancelled_at
            status = exc.status.name if exc.status else "?"
            print(
                f"  = {status} in {took * 1000:.1f} ms"
                f" (the blocking call alone takes {blocking_seconds:g} s)"
            )
        else:
            print(f"  = {answer.status.name if answer.status else '?'}: it was not cancelled")
        return took

    async def run_session(self, blocking_seconds: float) -> float:
        """The scripted session; returns how long cancelling the blocking call took."""
        await self.ask(Question("What is in this project?", "list"))
        await self.ask(Question("Which Python files are there?", "glob", "**/*.py"))
        await self.ask_with_follow_up(
            Question("Where is main() defined?", "grep", r"\bdef main\("),
            Question("Show me the top of that file.", "read"),
        )
        await self.interrupt(Question("Walk me through every file.", "tour"), after_chunks=2)
        took = await self.interrupt_blocking(
            Question("Run the dependency scan.", "scan"), blocking_seconds
        )
        await self.ask(Question("Which files have you looked at so far?", "recall"))
        return took


async def run_session(project: Path, blocking_seconds: float = BLOCKING_SECONDS) -> float:
    """Start the worker and the assistant, play the session; return the blocking cancel's time."""
    print(f"code assistant on {project}")
    async with open_actor_system("code", transport=MemoryTransport(strict=True)) as system:
        await system.spawn(CodeWorker(CODER, project, blocking_seconds))
        assistant = await system.spawn(Assistant("assistant", CODER))
        took = await assistant.run_session(blocking_seconds)
        system.end("session over")
        await system.wait()
    return took


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the scripted session."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--project", type=Path, default=Path("."), help="the folder to ask about (default: .)"
    )
    parser.add_argument(
        "--blocking-seconds",
        type=float,
        default=BLOCKING_SECONDS,
        help="how long the scan's blocking call takes unless cancelled (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.project.is_dir():
        parser.error(f"--project {args.project}: not a folder")
    trio.run(run_session, args.project, args.blocking_seconds)


if __name__ == "__main__":
    main()
