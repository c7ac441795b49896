"""Two agents hand a scripted text conversation to each other through a bridge.

A greeter welcomes the user and, when the user asks for help, hands the conversation to a
support agent; support hands it back when the user says thanks. The conversation is a bridge
named "chat": the script sends user lines into it and prints whatever the active agent
answers. No API keys: the agents' replies are scripted.

Run it with ``make demo`` or ``python examples/local_handoff.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from actors import Actor, open_actor_system
from transports import MemoryTransport


class UserText(msgspec.Struct, frozen=True):
    """A line the user typed."""

    text: str


class AgentText(msgspec.Struct, frozen=True):
    """A line an agent answered."""

    agent: str
    text: str


class Greeter(Actor):
    """Welcomes the user; hands off to support when the user needs help."""

    def __init__(self) -> None:
        super().__init__("greeter", bridged=("chat",))

    async def on_frame(self, frame: Any, bridge: str) -> None:
        text = frame.text.lower()
        if "help" in text:
            await self.send_frame(AgentText(self.name, "Let me get you to support."))
            await self.handoff_to("support", args={"topic": frame.text})
        else:
            await self.send_frame(AgentText(self.name, f"Hello! You said: {frame.text!r}"))

    async def on_activated(self, args: Any) -> None:
        await super().on_activated(args)
        if args is None:
            # The activation at start (constructed active): nobody to welcome back yet.
            return
        await self.send_frame(AgentText(self.name, "Welcome back! Anything else?"), bridge="chat")


class Support(Actor):
    """Solves the user's problem; hands back to the greeter when thanked."""

    def __init__(self) -> None:
        super().__init__("support", active=False, bridged=("chat",))

    async def on_activated(self, args: Any) -> None:
        await super().on_activated(args)
        topic = (args or {}).get("topic", "?")
        await self.send_frame(
            AgentText(self.name, f"Support here. About {topic!r}:"), bridge="chat"
        )

    async def on_frame(self, frame: Any, bridge: str) -> None:
        if "thank" in frame.text.lower():
            await self.send_frame(AgentText(self.name, "Glad to help. Back to the greeter."))
            await self.handoff_to("greeter", args={"from": self.name})
        else:
            await self.send_frame(AgentText(self.name, f"Try turning {frame.text!r} off and on."))


SCRIPT = ("hi there", "I need help with my router", "the router", "thanks!", "bye")
EXPECTED_REPLIES = 7


async def run_conversation(script: tuple[str, ...] = SCRIPT) -> list[AgentText]:
    """Play `script` through the bridge and return every agent reply, in order."""
    transcript: list[AgentText] = []
    async with open_actor_system("demo", transport=MemoryTransport(strict=True)) as system:
        await system.spawn(Greeter())
        await system.spawn(Support())
        async with system.open_bridge("chat") as bridge:
            for line in script:
                print(f"user     > {line}")
                await bridge.send(UserText(line))
            while len(transcript) < EXPECTED_REPLIES:
                reply = await bridge.receive()
                print(f"{reply.agent:<8} > {reply.text}")
                transcript.append(reply)
        system.end("conversation over")
        await system.wait()
    return transcript


def main() -> None:
    """Run the demo conversation."""
    trio.run(run_conversation)


if __name__ == "__main__":
    main()
