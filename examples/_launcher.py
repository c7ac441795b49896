"""What the multi-process examples share: Redis options, the agent runner, the launcher.

- `add_redis_options` and `redis_transport`: every process of an example takes `--redis-url`
  (default `redis://127.0.0.1:6379`), `--namespace` and `--heartbeat`.
- `run_agent`: an agent process runs one actor in an actor system of its own, prints
  `ready <name>`, and ends its system cleanly on SIGTERM or SIGINT.
- `run_agent_processes`: a launcher (an example package's `__main__`) starts each agent process
  as ``python -m <module> <options>`` from the repository root, waits until it prints its
  `ready` line, runs the example's main part in its own process, and then asks every agent
  process to end (SIGTERM), waiting for each; one that does not end in time is killed.
  Whatever an agent process prints after its `ready` line is passed on, prefixed with its name.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import attrs
import trio

from actors import Actor, open_actor_system
from transports import RedisTransport

DEFAULT_URL: Final = "redis://127.0.0.1:6379"
"""The Redis server used unless `--redis-url` says otherwise."""
READY: Final = "ready"
"""The first word of the line an agent process prints once its agent is ready."""
REPOSITORY: Final = Path(__file__).resolve().parent.parent
"""The directory the agent processes run in, so that `examples` is importable."""
START_BOUND: Final = 30.0
"""Seconds an agent process may take to start and print its ready line."""
INTERRUPT_GRACE: Final = 3.0
"""Seconds a launcher's main part may go on after a Ctrl-C before it is cancelled."""
STOP_BOUND: Final = 10.0
"""Seconds an agent process may take to end after SIGTERM before it is killed."""


def add_redis_options(parser: argparse.ArgumentParser, namespace: str) -> None:
    """Add `--redis-url`, `--namespace` (default `namespace`) and `--heartbeat` to `parser`."""
    parser.add_argument("--redis-url", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
    parser.add_argument("--namespace", default=namespace, help=f"default: {namespace}")
    parser.add_argument(
        "--heartbeat", type=float, default=1.0, help="seconds between liveness beats"
    )


def redis_options(options: argparse.Namespace) -> list[str]:
    """The Redis options of `options` as command-line arguments, to pass on to a process."""
    return [
        "--redis-url", options.redis_url,
        "--namespace", options.namespace,
        "--heartbeat", str(options.heartbeat),
    ]  # fmt: skip


def redis_transport(options: argparse.Namespace) -> RedisTransport:
    """The transport the Redis options describe."""
    return RedisTransport(
        options.redis_url, namespace=options.namespace, heartbeat=options.heartbeat
    )


async def require_redis(options: argparse.Namespace) -> None:
    """Exit with a clear message if nothing listens at `--redis-url`.

    The transport itself keeps retrying an unreachable server (it is built to ride out Redis
    restarts), so without this check a wrong URL would look like a hang.
    """
    address = redis_transport(options).address
    try:
        with trio.fail_after(3):
            stream = await trio.open_tcp_stream(address.host, address.port)
    except (OSError, trio.TooSlowError):
        raise SystemExit(
            f"no Redis server answers at {options.redis_url}: start one "
            "(redis-server --appendonly yes) or pass --redis-url"
        ) from None
    await stream.aclose()


async def run_agent(agent: Actor, options: argparse.Namespace) -> None:
    """Run one agent in an actor system of its own until SIGTERM or SIGINT, then end it.

    The system is named `<agent>-process`. Prints `ready <name>` once the agent is ready,
    for the launcher. A signal before that (Redis unreachable, say) cancels the start; one
    after it ends the system gracefully, and further signals meanwhile are ignored (a Ctrl-C
    reaches every process of the terminal, and the launcher's SIGTERM may follow it).
    """
    ready = trio.Event()
    stop = trio.Event()

    async def serve(cancel_scope: trio.CancelScope) -> None:
        system_name = f"{agent.name}-process"
        async with open_actor_system(system_name, transport=redis_transport(options)) as system:
            await system.spawn(agent)
            print(f"{READY} {agent.name}", flush=True)
            ready.set()
            await stop.wait()
            system.end("stopped", grace=1.0)
            await system.wait()
        # Done: stop listening for signals.
        cancel_scope.cancel()

    # Installed first, so that no stop request is ever missed (nor kills the process).
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, nursery.cancel_scope)
            async for _ in signals:
                if not ready.is_set():
                    nursery.cancel_scope.cancel()
                stop.set()


@attrs.frozen
class AgentCommand:
    """How to start one agent process: ``python -m <module> <argv>``."""

    name: str
    """What the launcher calls it in its output."""
    module: str
    """The module to run, e.g. `examples.redis_handoff.greeter`."""
    argv: tuple[str, ...] = ()
    """Its command-line arguments."""


class AgentProcessFailed(RuntimeError):
    """An agent process ended before it was ready, or with a non-zero status."""


@attrs.define(eq=False)
class AgentProcess:
    """One running agent process."""

    name: str
    """What the launcher calls it."""
    process: trio.Process
    """The process."""

    def __repr__(self) -> str:
        return f"<AgentProcess [{self.name}, pid {self.process.pid}]>"


async def _read_lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
    if buffer:
        yield buffer.decode(errors="replace")


async def _run_agent_process(
    command: AgentCommand,
    *,
    task_status: trio.TaskStatus[AgentProcess] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start one agent process, report it started once ready, then pass its output on."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", command.module, *command.argv],
        cwd=REPOSITORY,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        lines = _read_lines(process.stdout)
        with trio.fail_after(START_BOUND):
            async for line in lines:
                if line.startswith(READY):
                    break
            else:
                status = await process.wait()
                raise AgentProcessFailed(
                    f"{command.name} exited with status {status} before it was ready"
                )
        print(f"started {command.name} in process {process.pid}", flush=True)
        task_status.started(AgentProcess(command.name, process))
        async for line in lines:
            print(f"[{command.name}] {line}", flush=True)
    finally:
        # Not ended by `run_agent_processes` (an error elsewhere, or Ctrl-C): never leave it
        # behind, but give it the chance to end cleanly first.
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                await _stop(AgentProcess(command.name, process))
            if process.stdout is not None:
                await process.stdout.aclose()


async def _stop(agent: AgentProcess) -> int:
    """SIGTERM, then SIGKILL if it has not ended within `STOP_BOUND`; its exit status."""
    agent.process.send_signal(signal.SIGTERM)
    with trio.move_on_after(STOP_BOUND):
        return await agent.process.wait()
    agent.process.kill()
    return await agent.process.wait()


@asynccontextmanager
async def run_agent_processes(
    commands: Sequence[AgentCommand],
) -> AsyncIterator[list[AgentProcess]]:
    """Start every agent process, all at once; stop them all on exit.

    Yields once every one is ready. Leaving the block sends each SIGTERM and waits for it.

    Raises:
        AgentProcessFailed: if one ends before it is ready, or ends with a non-zero status.
        trio.TooSlowError: if one takes longer than `START_BOUND` to be ready.
    """
    async with trio.open_nursery() as nursery:
        started: dict[int, AgentProcess] = {}

        async def start(index: int, command: AgentCommand) -> None:
            started[index] = await nursery.start(_run_agent_process, command)

        # All at once: each needs a second or so of interpreter start and imports.
        async with trio.open_nursery() as starters:
            for index, command in enumerate(commands):
                starters.start_soon(start, index, command)
        agents = [started[index] for index in range(len(commands))]
        yield agents
        failed = []
        for agent in agents:
            status = await _stop(agent)
            if status != 0:
                failed.append(f"{agent.name} (status {status})")
        if failed:
            raise AgentProcessFailed("agent processes ended badly: " + ", ".join(failed))


@attrs.define
class Interruption:
    """Whether a `stop_on_signal` block was interrupted by a signal."""

    signalled: bool = False
    """True once SIGINT or SIGTERM arrived."""


@asynccontextmanager
async def stop_on_signal(interruption: Interruption) -> AsyncIterator[None]:
    """Note SIGINT or SIGTERM in `interruption`; cancel the block `INTERRUPT_GRACE` seconds
    later if it is still running, or at once on a second signal.

    A Ctrl-C reaches every process of the terminal: the agent processes end by themselves, so
    the launcher's main part usually fails at once (its jobs end FAILED) and the block ends.
    It is not cancelled right away on purpose: an actor system cancelled from outside while
    its jobs are in flight over Redis may take long to close (an open issue of the Redis
    transport); after the grace, the agents have left and no job is in flight any more.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def cancel_later() -> None:
                await trio.sleep(INTERRUPT_GRACE)
                nursery.cancel_scope.cancel()

            async def watch() -> None:
                # Every signal is consumed here: one left pending would be raised again as
                # KeyboardInterrupt when the receiver closes.
                async for _ in signals:
                    if interruption.signalled:
                        nursery.cancel_scope.cancel()
                    else:
                        interruption.signalled = True
                        nursery.start_soon(cancel_later)

            nursery.start_soon(watch)
            yield
            nursery.cancel_scope.cancel()


async def launch_with_agents(
    agents: Sequence[AgentCommand], main_part: Callable[[], Awaitable[object]]
) -> None:
    """Run `main_part` while the agent processes run, then stop them; Ctrl-C ends them all.

    Raises:
        SystemExit: with status 130 after an interruption (every process has ended).
    """
    interruption = Interruption()
    try:
        async with stop_on_signal(interruption), run_agent_processes(agents):
            await main_part()
    except Exception:
        # Interrupted (Ctrl-C): the agents left, so the main part failed; nothing to report.
        if not interruption.signalled:
            raise
    if interruption.signalled:
        print("interrupted: all processes ended", flush=True)
        raise SystemExit(130)
    print("all processes ended", flush=True)
