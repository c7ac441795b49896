"""Issue 8: hypothesis fuzzing with hostile but *well-formed* envelopes, delivered to a live
system, and the codec's shape bound checked against msgspec.

The codec tests (`test_codec.py`) show that no byte string crashes the decoder. Here every
packet decodes: random system messages with random job ids, names, sequence numbers, credits
and deadline budgets (NaN, infinities, negatives), registry news naming our own actors, stray
bridge frames and acknowledgements, user messages, sent addressed or broadcast, as control
traffic or not. The system must survive all of it (no actor crashes or restarts, nothing
escapes the system block, our actors stay ours in the registry) and still serve a probe job.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import (
    Actor,
    DecodeError,
    Envelope,
    EnvelopeCodec,
    JobRequest,
    JobStatus,
    job,
)
from actors._wire.codec import check_shape
from actors._wire.envelope import SYSTEM_MESSAGE_TYPES, AgentInfo
from actors.testing import open_test_system
from transports import MemoryTransport, UnknownRecipient

from actor_support import Note

CODEC = EnvelopeCodec()
FUZZ = settings(
    database=None,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LOCAL = ("w", "other")
NAMES = st.sampled_from([*LOCAL, "system:home", "bridge:voice", "ghost", "evil"]) | st.text(
    max_size=8
)
SYSTEMS = st.sampled_from(["home", "evil", "elsewhere"]) | st.text(max_size=6)
JOB_IDS = st.none() | st.sampled_from(["j1", "j2", "probe"]) | st.text(max_size=12)
BUDGETS = st.none() | st.floats(allow_nan=True, allow_infinity=True)
INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
SCALARS = (
    st.none()
    | st.booleans()
    | INTS
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


class Frame(msgspec.Struct, frozen=True):
    n: int


def _field_strategy(name: str, kind: Any) -> st.SearchStrategy[Any]:
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "name": NAMES,
        "system": SYSTEMS,
        "bridge": st.sampled_from(["voice", "closed"]) | st.text(max_size=5),
        "frame_type": st.sampled_from(
            [CODEC.encode_value(Frame(1))[0], CODEC.encode_value(Note("x"))[0], "no.such:Type"]
        )
        | st.text(max_size=10),
        "handoff_from": st.none() | NAMES,
        "decision": st.none() | st.text(max_size=8),
    }
    if name in by_name:
        return by_name[name]
    if name == "data" and kind is msgspec.Raw:
        return VALUES.map(lambda value: msgspec.Raw(msgspec.msgpack.encode(value))) | st.builds(
            lambda n: msgspec.Raw(msgspec.msgpack.encode(Frame(n))), INTS
        )
    if kind is AgentInfo:
        return st.builds(
            AgentInfo,
            name=NAMES,
            system=SYSTEMS,
            parent=st.none() | NAMES,
            active=st.booleans(),
            bridged=st.none() | st.tuples() | st.tuples(st.sampled_from(["voice", "x"])),
            started_at=st.floats(allow_nan=True),
            incarnation=st.text(max_size=6),
        )
    if kind is JobStatus:
        return st.sampled_from(JobStatus)
    if kind is bool:
        return st.booleans()
    if kind is int:
        return INTS
    if kind is str:
        return st.text(max_size=12)
    if kind == (str | None):
        return st.none() | st.text(max_size=12)
    return VALUES


def _body(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    fields = {
        field.name: _field_strategy(field.name, field.type) for field in msgspec.structs.fields(cls)
    }
    return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))


BODIES = st.one_of(
    *[_body(cls) for cls in SYSTEM_MESSAGE_TYPES],
    st.builds(Note, st.text(max_size=10)),
    st.builds(Frame, INTS),
)
_ids = itertools.count(1)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str | None, bool, bytes]:
    """A well-formed envelope a hostile peer might send: (recipient, control, bytes)."""
    recipient = draw(st.none() | NAMES)
    envelope = Envelope(
        id=draw(st.sampled_from(["dup"]) | st.just(f"fuzz-{next(_ids)}")),
        sender=draw(NAMES | st.sampled_from(["system:evil", "home"])),
        recipient=recipient,
        body=draw(BODIES),
        job_id=draw(JOB_IDS),
        urgent=draw(st.booleans()),
        deadline=draw(BUDGETS),
        trace=draw(st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4))),
    )
    return recipient, draw(st.booleans()), CODEC.encode(envelope)


class Target(Actor):
    """Echoes jobs, takes frames and messages; records whether it was ever restarted."""

    starts = 0

    def __init__(self, name: str) -> None:
        super().__init__(name, bridged=() if name == "w" else None)

    async def on_ready(self) -> None:
        await super().on_ready()
        type(self).starts += 1

    @job
    async def echo(self, request: JobRequest[Any]) -> Any:
        return request.payload

    async def on_frame(self, frame: Any, bridge: str) -> None:
        await super().on_frame(frame, bridge)


async def _deliver_to_a_live_system(packets: list[tuple[str | None, bool, bytes]]) -> None:
    transport = MemoryTransport(strict=True)
    Target.starts = 0
    async with open_test_system("home", transport=transport) as home:
        actors = {name: await home.spawn(Target(name)) for name in LOCAL}
        async with home.open_bridge("voice"), transport.connect("evil") as evil:
            await evil.claim("system:evil")
            for recipient, control, packet in packets:
                if recipient is None:
                    await evil.broadcast(packet)
                    continue
                with contextlib.suppress(UnknownRecipient):
                    await evil.send(recipient, packet, control=control)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(5)
            # Still ours, still the same instances, never restarted.
            for name, actor in actors.items():
                info = home.registry.get(name)
                assert info is not None and info.system == "home", info
                assert home.actors[name] is actor and actor.ready
            assert Target.starts == len(LOCAL)
            with trio.fail_after(5):
                async with home.job("w", payload="probe") as j:
                    pass
            assert j.response == "probe"


@FUZZ
@given(st.lists(hostile(), min_size=1, max_size=25))
def test_property_hostile_well_formed_envelopes_do_not_hurt_a_live_system(
    packets: list[tuple[str | None, bool, bytes]],
) -> None:
    """Random well-formed system messages, user messages and frames from a hostile peer
    neither crash an actor nor escape the system block; a probe job still completes."""
    trio.run(_deliver_to_a_live_system, packets, clock=trio.testing.MockClock(autojump_threshold=0))


def _count_values(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(_count_values(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(1 + _count_values(item) for item in value.values())
    return 1


@settings(database=None, max_examples=300, deadline=None)
@given(VALUES)
def test_property_the_shape_walk_counts_exactly_what_msgspec_decodes(value: Any) -> None:
    """`check_shape` counts exactly the values msgspec would build, without building them:
    a bound of that count passes, one less is refused."""
    data = msgspec.msgpack.encode(value)
    count = _count_values(value)
    check_shape(data, max_items=count, max_depth=100)
    with pytest.raises(DecodeError, match=r"too many values"):
        check_shape(data, max_items=count - 1, max_depth=100)
