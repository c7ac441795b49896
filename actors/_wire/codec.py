"""EnvelopeCodec: `Envelope` <-> bytes, sans-io.

Theory of operation
-------------------
An envelope goes on the wire as one msgpack array::

    [version, id, sender, recipient, kind, body, job_id, urgent, deadline, trace]

`kind` names the body's type: a system message's tag (``"job_request"``), or ``"u:"`` followed
by a user Struct's ``module:qualname``. Decoding is two steps, like tractor's ``Raw`` payload:
the header first, with the body left as raw bytes, then the body against the type `kind` names.

Rule 1: nothing is ever imported because a peer named it. A user type name is looked up only
among `msgspec.Struct` classes this process has already defined; an unknown name is a
`DecodeError`.

Rule 2: every way bytes can be wrong (garbage, truncated, oversized, another protocol version,
an unknown kind, a body that does not fit its type) raises `DecodeError` with the reason, and
nothing else. Encoding a value msgspec cannot represent raises `EncodeError`.

Rule 3: a packet's decoded shape is bounded, not only its size. msgpack spends one byte on an
empty array that costs a Python list of ~56 bytes to decode, so a 4 MiB packet of empty arrays
would cost over a second and hundreds of MB. Before decoding, a packet longer than `max_items`
bytes has its msgpack headers walked (`check_shape`, no objects built) and is refused if it
holds more than `max_items` values or nests deeper than `MAX_DEPTH`. A shorter packet cannot
hold more values than it has bytes, so it is not walked: a normal envelope pays one length
comparison. (msgspec itself refuses nesting beyond the interpreter's recursion limit.)

Encoder and decoders are built once per codec and reused.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

import msgspec

from .._exceptions import DecodeError, EncodeError
from .._wire.envelope import PROTOCOL_VERSION, SYSTEM_MESSAGE_TYPES, Envelope, SystemMessage

DEFAULT_MAX_SIZE: Final = 4 * 1024 * 1024
"""Default largest envelope, in bytes, that a codec encodes or decodes (4 MiB)."""

DEFAULT_MAX_ITEMS: Final = 100_000
"""Default most msgpack values (containers and scalars, each counted) one envelope may hold."""

MAX_DEPTH: Final = 100
"""Deepest nesting of arrays and maps accepted in a packet that is walked (see Rule 3)."""

_USER_PREFIX: Final = "u:"

# msgspec reports most bad input as DecodeError, but invalid UTF-8 in a string surfaces as
# UnicodeDecodeError and pathological nesting as RecursionError; all of them are bad bytes.
_BAD_INPUT = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class _WireEnvelope(msgspec.Struct, array_like=True, frozen=True):
    """The header as it is decoded first, with the body still raw."""

    version: int
    id: str
    sender: str
    recipient: str | None
    kind: str
    body: msgspec.Raw
    job_id: str | None
    urgent: bool
    deadline: float | None
    trace: dict[str, str] | None


def type_name(cls: type) -> str:
    """Return the wire name of a user-defined Struct type: ``module:qualname``."""
    return f"{cls.__module__}:{cls.__qualname__}"


class _UserTypes:
    """Finds user Struct types by wire name among the classes this process has defined."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[msgspec.Struct]] = {}
        self._scanned_at = -math.inf
        self._direct_subclasses = -1

    def remember(self, cls: type[msgspec.Struct]) -> str:
        # The newest class of a name wins: a class redefined (a reloaded module, a class made
        # inside a function) must decode as itself, not as its stale predecessor.
        name = type_name(cls)
        self._by_name[name] = cls
        return name

    def lookup(self, name: str) -> type[msgspec.Struct] | None:
        found = self._by_name.get(name)
        if found is None and self._may_know_more():
            self._rescan()
            found = self._by_name.get(name)
        return found

    def _may_know_more(self) -> bool:
        # A miss is what a peer controls, so it must stay cheap: a flood of unknown names costs
        # a dict lookup each, not a walk over every Struct subclass. The tree is walked again
        # only when a class was defined directly on msgspec.Struct since the last walk (how
        # user types are usually declared; counting them is one C call), and otherwise at most
        # once per `_RESCAN_INTERVAL`, for classes declared deeper down.
        if len(msgspec.Struct.__subclasses__()) != self._direct_subclasses:
            return True
        return time.monotonic() - self._scanned_at >= _RESCAN_INTERVAL

    def _rescan(self) -> None:
        # Walking the subclass tree only finds classes that already exist, which is what
        # keeps a peer from making us import anything.
        self._direct_subclasses = len(msgspec.Struct.__subclasses__())
        self._scanned_at = time.monotonic()
        pending: list[type[msgspec.Struct]] = [msgspec.Struct]
        while pending:
            cls = pending.pop()
            for sub in cls.__subclasses__():
                pending.append(sub)
                if not issubclass(sub, SystemMessage):
                    self._by_name.setdefault(type_name(sub), sub)


_RESCAN_INTERVAL: Final = 1.0
"""Least seconds between two walks of the Struct class tree that unknown type names cause."""

_USER_TYPES = _UserTypes()


class EnvelopeCodec:
    """Encodes envelopes to msgpack bytes and decodes them back.

    Args:
        max_size: largest envelope in bytes that is encoded or accepted (default 4 MiB).
        max_items: most msgpack values (each array, map, key and scalar counts one) a decoded
            envelope may hold (default 100,000); see Rule 3 of the module.

    Raises:
        ValueError: if `max_size` or `max_items` is not positive.
    """

    def __init__(
        self, *, max_size: int = DEFAULT_MAX_SIZE, max_items: int = DEFAULT_MAX_ITEMS
    ) -> None:
        if max_size <= 0:
            raise ValueError(f"max_size must be > 0, got {max_size!r}")
        if max_items <= 0:
            raise ValueError(f"max_items must be > 0, got {max_items!r}")
        self.max_size = max_size
        """Largest envelope in bytes that is encoded or accepted."""
        self.max_items = max_items
        """Most values (array items, map entries, scalars) an accepted envelope may hold."""
        self._encoder = msgspec.msgpack.Encoder()
        self._header_decoder = msgspec.msgpack.Decoder(_WireEnvelope)
        self._system_decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {
            _tag_of(cls): msgspec.msgpack.Decoder(cls) for cls in SYSTEM_MESSAGE_TYPES
        }
        self._user_decoders: dict[str, tuple[type, msgspec.msgpack.Decoder[Any]]] = {}

    def __repr__(self) -> str:
        return f"<EnvelopeCodec max_size={self.max_size}>"

    def encode(self, envelope: Envelope) -> bytes:
        """Encode `envelope` to bytes.

        Raises:
            EncodeError: if the body or a value in it cannot be encoded, the body is not a
                msgspec Struct, or the result is larger than `max_size` or holds more than
                `max_items` values.
        """
        body = envelope.body
        kind = self.kind_of(body)
        wire = (
            envelope.version,
            envelope.id,
            envelope.sender,
            envelope.recipient,
            kind,
            body,
            envelope.job_id,
            envelope.urgent,
            envelope.deadline,
            envelope.trace,
        )
        try:
            data = self._encoder.encode(wire)
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeError(f"{kind} message: {exc}") from exc
        if len(data) > self.max_size:
            raise EncodeError(
                f"{kind} message of {len(data)} bytes exceeds max_size {self.max_size}"
            )
        if len(data) > self.max_items:
            # What a receiver with the same bound would refuse fails here, at the sender, with
            # an error it can act on (Rule 3).
            try:
                check_shape(data, max_items=self.max_items, max_depth=MAX_DEPTH)
            except DecodeError as exc:
                raise EncodeError(
                    f"{kind} message: {exc.reason}; split it, or raise max_message_items"
                ) from None
        return data

    def decode(self, data: bytes | bytearray | memoryview) -> Envelope:
        """Decode bytes produced by `encode` (here or in a peer) into an `Envelope`.

        Raises:
            DecodeError: for any input that is not a valid envelope of this protocol version.
        """
        if len(data) > self.max_size:
            raise DecodeError(f"{len(data)} bytes exceeds max_size {self.max_size}")
        if len(data) > self.max_items:
            # Only a packet longer than max_items bytes can hold more values (Rule 3).
            check_shape(data, max_items=self.max_items, max_depth=MAX_DEPTH)
        try:
            wire = self._header_decoder.decode(data)
        except _BAD_INPUT as exc:
            raise DecodeError(self._explain_header_failure(data, exc)) from None
        if wire.version != PROTOCOL_VERSION:
            raise DecodeError(_version_message(wire.version))
        body = self._decode_body(wire.kind, wire.body)
        return Envelope(
            id=wire.id,
            sender=wire.sender,
            recipient=wire.recipient,
            body=body,
            job_id=wire.job_id,
            urgent=wire.urgent,
            deadline=wire.deadline,
            trace=wire.trace,
            version=wire.version,
        )

    def roundtrip(self, envelope: Envelope) -> Envelope:
        """Encode and decode `envelope`: what a peer in another process would receive.

        Strict mode runs every local delivery through this so that a payload that cannot
        cross a process boundary fails in tests, not in production.
        """
        return self.decode(self.encode(envelope))

    def kind_of(self, body: object) -> str:
        """Return the wire kind naming `body`'s type.

        Raises:
            EncodeError: if `body` is not a msgspec Struct.
        """
        if isinstance(body, SystemMessage):
            return _tag_of(type(body))
        if isinstance(body, msgspec.Struct):
            return _USER_PREFIX + _USER_TYPES.remember(type(body))
        raise EncodeError(f"a message body must be a msgspec.Struct, got {type(body).__name__!r}")

    def encode_value(self, value: msgspec.Struct) -> tuple[str, msgspec.Raw]:
        """Encode a user Struct on its own: its wire type name and its bytes.

        Bridges use this to carry frames inside a system message.

        Raises:
            EncodeError: if `value` is not a Struct or cannot be encoded.
        """
        if not isinstance(value, msgspec.Struct) or isinstance(value, SystemMessage):
            raise EncodeError(
                f"a frame must be a user-defined msgspec.Struct, got {type(value).__name__!r}"
            )
        name = _USER_TYPES.remember(type(value))
        try:
            return name, msgspec.Raw(self._encoder.encode(value))
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeError(f"{name} value: {exc}") from exc

    def decode_value(self, name: str, data: msgspec.Raw | bytes) -> Any:
        """Decode a value made by `encode_value` against a type this process already has.

        Raises:
            DecodeError: if the type is unknown here or the bytes do not fit it.
        """
        return self._decode_user(name, data)

    def _decode_body(self, kind: str, raw: msgspec.Raw) -> Any:
        if kind.startswith(_USER_PREFIX):
            return self._decode_user(kind[len(_USER_PREFIX) :], raw)
        decoder = self._system_decoders.get(kind)
        if decoder is None:
            raise DecodeError(f"unknown message kind {kind!r}")
        try:
            return decoder.decode(raw)
        except _BAD_INPUT as exc:
            raise DecodeError(f"invalid {kind!r} body: {_explain(exc)}") from None

    def _decode_user(self, name: str, raw: msgspec.Raw | bytes) -> Any:
        cls = _USER_TYPES.lookup(name)
        if cls is None:
            raise DecodeError(
                f"unknown message type {name!r}; define or import it in the receiving "
                "process (types are never imported on a peer's behalf)"
            )
        cached = self._user_decoders.get(name)
        if cached is None or cached[0] is not cls:
            cached = self._user_decoders[name] = (cls, msgspec.msgpack.Decoder(cls))
        try:
            return cached[1].decode(raw)
        except _BAD_INPUT as exc:
            raise DecodeError(f"invalid {name!r} body: {_explain(exc)}") from None
        except Exception as exc:
            # A user Struct's __post_init__ may raise anything; it is still a bad body.
            raise DecodeError(f"invalid {name!r} body: {type(exc).__name__}: {exc}") from None

    def _explain_header_failure(
        self, data: bytes | bytearray | memoryview, exc: BaseException
    ) -> str:
        # Only on the error path: look at the bytes generically to tell a peer speaking another
        # protocol version from plain garbage.
        try:
            loose = msgspec.msgpack.decode(data)
        except _BAD_INPUT:
            return f"malformed or truncated msgpack ({_explain(exc)})"
        if (
            isinstance(loose, list)
            and loose
            and isinstance(loose[0], int)
            and loose[0] != PROTOCOL_VERSION
        ):
            return _version_message(loose[0])
        return f"not an envelope ({_explain(exc)})"


# msgpack first bytes (those not handled by range in `check_shape`) -> bytes that follow.
_FIXED_WIDTH: Final = {
    0xC0: 0, 0xC2: 0, 0xC3: 0,  # nil, false, true
    0xCA: 4, 0xCB: 8,  # float 32, 64
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint 8..64
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int 8..64
    0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,  # fixext 1..16 (type byte + data)
}  # fmt: skip
# First byte -> (width of the length that follows, extra bytes before the data) for bin, str, ext.
_SIZED: Final = {
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0),  # bin 8..32
    0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),  # ext 8..32 (and its type byte)
    0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),  # str 8..32
}  # fmt: skip
# First byte -> (width of the count that follows, values per counted entry) for arrays, maps.
_CONTAINERS: Final = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def check_shape(data: bytes | bytearray | memoryview, *, max_items: int, max_depth: int) -> None:
    """Walk msgpack headers without building objects; refuse a packet too big once decoded.

    Strings, binaries and extensions are skipped by their length, so the walk costs one step
    per value, and it stops at the first value past `max_items`. Bytes that are not valid
    msgpack end the walk quietly: the decoder reports them with its own message.

    Raises:
        DecodeError: if `data` holds more than `max_items` values or nests deeper than
            `max_depth` arrays and maps.
    """
    end = len(data)
    pos = 0
    budget = max_items
    pending: list[int] = []  # values still to read in each enclosing container
    left = 1  # values still to read at the current level
    while True:
        if not left:
            if not pending:
                return
            left = pending.pop()
            continue
        left -= 1
        if pos >= end:
            return
        first = data[pos]
        pos += 1
        budget -= 1
        if budget < 0:
            raise DecodeError(f"too many values (more than max_items {max_items})")
        if first < 0x80 or first >= 0xE0:  # positive and negative fixint
            continue
        if first < 0xA0:  # fixmap (two values per entry) and fixarray
            count = (first & 0x0F) * (2 if first < 0x90 else 1)
        elif first < 0xC0:  # fixstr
            pos += first & 0x1F
            continue
        elif first in _FIXED_WIDTH:
            pos += _FIXED_WIDTH[first]
            continue
        elif first in _SIZED:
            width, extra = _SIZED[first]
            pos += width + extra + int.from_bytes(data[pos : pos + width], "big")
            continue
        elif first in _CONTAINERS:
            width, per_entry = _CONTAINERS[first]
            count = int.from_bytes(data[pos : pos + width], "big") * per_entry
            pos += width
        else:  # 0xC1 is never used: not msgpack
            return
        if count:
            if len(pending) >= max_depth:
                raise DecodeError(f"values nested too deeply (more than {max_depth} levels)")
            pending.append(left)
            left = count


def _explain(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 in a string ({exc.reason})"
    return str(exc)


def _tag_of(cls: type[SystemMessage]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str), f"{cls.__name__} has no string tag"
    return tag


def _version_message(version: object) -> str:
    return f"unsupported protocol version {version!r} (this side speaks {PROTOCOL_VERSION})"
