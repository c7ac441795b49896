"""The greeter agent, in a process of its own: ``python -m examples.redis_handoff.greeter``."""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from actors import Actor

from .._launcher import run_agent
from .common import BRIDGE, AgentText, parse_args


class Greeter(Actor):
    """Welcomes the user; hands the conversation to support when the user needs help."""

    def __init__(self) -> None:
        super().__init__("greeter", bridged=(BRIDGE,))

    async def on_frame(self, frame: Any, bridge: str) -> None:
        """Answer a line, or hand the conversation to support."""
        if "help" in frame.text.lower():
            await self.send_frame(AgentText(self.name, "Let me get you to support."))
            # Support lives in another process: activation travels through Redis like any
            # other message, and the bridge follows it.
            await self.handoff_to("support", args={"topic": frame.text})
        else:
            await self.send_frame(AgentText(self.name, f"Hello! You said: {frame.text!r}"))

    async def on_activated(self, args: Any) -> None:
        """Welcome the user back when support hands the conversation back."""
        await super().on_activated(args)
        if args is not None:
            # None: the activation at start (constructed active), nobody to welcome back.
            await self.send_frame(
                AgentText(self.name, "Welcome back! Anything else?"), bridge=BRIDGE
            )


def main() -> None:
    """Run the greeter until SIGTERM or Ctrl-C."""
    options = parse_args(__doc__ or "")
    trio.run(partial(run_agent, Greeter(), options))


if __name__ == "__main__":
    main()
