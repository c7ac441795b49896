"""Tests for the envelope codec and the wire vocabulary (`actors._wire`)."""

from __future__ import annotations

import datetime
import sys
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import DecodeError, EncodeError, Envelope, EnvelopeCodec
from actors._wire.codec import DEFAULT_MAX_SIZE, type_name
from actors._wire.envelope import (
    PROTOCOL_VERSION,
    SYSTEM_MESSAGE_TYPES,
    Activate,
    AgentActivation,
    AgentError,
    AgentGone,
    AgentInfo,
    AgentReady,
    BridgeAck,
    BridgeFrame,
    Deactivate,
    JobCancel,
    JobCredit,
    JobRequestMessage,
    JobResponseMessage,
    JobStatus,
    JobStreamData,
    JobStreamEnd,
    JobStreamStart,
    JobUpdateMessage,
    JobUpdateRequest,
    RegistryQuery,
    SystemGone,
)

# No example database: a run never replays (or stores) examples from an earlier one.
PROPERTY = settings(database=None, max_examples=200, deadline=None)


# --- user-defined message types --------------------------------------------------------------


class Point(msgspec.Struct, frozen=True, kw_only=True):
    x: int
    y: float


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    content: bytes
    created: datetime.datetime


class Document(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    points: list[Point]
    tags: dict[str, list[str]]
    attachments: list[Attachment]
    origin: Point | None = None
    note: str | None = None
    edited: datetime.datetime | None = None


class Frame(msgspec.Struct, frozen=True):
    text: str
    seq: int


def _envelope(body: Any, **header: Any) -> Envelope:
    fields: dict[str, Any] = {"id": "m-1", "sender": "alice", "recipient": "bob"}
    fields.update(header)
    return Envelope(body=body, **fields)


def _wire(
    *,
    version: Any = PROTOCOL_VERSION,
    kind: Any = "job_credit",
    body: Any = None,
    extra: tuple[Any, ...] = (),
) -> bytes:
    """Hand-build the msgpack array a peer would send: the header layout of `_codec`."""
    if body is None:
        body = {"type": "job_credit", "count": 1}
    return msgspec.msgpack.encode(
        [version, "m-1", "alice", "bob", kind, body, None, False, None, None, *extra]
    )


_CODEC = EnvelopeCodec()
_FRAME_TYPE, _FRAME_DATA = _CODEC.encode_value(Frame("hello", 3))

SYSTEM_EXAMPLES: dict[type[msgspec.Struct], list[msgspec.Struct]] = {
    AgentReady: [
        AgentReady(
            info=AgentInfo(
                name="researcher",
                system="node-a",
                parent="boss",
                active=False,
                bridged=("voice", "chat"),
                started_at=1_700_000_000.25,
            )
        ),
        AgentReady(info=AgentInfo(name="root", system="node-b", bridged=())),
    ],
    AgentGone: [
        AgentGone(name="w1", system="node-a"),
        AgentGone(name="w2", system="node-b", crashed=True, reason="ZeroDivisionError: boom"),
    ],
    AgentActivation: [AgentActivation(name="a", active=True)],
    RegistryQuery: [RegistryQuery(system="node-c")],
    SystemGone: [SystemGone(system="node-a"), SystemGone(system="node-b", crashed=True)],
    Activate: [
        Activate(),
        Activate(args={"lang": "fr", "turns": [1, 2]}, redeliver=True, handoff_from="greeter"),
    ],
    Deactivate: [Deactivate()],
    AgentError: [AgentError(name="w", error="RuntimeError: nope", fatal=True)],
    BridgeFrame: [
        BridgeFrame(bridge="voice", seq=7, epoch=2, frame_type=_FRAME_TYPE, data=_FRAME_DATA)
    ],
    BridgeAck: [BridgeAck(bridge="voice", seq=7, epoch=2, returned=True)],
    JobRequestMessage: [
        JobRequestMessage(),
        JobRequestMessage(name="research", payload={"q": "trio", "limit": 3, "deep": None}),
        JobRequestMessage(payload=Point(x=1, y=2.5)),
    ],
    JobCancel: [JobCancel(), JobCancel(reason="user pressed stop")],
    JobResponseMessage: [
        *(
            JobResponseMessage(status=status, response=[1, "two", 3.0], error=None)
            for status in JobStatus
        ),
        JobResponseMessage(status=JobStatus.ERROR, error="ValueError: bad"),
    ],
    JobUpdateMessage: [JobUpdateMessage(data={"progress": 0.5})],
    JobStreamStart: [JobStreamStart(data="start")],
    JobStreamData: [JobStreamData(data=b"\x00\xff chunk")],
    JobStreamEnd: [JobStreamEnd(data=["done"])],
    JobUpdateRequest: [JobUpdateRequest()],
    JobCredit: [JobCredit(count=16)],
}


def _as_plain(value: Any) -> Any:
    """What an `Any`-typed field holds after decoding: Structs come back as dicts."""
    return msgspec.to_builtins(value, builtin_types=(bytes, datetime.datetime))


# --- system messages -------------------------------------------------------------------------


def test_examples_cover_every_system_message_type() -> None:
    """Every type in SYSTEM_MESSAGE_TYPES has a round-trip example below."""
    assert set(SYSTEM_EXAMPLES) == set(SYSTEM_MESSAGE_TYPES)
    assert len(SYSTEM_MESSAGE_TYPES) == len(set(SYSTEM_MESSAGE_TYPES))


@pytest.mark.parametrize(
    "body",
    [body for examples in SYSTEM_EXAMPLES.values() for body in examples],
    ids=lambda body: type(body).__name__,
)
def test_system_message_round_trip(body: msgspec.Struct) -> None:
    """Each system message, with its header, decodes to an equal envelope of the same type."""
    codec = EnvelopeCodec()
    envelope = _envelope(body, job_id="job-9", urgent=True, deadline=1.5, trace={"tp": "00-x"})
    decoded = codec.decode(codec.encode(envelope))
    assert type(decoded.body) is type(body)
    if isinstance(body, JobRequestMessage) and isinstance(body.payload, msgspec.Struct):
        # An `Any` payload carries the Struct's fields; the worker validates it into its type.
        assert decoded.body == JobRequestMessage(payload=_as_plain(body.payload))
        assert decoded.body.payload == {"x": 1, "y": 2.5}
    else:
        assert decoded == envelope


def test_system_message_kinds_are_their_tags() -> None:
    """A system body's wire kind is its tag, and every tag is distinct."""
    codec = EnvelopeCodec()
    kinds = [codec.kind_of(examples[0]) for examples in SYSTEM_EXAMPLES.values()]
    assert len(set(kinds)) == len(kinds)
    assert codec.kind_of(JobRequestMessage()) == "job_request"
    assert codec.kind_of(JobCredit(count=1)) == "job_credit"


def test_job_status_round_trips_as_enum() -> None:
    """A response's status decodes back to the `JobStatus` member, not a string."""
    codec = EnvelopeCodec()
    for status in JobStatus:
        decoded = codec.roundtrip(_envelope(JobResponseMessage(status=status)))
        assert decoded.body.status is status


def test_bridge_frame_payload_decodes_back_to_the_frame() -> None:
    """A frame carried inside a BridgeFrame decodes back to the original user Struct."""
    codec = EnvelopeCodec()
    name, data = codec.encode_value(Frame("hi", 1))
    decoded = codec.roundtrip(
        _envelope(BridgeFrame(bridge="b", seq=1, epoch=0, frame_type=name, data=data))
    )
    assert codec.decode_value(decoded.body.frame_type, decoded.body.data) == Frame("hi", 1)


def test_default_header_round_trips() -> None:
    """An envelope with only the required header fields keeps its defaults."""
    codec = EnvelopeCodec()
    envelope = Envelope(id="x", sender="s", recipient=None, body=Deactivate())
    decoded = codec.roundtrip(envelope)
    assert decoded == envelope
    assert decoded.recipient is None
    assert decoded.job_id is None
    assert decoded.urgent is False
    assert decoded.deadline is None
    assert decoded.trace is None
    assert decoded.version == PROTOCOL_VERSION


# --- user messages ---------------------------------------------------------------------------


def _document() -> Document:
    when = datetime.datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=datetime.UTC)
    return Document(
        title="Trip report ✈",
        points=[Point(x=1, y=-0.5), Point(x=-(2**40), y=1e300)],
        tags={"a": ["x", "y"], "": []},
        attachments=[Attachment(name="blob", content=bytes(range(256)), created=when)],
        origin=Point(x=0, y=0.0),
        note=None,
        edited=when,
    )


def test_user_struct_round_trip() -> None:
    """A nested user Struct with lists, dicts, bytes, datetimes and optionals round-trips equal."""
    codec = EnvelopeCodec()
    envelope = _envelope(_document())
    decoded = codec.decode(codec.encode(envelope))
    assert decoded == envelope
    assert type(decoded.body) is Document
    assert type(decoded.body.points[0]) is Point
    assert decoded.body.attachments[0].created.tzinfo is not None


def test_user_struct_optional_fields_default() -> None:
    """Optional fields left at their defaults come back as None."""
    codec = EnvelopeCodec()
    body = Document(title="t", points=[], tags={}, attachments=[])
    decoded = codec.roundtrip(_envelope(body))
    assert decoded.body == body
    assert decoded.body.origin is None
    assert decoded.body.edited is None


def test_user_struct_defined_in_a_function_round_trips() -> None:
    """A Struct class defined locally (qualname with <locals>) is found by its wire name."""

    class Local(msgspec.Struct, frozen=True):
        value: list[int]

    codec = EnvelopeCodec()
    assert codec.kind_of(Local([1])) == "u:" + type_name(Local)
    assert "<locals>" in codec.kind_of(Local([1]))
    decoded = codec.roundtrip(_envelope(Local([1, 2])))
    assert type(decoded.body) is Local
    assert decoded.body == Local([1, 2])


def _make_local_type() -> type[msgspec.Struct]:
    class Redefined(msgspec.Struct, frozen=True):
        n: int

    return Redefined


def test_redefined_user_struct_round_trips_to_its_own_class() -> None:
    """Two classes with the same wire name: each envelope decodes to the class it was sent as."""
    first, second = _make_local_type(), _make_local_type()
    codec = EnvelopeCodec()
    assert codec.roundtrip(_envelope(first(n=1))).body == first(n=1)
    decoded = codec.roundtrip(_envelope(second(n=2)))
    assert type(decoded.body) is second


def test_kind_of_user_struct_is_module_and_qualname() -> None:
    """A user Struct's wire kind is ``u:module:qualname``."""
    codec = EnvelopeCodec()
    assert codec.kind_of(Point(x=1, y=1.0)) == f"u:{__name__}:Point"
    assert type_name(Document) == f"{__name__}:Document"


def test_encode_value_decode_value_round_trip() -> None:
    """encode_value gives the wire name and bytes that decode_value turns back into the value."""
    codec = EnvelopeCodec()
    document = _document()
    name, data = codec.encode_value(document)
    assert name == type_name(Document)
    assert isinstance(data, msgspec.Raw)
    assert codec.decode_value(name, data) == document
    assert codec.decode_value(name, bytes(data)) == document


def test_encode_value_refuses_non_user_structs() -> None:
    """encode_value refuses plain values and system messages."""
    codec = EnvelopeCodec()
    with pytest.raises(
        EncodeError, match=r"^cannot encode envelope: a frame must be a user-defined .*'dict'$"
    ) as info:
        codec.encode_value({"a": 1})  # type: ignore[arg-type]
    assert "'dict'" in info.value.reason
    with pytest.raises(EncodeError, match=r"'JobCredit'$"):
        codec.encode_value(JobCredit(count=1))


def test_encode_value_unencodable_field() -> None:
    """encode_value reports a field value msgspec cannot encode as EncodeError."""

    class Holder(msgspec.Struct, frozen=True):
        thing: Any

    codec = EnvelopeCodec()
    with pytest.raises(EncodeError, match=r"^cannot encode envelope: .*Holder value: ") as info:
        codec.encode_value(Holder(object()))
    assert info.value.reason.startswith(type_name(Holder) + " value: ")


def test_decode_value_unknown_type() -> None:
    """decode_value of a type name this process lacks raises DecodeError."""
    codec = EnvelopeCodec()
    with pytest.raises(
        DecodeError, match=r"^cannot decode envelope: unknown message type "
    ) as info:
        codec.decode_value("nowhere_module:Nothing", b"\x90")
    assert info.value.reason.startswith("unknown message type 'nowhere_module:Nothing'")


# --- property tests --------------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=64)
)
_json_like = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@st.composite
def _envelopes(draw: st.DrawFn) -> Envelope:
    return Envelope(
        id=draw(st.text()),
        sender=draw(st.text()),
        recipient=draw(st.none() | st.text()),
        body=JobRequestMessage(
            name=draw(st.none() | st.text(max_size=20)),
            payload=draw(_json_like),
        ),
        job_id=draw(st.none() | st.text()),
        urgent=draw(st.booleans()),
        deadline=draw(st.none() | st.floats(allow_nan=False)),
        trace=draw(st.none() | st.dictionaries(st.text(), st.text(), max_size=4)),
    )


@PROPERTY
@given(_envelopes())
def test_property_envelope_round_trip(envelope: Envelope) -> None:
    """Any header and any JSON-like payload in a job request round-trips equal."""
    codec = EnvelopeCodec()
    data = codec.encode(envelope)
    assert isinstance(data, bytes)
    assert codec.decode(data) == envelope
    assert codec.roundtrip(envelope) == envelope


@PROPERTY
@given(_envelopes())
def test_property_every_prefix_is_a_decode_error(envelope: Envelope) -> None:
    """Every strict prefix of a valid encoding raises DecodeError, never another exception."""
    codec = EnvelopeCodec()
    data = codec.encode(envelope)
    for end in range(len(data)):
        with pytest.raises(DecodeError) as info:
            codec.decode(data[:end])
        assert info.value.reason


def test_every_prefix_of_a_user_message_is_a_decode_error() -> None:
    """Truncating a user-Struct envelope at any byte raises DecodeError with a reason."""
    codec = EnvelopeCodec()
    data = codec.encode(_envelope(_document(), job_id="j", deadline=2.0, trace={"a": "b"}))
    for end in range(len(data)):
        with pytest.raises(DecodeError) as info:
            codec.decode(memoryview(data)[:end])
        assert info.value.reason


@settings(PROPERTY, derandomize=True)
@given(st.binary(max_size=200))
def test_property_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    """Arbitrary bytes either decode to an Envelope or raise DecodeError, nothing else."""
    codec = EnvelopeCodec()
    try:
        envelope = codec.decode(data)
    except DecodeError as exc:
        assert exc.reason
    else:
        assert isinstance(envelope, Envelope)


@settings(
    PROPERTY,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_envelopes(), st.data())
def test_property_corrupted_bytes_decode_or_raise_decode_error(
    envelope: Envelope, data: st.DataObject
) -> None:
    """A valid encoding with one byte overwritten decodes or raises DecodeError, nothing else."""
    codec = EnvelopeCodec()
    encoded = bytearray(codec.encode(envelope))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    try:
        decoded = codec.decode(bytes(encoded))
    except DecodeError as exc:
        assert exc.reason
    else:
        assert isinstance(decoded, Envelope)


# --- decoding errors -------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"\xff\xff\xff", b"\x9a\x01"])
def test_garbage_is_a_decode_error(garbage: bytes) -> None:
    """Bytes that are not msgpack, or are cut short, raise DecodeError saying so."""
    with pytest.raises(
        DecodeError, match=r"^cannot decode envelope: malformed or truncated msgpack \(.*\)$"
    ) as info:
        EnvelopeCodec().decode(garbage)
    assert info.value.reason.startswith("malformed or truncated msgpack (")


@pytest.mark.parametrize(
    "value",
    [{"id": "x"}, [], "envelope", 42, [1, "m-1", "alice", "bob", "job_credit"]],
    ids=["map", "empty-array", "string", "int", "short-array"],
)
def test_valid_msgpack_that_is_not_an_envelope(value: Any) -> None:
    """Well-formed msgpack of the wrong shape raises DecodeError 'not an envelope'."""
    with pytest.raises(
        DecodeError, match=r"^cannot decode envelope: not an envelope \(.*\)$"
    ) as info:
        EnvelopeCodec().decode(msgspec.msgpack.encode(value))
    assert info.value.reason.startswith("not an envelope (")


def test_wrong_header_field_type() -> None:
    """A header field of the wrong type (a numeric sender) is 'not an envelope'."""
    data = msgspec.msgpack.encode(
        [1, "m", 5, "bob", "job_credit", {"count": 1}, None, False, None, None]
    )
    with pytest.raises(DecodeError, match=r"^cannot decode envelope: not an envelope \(") as info:
        EnvelopeCodec().decode(data)
    assert "$[2]" in info.value.reason


def test_oversized_input_is_a_decode_error() -> None:
    """Input longer than max_size is refused before decoding."""
    codec = EnvelopeCodec(max_size=100)
    data = _wire(body={"type": "job_update", "data": "x" * 200}, kind="job_update")
    assert len(data) > 100
    with pytest.raises(
        DecodeError, match=rf"^cannot decode envelope: {len(data)} bytes exceeds max_size 100$"
    ) as info:
        codec.decode(data)
    assert info.value.reason == f"{len(data)} bytes exceeds max_size 100"
    assert EnvelopeCodec(max_size=len(data)).decode(data).body == JobUpdateMessage(data="x" * 200)


def test_wrong_protocol_version() -> None:
    """An envelope of protocol version 2 is refused with the version in the reason."""
    with pytest.raises(
        DecodeError,
        match=r"^cannot decode envelope: unsupported protocol version 2 \(this side speaks 1\)$",
    ) as info:
        EnvelopeCodec().decode(_wire(version=2))
    assert info.value.reason == "unsupported protocol version 2 (this side speaks 1)"


def test_wrong_protocol_version_with_another_header_layout() -> None:
    """A version-2 peer whose header has another shape is still reported as a version mismatch."""
    with pytest.raises(DecodeError, match=r"unsupported protocol version 2 ") as info:
        EnvelopeCodec().decode(msgspec.msgpack.encode([2, {"some": "new header"}]))
    assert info.value.reason == "unsupported protocol version 2 (this side speaks 1)"


def test_encoded_envelope_with_other_version_is_refused() -> None:
    """An Envelope built with another version encodes, but this side refuses to decode it."""
    codec = EnvelopeCodec()
    data = codec.encode(_envelope(JobCredit(count=1), version=PROTOCOL_VERSION + 1))
    with pytest.raises(DecodeError, match=r"unsupported protocol version") as info:
        codec.decode(data)
    assert info.value.reason.startswith(f"unsupported protocol version {PROTOCOL_VERSION + 1} ")


def test_unknown_kind() -> None:
    """A kind that is neither a system tag nor a user type raises DecodeError naming it."""
    with pytest.raises(
        DecodeError, match=r"^cannot decode envelope: unknown message kind 'telepathy'$"
    ) as info:
        EnvelopeCodec().decode(_wire(kind="telepathy"))
    assert info.value.reason == "unknown message kind 'telepathy'"


def test_unknown_user_type() -> None:
    """A user type name this process has not defined raises DecodeError naming it."""
    with pytest.raises(
        DecodeError,
        match=r"^cannot decode envelope: unknown message type 'nowhere_pkg\.mod:Thing'; ",
    ) as info:
        EnvelopeCodec().decode(_wire(kind="u:nowhere_pkg.mod:Thing", body={"a": 1}))
    assert info.value.reason.startswith("unknown message type 'nowhere_pkg.mod:Thing';")
    assert "never imported" in info.value.reason


def test_user_type_of_an_unimported_module_is_not_imported() -> None:
    """Naming a real but unimported module's class is refused without importing the module."""
    module = "tabnanny"  # stdlib, imports nothing on load, and nothing here imports it
    assert module not in sys.modules
    with pytest.raises(DecodeError, match=r"unknown message type 'tabnanny:NannyNag'") as info:
        EnvelopeCodec().decode(_wire(kind=f"u:{module}:NannyNag", body={}))
    assert info.value.reason.startswith("unknown message type 'tabnanny:NannyNag';")
    assert module not in sys.modules


@pytest.mark.parametrize(
    ("kind", "body", "name"),
    [
        ("job_credit", {"type": "job_credit", "count": "many"}, "'job_credit'"),
        ("job_credit", {"type": "job_credit"}, "'job_credit'"),
        ("job_credit", {"type": "job_cancel"}, "'job_credit'"),
        ("job_response", {"type": "job_response", "status": "great"}, "'job_response'"),
        ("ready", {"type": "ready", "info": {"name": 1}}, "'ready'"),
        (f"u:{__name__}:Point", {"x": "one", "y": 1.0}, f"'{__name__}:Point'"),
        (f"u:{__name__}:Point", [1, 2], f"'{__name__}:Point'"),
    ],
    ids=["wrong-type", "missing-field", "other-tag", "bad-enum", "nested", "user", "user-shape"],
)
def test_body_that_does_not_match_its_type(kind: str, body: Any, name: str) -> None:
    """A body that does not fit the type its kind names raises DecodeError 'invalid ... body'."""
    with pytest.raises(
        DecodeError, match=rf"^cannot decode envelope: invalid {name} body: "
    ) as info:
        EnvelopeCodec().decode(_wire(kind=kind, body=body))
    assert info.value.reason.startswith(f"invalid {name} body: ")


@pytest.mark.parametrize("where", ["header", "payload"])
def test_deeply_nested_input_is_a_decode_error(where: str) -> None:
    """Deeply nested msgpack (well under max_size) raises DecodeError, not RecursionError."""
    nested = b"\x91" * 5000 + b"\xc0"  # 5000 one-element arrays around nil
    if where == "header":
        data = nested
    else:
        body = msgspec.Raw(b"\x82\xa4type\xabjob_request\xa7payload" + nested)
        data = _wire(kind="job_request", body=body)
    assert len(data) < DEFAULT_MAX_SIZE
    with pytest.raises(DecodeError) as info:
        EnvelopeCodec().decode(data)
    assert info.value.reason


def _with_bad_utf8(wire: bytes, good: bytes) -> bytes:
    """Replace the first character of the msgpack str `good` (header byte included) by 0xff."""
    assert wire.count(good) == 1
    return wire.replace(good, good[:1] + b"\xff" + good[2:])


@pytest.mark.parametrize("where", ["garbage", "header", "system-body", "user-body"])
def test_invalid_utf8_is_a_decode_error(where: str) -> None:
    """A str that is not valid UTF-8, anywhere in the input, raises DecodeError."""
    if where == "garbage":
        data = b"\xa1\xff"  # a 1-byte msgpack str holding 0xff
    elif where == "header":
        data = _with_bad_utf8(_wire(), b"\xa5alice")
    elif where == "system-body":
        data = _with_bad_utf8(
            _wire(kind="job_cancel", body={"type": "job_cancel", "reason": "why"}), b"\xa3why"
        )
    else:
        data = _with_bad_utf8(
            EnvelopeCodec().encode(
                _envelope(
                    Attachment(name="zed", content=b"", created=datetime.datetime.now(datetime.UTC))
                )
            ),
            b"\xa3zed",
        )
    with pytest.raises(DecodeError) as info:
        EnvelopeCodec().decode(data)
    assert info.value.reason


def test_decode_errors_are_value_errors() -> None:
    """DecodeError is a ValueError (and EncodeError a TypeError), so callers may catch either."""
    with pytest.raises(ValueError, match=r"^cannot decode envelope: "):
        EnvelopeCodec().decode(b"\xc1")
    with pytest.raises(TypeError, match=r"^cannot encode envelope: "):
        EnvelopeCodec().encode(_envelope("not a struct"))


# --- encoding errors -------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["text", {"a": 1}, 3, None], ids=["str", "dict", "int", "none"])
def test_non_struct_body_is_an_encode_error(body: Any) -> None:
    """A body that is not a msgspec Struct cannot be encoded."""
    name = type(body).__name__
    with pytest.raises(
        EncodeError,
        match=rf"^cannot encode envelope: a message body must be a msgspec\.Struct, got '{name}'$",
    ) as info:
        EnvelopeCodec().encode(_envelope(body))
    assert info.value.reason == f"a message body must be a msgspec.Struct, got '{name}'"


@pytest.mark.parametrize(
    "payload",
    [object(), {"nested": [1, [object()]]}, 2**64, {"when": datetime.date.today}],
    ids=["object", "nested-object", "int-overflow", "function"],
)
def test_unencodable_payload_is_an_encode_error(payload: Any) -> None:
    """A payload value msgspec cannot represent raises EncodeError naming the message kind."""
    with pytest.raises(
        EncodeError, match=r"^cannot encode envelope: job_request message: "
    ) as info:
        EnvelopeCodec().encode(_envelope(JobRequestMessage(payload=payload)))
    assert info.value.reason.startswith("job_request message: ")
    assert isinstance(info.value.__cause__, TypeError | ValueError | OverflowError)


def test_encode_larger_than_max_size() -> None:
    """An envelope whose encoding exceeds max_size raises EncodeError with both sizes."""
    codec = EnvelopeCodec(max_size=64)
    envelope = _envelope(JobUpdateMessage(data="x" * 100))
    size = len(EnvelopeCodec().encode(envelope))
    with pytest.raises(
        EncodeError,
        match=rf"^cannot encode envelope: job_update message of {size} bytes exceeds max_size 64$",
    ) as info:
        codec.encode(envelope)
    assert info.value.reason == f"job_update message of {size} bytes exceeds max_size 64"


def test_encode_at_exactly_max_size() -> None:
    """An envelope exactly max_size bytes long encodes and decodes."""
    envelope = _envelope(JobUpdateMessage(data="x" * 100))
    size = len(EnvelopeCodec().encode(envelope))
    codec = EnvelopeCodec(max_size=size)
    assert codec.decode(codec.encode(envelope)) == envelope


@pytest.mark.parametrize("max_size", [0, -1])
def test_max_size_must_be_positive(max_size: int) -> None:
    """EnvelopeCodec refuses a max_size that is not positive."""
    with pytest.raises(ValueError, match=rf"^max_size must be > 0, got {max_size}$"):
        EnvelopeCodec(max_size=max_size)


def test_default_max_size_and_repr() -> None:
    """The default max_size is 4 MiB and shows in the repr."""
    codec = EnvelopeCodec()
    assert codec.max_size == DEFAULT_MAX_SIZE == 4 * 1024 * 1024
    assert repr(codec) == f"<EnvelopeCodec max_size={DEFAULT_MAX_SIZE}>"
