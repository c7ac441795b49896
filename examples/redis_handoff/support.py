"""The support agent, in a process of its own: ``python -m examples.redis_handoff.support``."""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from actors import Actor

from .._launcher import run_agent
from .common import BRIDGE, AgentText, parse_args


class Support(Actor):
    """Solves the user's problem; hands the conversation back to the greeter when thanked."""

    def __init__(self) -> None:
        super().__init__("support", active=False, bridged=(BRIDGE,))

    async def on_activated(self, args: Any) -> None:
        """Take over the conversation about the topic the greeter handed over."""
        await super().on_activated(args)
        topic = (args or {}).get("topic", "?")
        await self.send_frame(
            AgentText(self.name, f"Support here. About {topic!r}:"), bridge=BRIDGE
        )

    async def on_frame(self, frame: Any, bridge: str) -> None:
        """Answer a line, or hand the conversation back when thanked."""
        if "thank" in frame.text.lower():
            await self.send_frame(AgentText(self.name, "Glad to help. Back to the greeter."))
            await self.handoff_to("greeter", args={"from": self.name})
        else:
            await self.send_frame(AgentText(self.name, f"Try turning {frame.text!r} off and on."))


def main() -> None:
    """Run the support agent until SIGTERM or Ctrl-C."""
    options = parse_args(__doc__ or "")
    trio.run(partial(run_agent, Support(), options))


if __name__ == "__main__":
    main()
