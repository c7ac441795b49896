"""The remote assistant: serves the WebSocket link, one assistant per client session.

Each client that presents the right bearer token gets a session of its own with an actor
named "assistant" (locally ``s1/assistant``, ``s2/assistant``, ...), bridged to the client's
"voice" bridge. The assistant streams its answer back word by word. No API keys: the answers
are scripted.

Run it with::

    ASSISTANT_TOKEN=secret python -m examples.remote_assistant.assistant --port 8765

The token comes from the ``ASSISTANT_TOKEN`` environment variable (never from the command
line, where other users of the machine could read it).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
from typing import Any

import trio

from actors import Actor, ActorSystem, open_actor_system
from transports import LinkRequest, serve_websocket_link

from .frames import AnswerChunk, AnswerEnd, UserText

TOKEN_VARIABLE = "ASSISTANT_TOKEN"


def answer(text: str) -> str:
    """The scripted reply to one user line."""
    lowered = text.lower()
    if "hello" in lowered or "hi" in lowered.split():
        return "Hello! I am the remote assistant. How can I help?"
    if "time" in lowered:
        return "I cannot see a clock from here, but it is a fine time to ask."
    return f"You said {text!r}. Tell me more."


class Assistant(Actor):
    """Answers each line arriving on its bridge, streaming the answer word by word."""

    def __init__(self, name: str) -> None:
        super().__init__(name, bridged=())

    async def on_frame(self, frame: Any, bridge: str) -> None:
        if not isinstance(frame, UserText):
            return
        words = answer(frame.text).split(" ")
        for index, word in enumerate(words):
            await self.send_frame(AnswerChunk(word if index == 0 else " " + word))
        await self.send_frame(AnswerEnd())


async def session(system: ActorSystem, request: LinkRequest) -> None:
    """One client's session: its own assistant, ended when the connection ends."""
    await system.spawn(Assistant(request.scoped("assistant")))


def token_checker(token: str) -> Any:
    """An `authenticate` hook accepting ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    def authenticate(request: LinkRequest) -> bool:
        presented = (request.header("authorization") or "").encode()
        return hmac.compare_digest(presented, expected)

    return authenticate


async def serve(host: str, port: int, token: str) -> None:
    """Serve until cancelled; prints the URL once listening."""
    async with open_actor_system("assistant-server") as system:

        async def run(task_status: trio.TaskStatus[Any]) -> None:
            await serve_websocket_link(
                system,
                host=host,
                port=port,
                exports=["assistant"],
                imports=["bridge:voice"],
                session_factory=session,
                authenticate=token_checker(token),
                task_status=task_status,
            )

        async with trio.open_nursery() as nursery:
            server = await nursery.start(run)
            print(f"listening on ws://{host}:{server.port}/ws", flush=True)


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    arguments = parser.parse_args()
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        parser.error(f"set the {TOKEN_VARIABLE} environment variable to the clients' token")
    logging.basicConfig(level=logging.WARNING)
    trio.run(serve, arguments.host, arguments.port, token)


if __name__ == "__main__":
    main()
