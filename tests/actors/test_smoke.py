"""A first end-to-end check of the fixture and a round trip."""

import msgspec
import trio

from actors import Actor, ActorSystem, Envelope


class Ping(msgspec.Struct, frozen=True):
    n: int


class Echo(Actor):
    async def on_message(self, envelope: Envelope) -> None:
        await self.send_message(envelope.sender, Ping(envelope.body.n + 1))


class Probe(Actor):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.received: list[Ping] = []
        self.arrived = trio.Event()

    async def on_message(self, envelope: Envelope) -> None:
        self.received.append(envelope.body)
        self.arrived.set()


async def test_message_round_trip(actor_system: ActorSystem) -> None:
    """A message sent to an actor is answered back to the sender through the codec."""
    await actor_system.spawn(Echo("echo"))
    probe = await actor_system.spawn(Probe("probe"))
    await probe.send_message("echo", Ping(1))
    await probe.arrived.wait()
    assert probe.received == [Ping(2)]
