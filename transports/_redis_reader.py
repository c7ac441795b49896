"""Reading a node's streams: one blocking XREADGROUP over its box and its names' inboxes.

Theory of operation
-------------------
`EntryReader.read(streams)` returns the next `ReadBatch`: what to hand to the link's receiver,
in order, and the box entries the link consumed itself (acknowledged by the caller).

- After start and after every reconnect the reader first reads this consumer's own pending
  entries (XREADGROUP with id 0, then onwards from the last id seen), because entries that were
  read but not acknowledged before a connection broke are not delivered again by `>`. Those may
  reach the receiver twice; it drops duplicates by message id.
- A NOGROUP reply means a stream lost its group (Redis restarted without its data, or a stream
  was deleted): the groups are created again and the read repeated.
- Entries of one read are merged by stream id (milliseconds first), box entries after inbox
  entries of the same millisecond, so a peer's `lost` notice comes after what that peer sent
  before it left. When a read was cut short by COUNT on some stream, `lost` notices wait for a
  read that was not (at most 8 reads), since the cut-off part may hold earlier entries of that
  peer.
- An entry without the fields its stream needs is counted, copied to the dead-letter stream with
  its origin, and acknowledged; the reader goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import attrs
import trio
import trio.lowlevel
from redis import exceptions as redis_exceptions

from ._abc import Delivery, PeerLost
from ._redis_connection import RedisClient
from ._redis_scripts import GROUP
from ._resp import CommandArg, error_code, pairs_to_dict

logger = logging.getLogger(__name__)

DEAD_LETTER_MAX_LENGTH: Final = 10_000
"""Approximate bound of the dead-letter stream."""

_MAX_DEFERRED_READS: Final = 8


@attrs.frozen
class ReadBatch:
    """What one read produced."""

    items: list[Delivery | PeerLost]
    """For the receiver, in order."""
    internal_acks: list[tuple[str, bytes]]
    """(stream, id) of box entries the link consumed itself (notices, wake-ups)."""


@attrs.define(eq=False)
class EntryReader:
    """Reads one node's streams; see the module docstring."""

    client: RedisClient
    """The client whose connection blocks in XREADGROUP (cancelling closes it)."""
    writer: RedisClient
    """The client for everything else (groups, dead letters)."""
    prefix: str
    """`{namespace}:`."""
    node: str
    """This node's id: the consumer name."""
    count: int
    """Entries per stream per read."""
    block_ms: int = 1000
    """How long one blocking read waits, in milliseconds."""
    dead_letters: int = 0
    """Entries moved to the dead-letter stream."""
    _cursors: dict[str, bytes] | None = attrs.field(factory=dict)
    _deferred: list[PeerLost] = attrs.field(factory=list)
    _deferred_reads: int = 0

    def __repr__(self) -> str:
        mode = "PENDING" if self._cursors is not None else "NEW"
        return f"<EntryReader [{self.node!r}, {mode}, dead letters: {self.dead_letters}]>"

    async def read(self, plan: Callable[[], tuple[Sequence[str], int]]) -> ReadBatch:
        """Wait for the next entries of the planned streams (retrying across reconnects).

        Args:
            plan: returns the stream keys to read (the node's box first) and the most entries
                per stream, asked again before every attempt (names come and go meanwhile).
        """
        while True:
            streams, count = plan()
            cursors = self._cursors
            ids: list[CommandArg] = (
                [cursors.get(stream, b"0") for stream in streams]
                if cursors is not None
                else [">"] * len(streams)
            )
            block: list[CommandArg] = ["BLOCK", self.block_ms] if cursors is None else []
            command: list[CommandArg] = [
                "XREADGROUP", "GROUP", GROUP, self.node, "COUNT", count, *block,
                "STREAMS", *streams, *ids,
            ]  # fmt: skip
            try:
                reply = await self.client.execute(*command, retry=False, blocking=True)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # Whatever was read but not acknowledged must be read again from the PEL.
                self._cursors = {}
                await trio.lowlevel.checkpoint()
                continue
            except redis_exceptions.ResponseError as exc:
                code = error_code(exc)
                if code == "UNBLOCKED":
                    # A stream being read was deleted (its name was released): plan again.
                    continue
                if code != "NOGROUP":
                    raise
                # Groups of streams still planned (Redis lost them, or they were deleted).
                await self._create_groups(plan()[0])
                self._cursors = {}
                continue
            batch, seen, full = await self._parse(reply, count)
            if cursors is not None:
                if not seen:
                    self._cursors = None
                else:
                    cursors.update(seen)
            if self._deferred:
                self._deferred_reads += 1
                # Under a flood every read may be full: a notice waits a few reads, not forever.
                if not full or self._deferred_reads > _MAX_DEFERRED_READS:
                    batch.items.extend(self._deferred)
                    self._deferred.clear()
                    self._deferred_reads = 0
            if batch.items or batch.internal_acks:
                return batch

    async def _create_groups(self, streams: Sequence[str]) -> None:
        replies = await self.writer.pipeline(
            [("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM") for stream in streams]
        )
        for reply in replies:
            if isinstance(reply, redis_exceptions.ResponseError) and error_code(reply) not in (
                "BUSYGROUP",
            ):
                raise reply

    async def _parse(self, reply: object, count: int) -> tuple[ReadBatch, dict[str, bytes], bool]:
        """The batch, the last id seen per stream, and whether COUNT cut some stream short."""
        ordered: list[tuple[tuple[int, int, int], Delivery | PeerLost | None]] = []
        internal: list[tuple[str, bytes]] = []
        seen: dict[str, bytes] = {}
        full = False
        box = self.prefix + "box:" + self.node
        inbox_prefix = self.prefix + "inbox:"
        for stream_reply in reply if isinstance(reply, list) else []:
            key = bytes(stream_reply[0]).decode()
            entries = stream_reply[1] or []
            full = full or len(entries) >= count
            for entry_id, raw_fields in entries:
                seen[key] = entry_id
                milliseconds, _, sequence = bytes(entry_id).partition(b"-")
                is_box = key == box
                order = (int(milliseconds), int(is_box), int(sequence or 0))
                if raw_fields is None:
                    # Deleted while pending (acknowledged elsewhere): just settle it.
                    internal.append((key, entry_id))
                    continue
                fields = pairs_to_dict(raw_fields)
                token = (key, bytes(entry_id))
                if is_box:
                    item = self._box_item(fields, token, internal)
                elif key.startswith(inbox_prefix) and b"packet" in fields:
                    item = Delivery(
                        key[len(inbox_prefix) :],
                        fields[b"packet"],
                        token,
                        reclaimed=fields.get(b"reclaimed") == b"1",
                    )
                else:
                    item = None
                if item is None and token not in internal:
                    await self._dead_letter(key, bytes(entry_id), fields, "missing fields")
                    continue
                ordered.append((order, item))
        ordered.sort(key=lambda pair: pair[0])
        items: list[Delivery | PeerLost] = []
        for _, item in ordered:
            if isinstance(item, PeerLost) and (full or self._deferred):
                self._deferred.append(item)
            elif item is not None:
                items.append(item)
        return ReadBatch(items, internal), seen, full

    def _box_item(
        self,
        fields: dict[bytes, bytes],
        token: tuple[str, bytes],
        internal: list[tuple[str, bytes]],
    ) -> Delivery | PeerLost | None:
        kind = fields.get(b"kind")
        if kind == b"broadcast" and b"packet" in fields:
            return Delivery(None, fields[b"packet"], token)
        if kind == b"control" and b"packet" in fields and b"name" in fields:
            return Delivery(fields[b"name"].decode("utf-8", "replace"), fields[b"packet"], token)
        if kind == b"lost" and b"system" in fields:
            internal.append(token)
            reason = fields.get(b"reason", b"").decode("utf-8", "replace") or None
            return PeerLost(
                fields[b"system"].decode("utf-8", "replace"),
                crashed=fields.get(b"crashed") == b"1",
                reason=reason,
            )
        if kind == b"wake":
            internal.append(token)
        return None

    async def _dead_letter(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes], why: str
    ) -> None:
        self.dead_letters += 1
        logger.warning("node %r: unreadable entry %s in %s (%s)", self.node, entry_id, stream, why)
        copied: list[CommandArg] = [value for pair in fields.items() for value in pair]
        await self.writer.pipeline(
            [
                (
                    "XADD", self.prefix + "dead-letter", "MAXLEN", "~", DEAD_LETTER_MAX_LENGTH,
                    "*", "stream", stream, "id", entry_id, "error", why, "node", self.node,
                    *copied,
                ),
                ("XACK", stream, GROUP, entry_id),
                ("XDEL", stream, entry_id),
            ]
        )  # fmt: skip
