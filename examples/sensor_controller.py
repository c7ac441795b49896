"""A supervised sensor that crashes now and then, and a controller that never hangs on it.

The sensor actor runs an autonomous tick loop: its reading moves toward a target with a
first-order lag plus seeded noise, and it keeps rolling statistics. It answers jobs: "read",
"stats" and "set_target". Its first two instances hit a fault on their 15th tick and crash;
the plant actor that supervises it restarts it (PERMANENT) with exponential backoff, and each
restart is a fresh instance: its statistics start over.

The controller asks for a reading every 100 ms with a 1 s timeout. A job held by the sensor
when it crashes ends FAILED at once; a job sent while it restarts waits for the new instance.
Either way the controller gets an answer or a clear error, never a hang.

Run it with ``python examples/sensor_controller.py`` (about two seconds).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, ClassVar

import msgspec
import trio

from actors import Actor, ActorSpec, AgentError, JobError, JobRequest, job, open_actor_system
from supervision import Backoff, Restart, RestartIntensity
from transports import MemoryTransport

TICK = 0.05
FAULTY_INSTANCES = 2
FAULT_ON_TICK = 15


class SetTarget(msgspec.Struct, frozen=True):
    """Payload of the "set_target" job."""

    target: float
    rate: float | None = None


class Sensor(Actor):
    """A simulated thermometer with rolling statistics."""

    instances: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__("sensor")
        Sensor.instances += 1
        self.instance = Sensor.instances
        self.reading = 20.0
        self.target = 20.0
        self.rate = 0.2
        self.ticks = 0
        self.window: deque[float] = deque(maxlen=20)
        self.random = random.Random(self.instance)

    async def on_ready(self) -> None:
        await super().on_ready()
        self.start_soon(self._tick_loop)

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(TICK)
            self.ticks += 1
            if self.instance <= FAULTY_INSTANCES and self.ticks == FAULT_ON_TICK:
                raise RuntimeError(f"sensor instance {self.instance}: bus fault")
            noise = self.random.uniform(-0.05, 0.05)
            self.reading += (self.target - self.reading) * self.rate + noise
            self.window.append(self.reading)

    @job(name="read")
    async def read(self, request: JobRequest[Any]) -> dict[str, Any]:
        # Sample over three ticks, so a crash can land in the middle of a read.
        samples = []
        for _ in range(3):
            await trio.sleep(TICK)
            samples.append(self.reading)
        return {"reading": round(sum(samples) / 3, 2), "instance": self.instance}

    @job(name="stats")
    async def stats(self, request: JobRequest[Any]) -> dict[str, Any]:
        window = list(self.window) or [self.reading]
        return {
            "min": round(min(window), 2),
            "max": round(max(window), 2),
            "avg": round(sum(window) / len(window), 2),
            "trend": round(window[-1] - window[0], 2),
            "samples": len(window),
            "instance": self.instance,
        }

    @job(name="set_target")
    async def set_target(self, request: JobRequest[SetTarget]) -> dict[str, Any]:
        self.target = request.payload.target
        if request.payload.rate is not None:
            self.rate = request.payload.rate
        return {"target": self.target, "rate": self.rate}


class Plant(Actor):
    """Supervises the sensor: restart it with backoff, log every crash."""

    backoff = Backoff(initial=0.1, multiplier=2.0, maximum=1.0)
    intensity = RestartIntensity(max_restarts=5, within=10.0)

    def __init__(self) -> None:
        super().__init__("plant")
        self.crashes: list[AgentError] = []

    async def on_ready(self) -> None:
        await super().on_ready()
        await self.add_child(ActorSpec(Sensor, restart=Restart.PERMANENT))

    async def on_agent_error(self, error: AgentError) -> None:
        await super().on_agent_error(error)
        self.crashes.append(error)
        print(f"plant: {error.name} crashed ({error.error}); decision: {error.decision}")


async def run_plant(steps: int = 20) -> dict[str, Any]:
    """Drive the sensor for `steps` controller steps; return what the controller saw."""
    Sensor.instances = 0
    outcomes: dict[str, Any] = {"readings": [], "failures": [], "stats": None, "crashes": []}
    async with open_actor_system("plant", transport=MemoryTransport(strict=True)) as system:
        plant = await system.spawn(Plant())
        assert isinstance(plant, Plant)
        await system.registry.wait_ready("sensor")
        instance = 0
        for step in range(steps):
            await trio.sleep(0.1)
            try:
                async with system.job("sensor", name="read", timeout=1) as j:
                    pass
            except JobError as exc:
                outcomes["failures"].append((step, type(exc).__name__))
                print(f"controller: step {step:2} failed: {exc}")
                continue
            if j.response["instance"] != instance:
                # A fresh sensor instance starts from its defaults: set the target again.
                instance = j.response["instance"]
                async with system.job(
                    "sensor", name="set_target", payload=SetTarget(25.0), timeout=1
                ):
                    pass
            outcomes["readings"].append((step, j.response["reading"], j.response["instance"]))
            print(
                f"controller: step {step:2} reading {j.response['reading']:6.2f}"
                f" (sensor instance {j.response['instance']})"
            )
        async with system.job("sensor", name="stats", timeout=1) as j:
            pass
        outcomes["stats"] = j.response
        outcomes["crashes"] = [(e.name, e.decision) for e in plant.crashes]
        print(f"controller: stats {j.response}")
        print(f"controller: {len(outcomes['failures'])} failed reads, never a hang")
        system.end("shift over")
        await system.wait()
    return outcomes


def main() -> None:
    """Run the plant."""
    trio.run(run_plant)


if __name__ == "__main__":
    main()
