"""The Redis protocol without I/O: addresses, command packing and reply parsing.

Theory of operation
-------------------
Like h11, this module never touches a socket, so it is tested with plain `def` tests.

- `RedisAddress.from_url` reads a `redis://`, `rediss://` URL with redis-py's own URL parser,
  so credentials, ACL users and `/db` suffixes mean exactly what they mean to redis-py.
- `pack_commands` turns commands into the bytes of one pipelined write with redis-py's
  serializer (its hiredis-backed one; the same encoding rules as redis-py: `str` as UTF-8,
  numbers as their decimal text, `bool` refused).
- `ReplyParser` wraps the `hiredis` package's sans-io `hiredis.Reader`: `feed(data)` takes bytes
  as they arrive and `next_reply()` returns one reply or `Signal.NEED_DATA`. Error replies come
  back as redis-py exception instances (not raised), so a pipeline of many commands keeps its
  other replies; the caller decides what to raise. Nested error replies (inside `EXEC`) become
  exception instances too.

Every `import redis`/`hiredis` of the project stays inside `transports/`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs
import hiredis
from redis import connection as redis_connection
from redis import exceptions as redis_exceptions

CommandArg = bytes | str | int | float
"""One argument of a Redis command."""

Command = Sequence[CommandArg]
"""A command with its arguments, for example `("SET", "key", b"value")`."""

# redis-py's packer and URL parser carry no annotations; type them at this seam. Its
# hiredis-backed packer encodes like its pure-Python one (str as UTF-8, numbers as text, bool
# refused) at half the cost, which matters at tens of thousands of commands per second.
_REDIS: Final[Any] = redis_connection
_SERIALIZER: Final[Any] = _REDIS.HiredisRespSerializer()

# Error prefixes that redis-py maps to its own exception types; the rest become ResponseError
# with the whole message (prefix included), so that codes like NOGROUP stay visible.
_ERROR_TYPES: Final[dict[str, type[redis_exceptions.ResponseError]]] = {
    "MOVED": redis_exceptions.MovedError,
    "ASK": redis_exceptions.AskError,
    "NOSCRIPT": redis_exceptions.NoScriptError,
    "NOPERM": redis_exceptions.NoPermissionError,
    "READONLY": redis_exceptions.ReadOnlyError,
    "EXECABORT": redis_exceptions.ExecAbortError,
    "OOM": redis_exceptions.OutOfMemoryError,
    "TRYAGAIN": redis_exceptions.TryAgainError,
    "CLUSTERDOWN": redis_exceptions.ClusterDownError,
    "CROSSSLOT": redis_exceptions.ClusterCrossSlotError,
    "MASTERDOWN": redis_exceptions.MasterDownError,
}
# Errors that mean the connection cannot be used as it is (they are not about one command).
_CONNECTION_ERROR_TYPES: Final[dict[str, type[redis_exceptions.RedisError]]] = {
    "WRONGPASS": redis_exceptions.AuthenticationError,
    "NOAUTH": redis_exceptions.AuthenticationError,
    "LOADING": redis_exceptions.BusyLoadingError,
}


class Signal(enum.Enum):
    """What `ReplyParser.next_reply` returns instead of a reply."""

    NEED_DATA = enum.auto()
    """No whole reply is buffered yet: feed more bytes."""


@attrs.frozen
class RedisAddress:
    """Where a Redis server is and how to log in to it."""

    host: str = "127.0.0.1"
    """Host name or IP address."""
    port: int = 6379
    """TCP port."""
    username: str | None = None
    """ACL user name (None: the default user)."""
    password: str | None = attrs.field(default=None, repr=False)
    """Password, sent with AUTH; never shown in reprs."""
    db: int = 0
    """Database number chosen with SELECT (0 is not sent)."""
    tls: bool = False
    """True for `rediss://`: the connection is wrapped in TLS."""

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """Read a `redis://[[user]:password@]host[:port][/db]` or `rediss://...` URL.

        Raises:
            ValueError: if the URL is not a TCP Redis URL (unix sockets are not supported).
        """
        if url.startswith("unix://"):
            raise ValueError(f"unix socket URLs are not supported, got {url!r}")
        options: dict[str, Any] = _REDIS.parse_url(url)
        return cls(
            host=str(options.get("host") or "127.0.0.1"),
            port=int(options.get("port") or 6379),
            username=options.get("username") or None,
            password=options.get("password") or None,
            db=int(options.get("db") or 0),
            tls=url.startswith("rediss://"),
        )

    def with_endpoint(self, host: str, port: int) -> RedisAddress:
        """The same credentials for another server (a cluster redirection)."""
        return attrs.evolve(self, host=host, port=port)

    def login_commands(self) -> list[Command]:
        """The commands that bring a fresh connection into use: AUTH, then SELECT."""
        commands: list[Command] = []
        if self.password is not None:
            if self.username is not None:
                commands.append(("AUTH", self.username, self.password))
            else:
                commands.append(("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


def pack_commands(commands: Iterable[Command]) -> bytes:
    """Encode commands as the bytes of one pipelined write.

    Raises:
        redis.exceptions.DataError: if an argument cannot be encoded (a bool, for example).
        ValueError: if a command is empty.
    """
    chunks: list[bytes] = []
    for command in commands:
        if not command:
            raise ValueError("a command needs at least its name")
        # redis-py splits a name with spaces into words, so ("CONFIG GET", "x") works too.
        chunks.extend(bytes(chunk) for chunk in _SERIALIZER.pack(*command))
    return b"".join(chunks)


def parse_error(message: str) -> redis_exceptions.RedisError:
    """Turn an error reply into the redis-py exception type it stands for."""
    code, _, rest = message.partition(" ")
    if code in _ERROR_TYPES:
        return _ERROR_TYPES[code](rest)
    if code in _CONNECTION_ERROR_TYPES:
        return _CONNECTION_ERROR_TYPES[code](message)
    return redis_exceptions.ResponseError(message)


def error_code(error: BaseException) -> str:
    """The leading code of a Redis error reply (`NOGROUP`, `BUSYGROUP`, ...), or ''."""
    code, _, _ = str(error).partition(" ")
    return code if code.isupper() else ""


_NOT_ENOUGH_DATA: Final = object()


class ReplyParser:
    """Sans-io parser of RESP2 replies, fed the bytes read from one connection.

    Error replies are returned as exception instances, never raised; a protocol violation
    raises `redis.exceptions.InvalidResponse`.
    """

    def __init__(self) -> None:
        self._reader = hiredis.Reader(
            protocolError=redis_exceptions.InvalidResponse,
            replyError=parse_error,
            notEnoughData=_NOT_ENOUGH_DATA,
        )

    def __repr__(self) -> str:
        return f"<ReplyParser [buffered: {self._reader.len()} bytes]>"

    def feed(self, data: bytes | bytearray) -> None:
        """Take bytes read from the connection."""
        self._reader.feed(bytes(data))

    def next_reply(self) -> object:
        """The next whole reply, or `Signal.NEED_DATA` when more bytes are needed."""
        reply = self._reader.gets()
        if reply is _NOT_ENOUGH_DATA:
            return Signal.NEED_DATA
        return reply


def as_int(reply: object) -> int:
    """An integer reply, checked."""
    if isinstance(reply, int):
        return reply
    raise redis_exceptions.InvalidResponse(f"expected an integer reply, got {reply!r}")


def pairs_to_dict(reply: object) -> dict[bytes, bytes]:
    """A flat `[field, value, field, value, ...]` reply (stream entry fields, HGETALL) as a dict.

    Raises:
        redis.exceptions.InvalidResponse: if the reply is not a flat list of byte strings.
    """
    if not isinstance(reply, list) or len(reply) % 2:
        raise redis_exceptions.InvalidResponse(f"expected field/value pairs, got {reply!r}")
    result: dict[bytes, bytes] = {}
    for index in range(0, len(reply), 2):
        field, value = reply[index], reply[index + 1]
        if not isinstance(field, bytes) or not isinstance(value, bytes):
            raise redis_exceptions.InvalidResponse(f"expected byte strings, got {reply!r}")
        result[field] = value
    return result


def parse_info(reply: object) -> dict[str, str]:
    """The `key:value` lines of an INFO reply."""
    if not isinstance(reply, bytes):
        raise redis_exceptions.InvalidResponse(f"expected an INFO text, got {reply!r}")
    result: dict[str, str] = {}
    for line in reply.decode("utf-8", "replace").splitlines():
        key, separator, value = line.partition(":")
        if separator and not key.startswith("#"):
            result[key] = value
    return result
