"""The voice front end: typed-in text goes to the remote assistant, its answers stream back.

It owns the "voice" bridge (in a real voice app, speech-to-text feeds it and text-to-speech
reads what comes back) and links to the remote assistant's server, sending the bearer token
from the ``ASSISTANT_TOKEN`` environment variable. Each line read from standard input goes to
the assistant; its streamed answer is printed as it arrives. End of input ends the program.

Run it with::

    ASSISTANT_TOKEN=secret python -m examples.remote_assistant.main \\
        --remote-url ws://127.0.0.1:8765/ws
"""

from __future__ import annotations

import argparse
import os
import sys

import trio

from actors import open_actor_system
from transports import LinkRejected, open_websocket_link

from .frames import AnswerChunk, AnswerEnd, UserText

TOKEN_VARIABLE = "ASSISTANT_TOKEN"


async def converse(url: str, token: str, lines: list[str]) -> list[str]:
    """Send each line to the remote assistant; return (and print) each full answer."""
    answers: list[str] = []
    async with (
        open_actor_system("voice-front") as system,
        open_websocket_link(
            system,
            url,
            exports=["bridge:voice"],
            imports=["assistant"],
            headers=[("Authorization", f"Bearer {token}")],
        ),
        system.open_bridge("voice") as bridge,
    ):
        with trio.fail_after(10):
            await system.registry.wait_ready("assistant")
        for line in lines:
            print(f"you       > {line}", flush=True)
            await bridge.send(UserText(line))
            print("assistant > ", end="", flush=True)
            pieces: list[str] = []
            while True:
                frame = await bridge.receive()
                if isinstance(frame, AnswerEnd):
                    break
                if isinstance(frame, AnswerChunk):
                    pieces.append(frame.text)
                    print(frame.text, end="", flush=True)
            print(flush=True)
            answers.append("".join(pieces))
    return answers


def main() -> None:
    """Parse the command line, read standard input, talk to the assistant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--remote-url", default="ws://127.0.0.1:8765/ws")
    arguments = parser.parse_args()
    token = os.environ.get(TOKEN_VARIABLE, "")
    lines = [line.strip() for line in sys.stdin if line.strip()]
    try:
        trio.run(converse, arguments.remote_url, token, lines)
    except LinkRejected as exc:
        sys.exit(f"the assistant refused the connection: {exc}")


if __name__ == "__main__":
    main()
