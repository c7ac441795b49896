"""Tests for the pure Redis protocol layer (`transports._resp`): no sockets, plain `def` tests."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_exceptions

from transports._resp import (
    RedisAddress,
    ReplyParser,
    Signal,
    error_code,
    pack_commands,
    pairs_to_dict,
    parse_error,
    parse_info,
)


def _parse_all(data: bytes, *, split_every_byte: bool = False) -> list[object]:
    parser = ReplyParser()
    replies: list[object] = []
    chunks = [data[i : i + 1] for i in range(len(data))] if split_every_byte else [data]
    for chunk in chunks:
        parser.feed(chunk)
        while (reply := parser.next_reply()) is not Signal.NEED_DATA:
            replies.append(reply)
    return replies


def test_pack_commands_joins_a_pipeline() -> None:
    """Commands are packed back to back, arguments encoded the redis-py way."""
    packed = pack_commands([("SET", "key", b"v\r\n"), ("INCRBY", "n", 5)])
    assert packed == (
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\nv\r\n\r\n"
        b"*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$1\r\n5\r\n"
    )


def test_pack_commands_splits_a_two_word_name() -> None:
    """A name like 'CONFIG GET' is sent as two words, as redis-py does."""
    assert pack_commands([("CONFIG GET", "x")]) == pack_commands([("CONFIG", "GET", "x")])


def test_pack_commands_refuses_bad_arguments() -> None:
    """Booleans and empty commands are refused."""
    with pytest.raises(redis_exceptions.DataError):
        pack_commands([("SET", "k", True)])
    with pytest.raises(ValueError, match=r"^a command needs at least its name$"):
        pack_commands([()])


def test_large_arguments_pack_whole() -> None:
    """An argument above redis-py's buffer cutoff is still packed in place."""
    value = b"x" * 100_000
    packed = pack_commands([("SET", "k", value)])
    assert packed.endswith(b"$100000\r\n" + value + b"\r\n")


def test_replies_parse_split_at_every_byte() -> None:
    """Replies split at every byte parse the same as whole."""
    data = b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n"
    expected: list[object] = [b"OK", 42, b"abc", None, [b"a", [1]]]
    assert _parse_all(data) == expected
    assert _parse_all(data, split_every_byte=True) == expected


def test_error_replies_come_back_as_redis_py_exceptions() -> None:
    """Error replies become redis-py exception instances, returned, not raised."""
    moved, nogroup, nested = _parse_all(
        b"-MOVED 3999 127.0.0.1:6381\r\n-NOGROUP No such key\r\n*2\r\n+OK\r\n-ERR bad\r\n"
    )
    assert isinstance(moved, redis_exceptions.MovedError)
    assert (moved.slot_id, moved.host, moved.port) == (3999, "127.0.0.1", 6381)
    assert isinstance(nogroup, redis_exceptions.ResponseError)
    assert error_code(nogroup) == "NOGROUP"
    assert isinstance(nested, list) and nested[0] == b"OK"
    assert isinstance(nested[1], redis_exceptions.ResponseError)


def test_parse_error_maps_codes() -> None:
    """Known codes map to their redis-py types; unknown ones keep their whole message."""
    assert isinstance(parse_error("NOSCRIPT No matching script"), redis_exceptions.NoScriptError)
    assert isinstance(parse_error("WRONGPASS bad"), redis_exceptions.AuthenticationError)
    assert isinstance(parse_error("LOADING loading"), redis_exceptions.BusyLoadingError)
    other = parse_error("BUSYGROUP Consumer Group name already exists")
    assert type(other) is redis_exceptions.ResponseError
    assert str(other) == "BUSYGROUP Consumer Group name already exists"
    assert error_code(ValueError("not a reply")) == ""


def test_protocol_garbage_raises() -> None:
    """Bytes that are not RESP raise InvalidResponse."""
    parser = ReplyParser()
    parser.feed(b"?what\r\n")
    with pytest.raises(redis_exceptions.InvalidResponse):
        parser.next_reply()


def test_address_from_url_with_acl_user_and_db() -> None:
    """User, password (percent-decoded) and db come from the URL as redis-py reads them."""
    address = RedisAddress.from_url("redis://alice:p%40ss@example.com:7000/3")
    assert address == RedisAddress("example.com", 7000, "alice", "p@ss", 3, False)
    assert address.login_commands() == [("AUTH", "alice", "p@ss"), ("SELECT", 3)]
    assert "p@ss" not in repr(address)


def test_address_defaults_and_tls() -> None:
    """A bare URL means the default user and db 0; rediss:// turns TLS on."""
    assert RedisAddress.from_url("redis://localhost").login_commands() == []
    assert RedisAddress.from_url("redis://:secret@h").login_commands() == [("AUTH", "secret")]
    address = RedisAddress.from_url("rediss://h:6380")
    assert (address.host, address.port, address.tls) == ("h", 6380, True)
    assert address.with_endpoint("other", 1).host == "other"


def test_unix_urls_are_refused() -> None:
    """Unix socket URLs are not supported, and say so."""
    with pytest.raises(ValueError, match=r"^unix socket URLs are not supported, got 'unix"):
        RedisAddress.from_url("unix:///tmp/redis.sock")


def test_pairs_and_info_helpers() -> None:
    """Field/value lists become dicts; INFO text becomes key/value pairs."""
    assert pairs_to_dict([b"a", b"1", b"b", b"2"]) == {b"a": b"1", b"b": b"2"}
    with pytest.raises(redis_exceptions.InvalidResponse):
        pairs_to_dict([b"odd"])
    info = parse_info(b"# Server\r\nrun_id:abc\r\nredis_version:7.0.0\r\n")
    assert info == {"run_id": "abc", "redis_version": "7.0.0"}
