"""The WebSocket link's own protocol: the hello, its checks, frame limits, backoff. Sans-io.

Theory of operation
-------------------
Right after the WebSocket opens, each side sends exactly one binary *hello* (msgpack): the
link protocol's name and version, the sending system's name and the names it exports. Each
side reads the peer's hello before anything else; nothing the peer sends is taken as an
envelope until its hello was read and checked.

Rule 1: one version. A hello of another version (or not a hello at all) is refused: the side
that sees it closes the WebSocket with a code of its own (`CLOSE_VERSION_MISMATCH`,
`CLOSE_BAD_HELLO`) and a reason text saying what it got, so both sides can tell why.

Rule 2: binary messages only, bounded. After the hello, each message is one opaque packet.
A text message or one larger than the limit is refused and counted (`classify`), and the
link goes on with the next message: one bad message never ends a link's other traffic.

Rule 3: reconnects are spaced out: `ReconnectBackoff` grows the delay between attempts and
spreads it with jitter (a `random.Random` passed in, so tests get exact delays).

Nothing here imports trio or a socket; the tests are plain functions.
"""

from __future__ import annotations

import enum
import random
from typing import Final

import attrs
import msgspec

from ._exceptions import TransportError

LINK_PROTOCOL: Final = "trio-actors-link"
"""The name every hello carries; a peer that sends another speaks another protocol."""

LINK_VERSION: Final = 1
"""Version of the link protocol (the hello and the packet framing)."""

DEFAULT_MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024
"""Default largest packet, in bytes, a link accepts (the codec's default maximum)."""

MAX_HELLO_SIZE: Final = 256 * 1024
"""Largest hello accepted (a system exporting thousands of names still fits)."""

CLOSE_NORMAL: Final = 1000
"""WebSocket close code of a clean goodbye (RFC 6455, 7.4.1)."""
CLOSE_VERSION_MISMATCH: Final = 4001
"""Close code: the peer's hello names another link protocol version."""
CLOSE_BAD_HELLO: Final = 4002
"""Close code: the peer's first message was not a hello this side can read."""
CLOSE_DEAD_PEER: Final = 4003
"""Close code: the peer stopped answering pings."""


class LinkHandshakeError(TransportError):
    """The link could not be set up: refused, or the peer's hello was unacceptable."""


class LinkVersionMismatch(LinkHandshakeError):
    """The two sides speak different versions of the link protocol.

    Attributes:
        local: this side's version.
        peer: the peer's version.
    """

    def __init__(self, local: int, peer: object) -> None:
        self.local = local
        """This side's version."""
        self.peer = peer
        """The peer's version (as it sent it)."""
        super().__init__(
            f"link protocol version mismatch: this side speaks {local!r}, the peer {peer!r}; "
            "upgrade the older side"
        )


class BadHello(LinkHandshakeError):
    """The peer's first message was not a hello (or not one this side can read).

    Attributes:
        detail: what was wrong with it.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        """What was wrong with it."""
        super().__init__(f"the peer's hello was refused: {detail}")


class LinkRejected(LinkHandshakeError):
    """The server refused the connection (authentication, or not a link endpoint).

    Attributes:
        status: the HTTP status of the refusal (401, 403, ...); None if the server closed
            the WebSocket instead.
        reason: the server's reason text, if any.
    """

    def __init__(self, status: int | None, reason: str | None = None) -> None:
        self.status = status
        """The HTTP status of the refusal, or None if the WebSocket was closed instead."""
        self.reason = reason
        """The server's reason text, if any."""
        what = f"status {status}" if status is not None else "a closed connection"
        super().__init__(
            f"the server refused the link with {what}" + (f": {reason}" if reason else "")
        )


class AuthenticationFailed(TransportError):
    """Raised by an `authenticate` hook to refuse a client with a status of its choice.

    Attributes:
        status: the HTTP status to answer (default 403).
        reason: a short text sent as the response body.
    """

    def __init__(self, reason: str = "forbidden", *, status: int = 403) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        self.status = status
        """The HTTP status to answer."""
        self.reason = reason
        """A short text sent as the response body."""
        super().__init__(f"authentication failed ({status}): {reason}")


class Hello(msgspec.Struct, frozen=True, kw_only=True):
    """The first message each side sends on a new link."""

    protocol: str
    """Always `LINK_PROTOCOL`."""
    version: int
    """The sender's link protocol version."""
    system: str
    """The sending actor system's name."""
    exports: tuple[str, ...] = ()
    """The names the sender exports (the only senders the receiver accepts)."""


_hello_encoder = msgspec.msgpack.Encoder()
_hello_decoder = msgspec.msgpack.Decoder(Hello)
_header_decoder = msgspec.msgpack.Decoder(dict[str, object])


def encode_hello(system: str, exports: tuple[str, ...], *, version: int = LINK_VERSION) -> bytes:
    """The hello `system` sends, exporting `exports`."""
    return _hello_encoder.encode(
        Hello(protocol=LINK_PROTOCOL, version=version, system=system, exports=exports)
    )


def decode_hello(message: str | bytes) -> Hello:
    """Read and check the peer's hello.

    Raises:
        LinkVersionMismatch: if it is a hello of another version.
        BadHello: if it is anything else (text, garbage, another protocol, too large).
    """
    if isinstance(message, str):
        raise BadHello("expected a binary hello, got a text message")
    if len(message) > MAX_HELLO_SIZE:
        raise BadHello(f"hello of {len(message)} bytes exceeds {MAX_HELLO_SIZE}")
    try:
        header = _header_decoder.decode(message)
    except msgspec.DecodeError as exc:
        raise BadHello(f"not a msgpack map ({exc})") from None
    if header.get("protocol") != LINK_PROTOCOL:
        raise BadHello(f"unknown protocol {header.get('protocol')!r}")
    if header.get("version") != LINK_VERSION:
        raise LinkVersionMismatch(LINK_VERSION, header.get("version"))
    try:
        hello = _hello_decoder.decode(message)
    except msgspec.DecodeError as exc:
        raise BadHello(str(exc)) from None
    if not hello.system:
        raise BadHello("empty system name")
    return hello


def close_code_for(error: LinkHandshakeError) -> int:
    """The close code this side sends when it refuses the peer's hello with `error`."""
    return CLOSE_VERSION_MISMATCH if isinstance(error, LinkVersionMismatch) else CLOSE_BAD_HELLO


def error_for_close(code: int | None, reason: str | None) -> LinkHandshakeError | None:
    """The error a side raises when the peer closed during the handshake with `code`."""
    if code == CLOSE_VERSION_MISMATCH:
        error = LinkHandshakeError(f"the peer refused our hello: {reason or 'version mismatch'}")
        return error
    if code == CLOSE_BAD_HELLO:
        return BadHello(f"the peer refused our hello: {reason}")
    return None


class Verdict(enum.Enum):
    """What the link does with one message after the hello."""

    PACKET = "packet"
    """A binary message within the limit: hand it over."""
    TEXT = "text"
    """A text message: refused (links carry binary packets only)."""
    OVERSIZED = "oversized"
    """A binary message over the limit: refused."""


def classify(message: str | bytes, max_message_size: int) -> Verdict:
    """Decide what to do with one message received after the hello."""
    if isinstance(message, str):
        return Verdict.TEXT
    if len(message) > max_message_size:
        return Verdict.OVERSIZED
    return Verdict.PACKET


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.define
class ReconnectBackoff:
    """Delays between reconnect attempts: exponential, capped, with jitter.

    The delay before attempt ``n`` (from 0) is ``min(initial * 2 ** n, maximum)``, scaled by
    a factor drawn uniformly from ``[1 - jitter, 1 + jitter]``. `reset` after a connection
    that worked starts over from `initial`.
    """

    initial: float = attrs.field(default=0.1, validator=_positive)
    """Seconds before the first reconnect attempt."""
    maximum: float = attrs.field(default=5.0, validator=_positive)
    """Cap on the delay before jitter."""
    jitter: float = 0.2
    """Fraction by which each delay varies at random (0 for none)."""
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    """The source of jitter; tests pass a seeded one."""
    attempt: int = 0
    """Attempts made since the last `reset`."""

    def next_delay(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        grown = self.initial * 2.0 ** min(self.attempt, 64)
        self.attempt += 1
        capped = min(grown, self.maximum)
        if not self.jitter:
            return capped
        return max(0.0, capped * (1.0 + self.jitter * self.rng.uniform(-1.0, 1.0)))

    def reset(self) -> None:
        """A connection worked: the next failure starts from `initial` again."""
        self.attempt = 0


# --- packet framing --------------------------------------------------------------------------
#
# After the hello, each binary message is one packet with a small header in front:
#
#     kind (1 byte) | name length (2 bytes, big-endian) | name (UTF-8) | packet
#
# `kind` is KIND_BROADCAST (no name), KIND_ADDRESSED or KIND_CONTROL. The packet itself is
# opaque to the link. Several small frames waiting together may travel in one message of kind
# KIND_BATCH (no name): each frame follows its 4-byte big-endian length (`frame_batch`).

KIND_BROADCAST: Final = 0
KIND_ADDRESSED: Final = 1
KIND_CONTROL: Final = 2
KIND_BATCH: Final = 3
_MAX_NAME: Final = 0xFFFF

MAX_BATCH_BYTES: Final = 64 * 1024
"""Largest message that carries several frames (`frame_batch`): small enough for any peer's
limit, so a batch is never refused where its frames alone would not be."""


class MalformedFrame(TransportError, ValueError):
    """A binary message after the hello does not have the link's packet header.

    Attributes:
        detail: what was wrong.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        """What was wrong."""
        super().__init__(f"malformed link frame: {detail}")


def frame_packet(recipient: str | None, packet: bytes, *, control: bool = False) -> bytes:
    """Put the link header in front of `packet` (`recipient` None: a broadcast)."""
    if recipient is None:
        return b"\x00\x00\x00" + packet
    name = recipient.encode()
    if len(name) > _MAX_NAME:
        raise ValueError(f"recipient name of {len(name)} bytes is too long")
    kind = KIND_CONTROL if control else KIND_ADDRESSED
    return b"".join((bytes((kind,)), len(name).to_bytes(2, "big"), name, packet))


def parse_frame(message: bytes) -> tuple[str | None, bool, bytes]:
    """Split a message into (recipient or None for a broadcast, control, packet).

    Raises:
        MalformedFrame: if the header is short, of an unknown kind, or its name is not UTF-8.
    """
    if len(message) < 3:
        raise MalformedFrame(f"{len(message)} bytes is shorter than the header")
    kind = message[0]
    length = int.from_bytes(message[1:3], "big")
    if kind == KIND_BROADCAST:
        if length:
            raise MalformedFrame("a broadcast names a recipient")
        return None, False, message[3:]
    if kind not in (KIND_ADDRESSED, KIND_CONTROL):
        raise MalformedFrame(f"unknown kind {kind}")
    if len(message) < 3 + length:
        raise MalformedFrame("the recipient name runs past the end")
    try:
        name = message[3 : 3 + length].decode()
    except UnicodeDecodeError:
        raise MalformedFrame("the recipient name is not UTF-8") from None
    if not name:
        raise MalformedFrame("empty recipient name")
    return name, kind == KIND_CONTROL, message[3 + length :]


def frame_batch(frames: list[bytes]) -> bytes:
    """One message carrying several frames, in order (see `MAX_BATCH_BYTES`)."""
    parts = [bytes((KIND_BATCH, 0, 0))]
    for frame in frames:
        parts.append(len(frame).to_bytes(4, "big"))
        parts.append(frame)
    return b"".join(parts)


def unpack(message: bytes) -> list[bytes]:
    """The frames a message carries: itself, or the frames of a batch.

    Raises:
        MalformedFrame: if a batch is empty, truncated, too large, or holds a batch.
    """
    if not message or message[0] != KIND_BATCH:
        return [message]
    if len(message) > MAX_BATCH_BYTES + 16:
        # Writers never make larger ones; a huge batch of tiny frames would cost far more
        # memory unpacked than it took on the wire.
        raise MalformedFrame(f"a batch of {len(message)} bytes exceeds {MAX_BATCH_BYTES}")
    frames: list[bytes] = []
    offset = 3
    while offset < len(message):
        if offset + 4 > len(message):
            raise MalformedFrame("a batch's frame length runs past the end")
        length = int.from_bytes(message[offset : offset + 4], "big")
        offset += 4
        if offset + length > len(message):
            raise MalformedFrame("a batch's frame runs past the end")
        frame = message[offset : offset + length]
        if frame[:1] == bytes((KIND_BATCH,)):
            raise MalformedFrame("a batch inside a batch")
        frames.append(frame)
        offset += length
    if not frames:
        raise MalformedFrame("an empty batch")
    return frames
