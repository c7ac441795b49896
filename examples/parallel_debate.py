"""A moderator fans a topic out to three debaters and synthesizes what they stream back.

The moderator opens one `job_group` to an advocate, a critic and an analyst. Each debater
streams its argument a sentence at a time (`send_job_stream_start/data/end`), the moderator
prints the sentences as they arrive, interleaved, and when every member has completed it
prints a synthesis built from `g.responses`. Deterministic, no API keys: the debaters'
arguments are scripted, and each "thinks" for a scripted number of milliseconds.

Run it with ``make demo`` or ``python examples/parallel_debate.py``.
"""

from __future__ import annotations

import msgspec
import trio

from actors import Actor, JobEvent, JobRequest, job, open_actor_system
from transports import MemoryTransport


class DebateTopic(msgspec.Struct, frozen=True):
    """What the moderator asks every debater about."""

    topic: str
    sentences: int = 3


ARGUMENTS = {
    "advocate": (
        "{topic} lets small teams ship what used to take large ones.",
        "Every past wave of automation created more work than it removed.",
        "The upside is broad and compounding.",
    ),
    "critic": (
        "{topic} concentrates power in whoever owns the infrastructure.",
        "Its failures are quiet, so they are noticed late.",
        "The costs land on people who never opted in.",
    ),
    "analyst": (
        "The evidence on {topic} is mixed and mostly short-term.",
        "Outcomes depend on who deploys it and with what oversight.",
        "Measure first; regulate where harm is demonstrated.",
    ),
}
THINKING_MS = {"advocate": 30, "critic": 21, "analyst": 25}


class Debater(Actor):
    """Argues one side of any topic, streaming one sentence at a time."""

    @job(name="debate")
    async def debate(self, request: JobRequest[DebateTopic]) -> None:
        topic = request.payload
        await self.send_job_stream_start(request.job_id, {"role": self.name})
        sentences = []
        for template in ARGUMENTS[self.name][: topic.sentences]:
            await trio.sleep(THINKING_MS[self.name] / 1000)
            sentence = template.format(topic=topic.topic)
            sentences.append(sentence)
            await self.send_job_stream_data(request.job_id, {"sentence": sentence})
        await self.send_job_stream_end(
            request.job_id, {"role": self.name, "argument": " ".join(sentences)}
        )


class Moderator(Actor):
    """Runs the debate: one job group, streamed, then a synthesis."""

    def __init__(self, name: str, debaters: tuple[str, ...]) -> None:
        super().__init__(name)
        self.debaters = debaters
        self.transcript: list[tuple[str, str]] = []
        self.synthesis = ""

    async def run_debate(self, topic: str) -> str:
        """Debate `topic` and return the synthesis."""
        print(f"moderator: debating {topic!r} with {', '.join(self.debaters)}")
        async with self.job_group(
            *self.debaters, name="debate", payload=DebateTopic(topic), timeout=10
        ) as group:
            async for event in group:
                if event.type is JobEvent.STREAM_DATA:
                    sentence = event.data["sentence"]
                    self.transcript.append((event.actor_name, sentence))
                    print(f"  {event.actor_name:>8}: {sentence}")
        lines = [f"{name.upper()}: {group.responses[name]['argument']}" for name in self.debaters]
        self.synthesis = "\n".join(lines)
        print("moderator: synthesis\n" + self.synthesis)
        return self.synthesis


async def run_debate(topic: str = "AI regulation") -> Moderator:
    """Start the debaters and the moderator, run one debate, and return the moderator."""
    debaters = ("advocate", "critic", "analyst")
    async with open_actor_system("debate", transport=MemoryTransport(strict=True)) as system:
        for role in debaters:
            await system.spawn(Debater(role))
        moderator = await system.spawn(Moderator("moderator", debaters))
        assert isinstance(moderator, Moderator)
        await moderator.run_debate(topic)
        system.end("debate over")
        await system.wait()
    return moderator


def main() -> None:
    """Run the demo debate."""
    trio.run(run_debate)


if __name__ == "__main__":
    main()
