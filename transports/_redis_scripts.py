"""The Lua scripts of the Redis transport: every step that must be atomic is one script.

Pure data (no trio, no I/O), so the key layout and the scripts can be read in one place.

Conventions
-----------
Every script gets `KEYS[1]` = the namespace's `nodes` hash (so Redis Cluster routes it to the
namespace's slot) and `ARGV[1]` = the key prefix `{namespace}:`. Every key it touches starts
with that prefix, and the `{...}` hash tag puts them all in one cluster slot, so a script may
compute further keys from the prefix. The remaining ARGV are listed per script.

Key layout (prefix `P` = `{namespace}:`)
----------------------------------------
- `P nodes`          hash: node id -> system name, for every registered node
- `P hb:<node>`      string with a TTL: the node's heartbeat (present = the node is alive)
- `P owned:<node>`   set: the names the node holds
- `P names`          hash: name -> node id of its holder
- `P inbox:<name>`   stream + consumer group: packets addressed to `name` (deleted when its
                     holder lets it go empty)
- `P box:<node>`     stream + consumer group: the node's broadcasts and peer notices
- `P dead-letter`    stream: entries that could not be read, with where they came from
"""

from __future__ import annotations

import hashlib
from typing import Final

import attrs

GROUP: Final = "trio-actors"
"""The consumer group of every inbox and box stream; each node is one consumer in it."""

BOX_MAX_LENGTH: Final = 100_000
"""Approximate bound of a node's box (XADD MAXLEN ~): only a node that stopped reading fills it."""


@attrs.frozen
class Script:
    """A Lua script and its SHA1, for EVALSHA (falling back to EVAL after NOSCRIPT)."""

    name: str
    """What it does, for logs and errors."""
    source: str
    """The Lua source."""
    sha: str = attrs.field(
        init=False,
        default=attrs.Factory(
            lambda self: hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest(),
            takes_self=True,
        ),
    )
    """The SHA1 of the source, as Redis names cached scripts."""


_PREAMBLE: Final = f"""
local prefix = ARGV[1]
local group = '{GROUP}'
local box_max_length = '{BOX_MAX_LENGTH}'
local nodes_key = prefix .. 'nodes'
local names_key = prefix .. 'names'
local function heartbeat_key(node) return prefix .. 'hb:' .. node end
local function box_key(node) return prefix .. 'box:' .. node end
local function alive(node) return redis.call('EXISTS', heartbeat_key(node)) == 1 end
local function notify_all(except, fields)
  for _, node in ipairs(redis.call('HKEYS', nodes_key)) do
    if node ~= except then
      redis.call('XADD', box_key(node), 'MAXLEN', '~', box_max_length, '*', unpack(fields))
    end
  end
end
local function drop_if_empty(name)
  -- An inbox nobody holds, with no entry and none pending, is deleted so that short-lived
  -- names leave no key behind (a later claim creates it again).
  local stream = prefix .. 'inbox:' .. name
  if redis.call('XLEN', stream) == 0 then
    local pending = redis.pcall('XPENDING', stream, group)
    if pending['err'] or pending[1] == 0 then redis.call('DEL', stream) end
  end
end
local function bury(node, crashed, reason)
  local system = redis.call('HGET', nodes_key, node)
  if not system then return end
  local owned = prefix .. 'owned:' .. node
  for _, name in ipairs(redis.call('SMEMBERS', owned)) do
    if redis.call('HGET', names_key, name) == node then
      redis.call('HDEL', names_key, name)
      drop_if_empty(name)
    end
  end
  redis.call('DEL', owned, box_key(node), heartbeat_key(node))
  redis.call('HDEL', nodes_key, node)
  notify_all(node, {{'kind', 'lost', 'system', system, 'crashed', crashed, 'reason', reason}})
end
local function ensure_group(stream)
  redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
"""


def _script(name: str, body: str) -> Script:
    return Script(name, _PREAMBLE + body)


REGISTER: Final = _script(
    "register",
    """
-- ARGV: node, system, ttl_ms. Refuses a system name a live node uses; buries a dead one.
local node, system = ARGV[2], ARGV[3]
local nodes = redis.call('HGETALL', nodes_key)
for index = 1, #nodes, 2 do
  if nodes[index + 1] == system and nodes[index] ~= node then
    if alive(nodes[index]) then return {'taken', nodes[index]} end
    bury(nodes[index], '1', 'heartbeat expired')
  end
end
redis.call('HSET', nodes_key, node, system)
redis.call('SET', heartbeat_key(node), system, 'PX', ARGV[4])
ensure_group(box_key(node))
return {'ok'}
""",
)

HEARTBEAT: Final = _script(
    "heartbeat",
    """
-- ARGV: node, ttl_ms, sweep ('0'/'1'). Refreshes our heartbeat and, if asked, buries nodes
-- whose heartbeat expired (not right after a reconnect: after a Redis outage longer than the
-- TTL, every heartbeat has expired and live peers need time to refresh theirs).
-- Returns {1 if we are registered else 0, peer node, peer system, ...}.
local node, sweep = ARGV[2], ARGV[4] == '1'

local system = redis.call('HGET', nodes_key, node)
local result = {0}
if system then
  redis.call('SET', heartbeat_key(node), system, 'PX', ARGV[3])
  result[1] = 1
end
local nodes = redis.call('HGETALL', nodes_key)
for index = 1, #nodes, 2 do
  local peer = nodes[index]
  if peer ~= node then
    if alive(peer) or not sweep then
      table.insert(result, peer)
      table.insert(result, nodes[index + 1])
    else
      bury(peer, '1', 'heartbeat expired')
    end
  end
end
return result
""",
)

CLAIM: Final = _script(
    "claim",
    """
-- ARGV: node, name, max_reclaim. Takes a free name or one whose holder's heartbeat expired,
-- and moves the pending entries of dead consumers (heartbeat expired: never on idle time)
-- to the end of the stream, marked reclaimed. Returns {'ok', reclaimed} / {'taken', system}
-- / {'gone'} (our node is not registered).
local node, name = ARGV[2], ARGV[3]
if redis.call('HEXISTS', nodes_key, node) == 0 then return {'gone'} end
local owner = redis.call('HGET', names_key, name)
if owner and owner ~= node then
  if alive(owner) then
    return {'taken', redis.call('HGET', nodes_key, owner) or owner}
  end
  bury(owner, '1', 'heartbeat expired')
end
redis.call('HSET', names_key, name, node)
redis.call('SADD', prefix .. 'owned:' .. node, name)
local stream = prefix .. 'inbox:' .. name
ensure_group(stream)
local reclaimed = 0
local dead = {}
local start = '-'
local limit = tonumber(ARGV[4])
while reclaimed < limit do
  local pending = redis.call('XPENDING', stream, group, start, '+', 100)
  if #pending == 0 then break end
  for _, item in ipairs(pending) do
    local id, consumer = item[1], item[2]
    if consumer ~= node and not alive(consumer) then
      dead[consumer] = true
      local found = redis.call('XRANGE', stream, id, id)
      if #found > 0 then
        local fields = {}
        local old = found[1][2]
        for index = 1, #old, 2 do
          if old[index] ~= 'reclaimed' then
            table.insert(fields, old[index])
            table.insert(fields, old[index + 1])
          end
        end
        table.insert(fields, 'reclaimed')
        table.insert(fields, '1')
        redis.call('XADD', stream, '*', unpack(fields))
      end
      redis.call('XACK', stream, group, id)
      redis.call('XDEL', stream, id)
      reclaimed = reclaimed + 1
    end
    start = '(' .. id
  end
end
for consumer, _ in pairs(dead) do
  if redis.call('XPENDING', stream, group, '-', '+', 1, consumer)[1] == nil then
    redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
  end
end
redis.call('XADD', box_key(node), '*', 'kind', 'wake')
return {'ok', reclaimed}
""",
)

RELEASE: Final = _script(
    "release",
    """
-- ARGV: node, name. Gives the name up if we hold it.
local node, name = ARGV[2], ARGV[3]
if redis.call('HGET', names_key, name) == node then
  redis.call('HDEL', names_key, name)
  drop_if_empty(name)
end
redis.call('SREM', prefix .. 'owned:' .. node, name)
if redis.call('HEXISTS', nodes_key, node) == 1 then
  redis.call('XADD', box_key(node), '*', 'kind', 'wake')
end
return 1
""",
)

SEND: Final = _script(
    "send",
    """
-- ARGV: name, sender, packet, control ('0'/'1')[, ack stream, ack id]. Appends to the name's
-- inbox, or for control traffic to its holder's box (always read, never behind a full inbox),
-- and, if asked, acknowledges (and deletes) the settled entry in the same step. Returns 1, or
-- 0 when nobody holds the name: then nothing was sent and nothing acknowledged. A holder whose
-- heartbeat just expired still gets the entry: the sweep frees its names within half a period,
-- and the entry waits for the name's next holder.
local name, sender, packet = ARGV[2], ARGV[3], ARGV[4]
local owner = redis.call('HGET', names_key, name)
if not owner then return 0 end
if ARGV[5] == '1' then
  redis.call('XADD', box_key(owner), 'MAXLEN', '~', box_max_length, '*',
    'kind', 'control', 'name', name, 'packet', packet, 'sender', sender)
else
  redis.call('XADD', prefix .. 'inbox:' .. name, '*', 'packet', packet, 'sender', sender)
end
if ARGV[6] then
  redis.call('XACK', ARGV[6], group, ARGV[7])
  redis.call('XDEL', ARGV[6], ARGV[7])
end
return 1
""",
)

SEND_BATCH: Final = _script(
    "send_batch",
    """
-- ARGV: sender, control ('0'/'1'), name, packet, name, packet, ... Appends each packet like
-- SEND, in order; stops at the first name nobody holds and returns its 1-based position (the
-- packets before it were sent, it and those after it were not), or 0 when all were sent.
local sender, control = ARGV[2], ARGV[3] == '1'
local position = 0
for index = 4, #ARGV, 2 do
  position = position + 1
  local name, packet = ARGV[index], ARGV[index + 1]
  local owner = redis.call('HGET', names_key, name)
  if not owner then return position end
  if control then
    redis.call('XADD', box_key(owner), 'MAXLEN', '~', box_max_length, '*',
      'kind', 'control', 'name', name, 'packet', packet, 'sender', sender)
  else
    redis.call('XADD', prefix .. 'inbox:' .. name, '*', 'packet', packet, 'sender', sender)
  end
end
return 0
""",
)

BROADCAST: Final = _script(
    "broadcast",
    """
-- ARGV: node, system, packet. Appends to every other node's box.
notify_all(ARGV[2], {'kind', 'broadcast', 'packet', ARGV[4], 'sender', ARGV[3]})
return 1
""",
)

ACK: Final = _script(
    "ack",
    """
-- ARGV: stream, id, id, ... Acknowledges and deletes the entries, so streams stay bounded.
redis.call('XACK', ARGV[2], group, unpack(ARGV, 3))
redis.call('XDEL', ARGV[2], unpack(ARGV, 3))
return 1
""",
)

GOODBYE: Final = _script(
    "goodbye",
    """
-- ARGV: node, crashed ('0'/'1'), reason. Releases our names and tells every peer.
bury(ARGV[2], ARGV[3], ARGV[4])
return 1
""",
)

ALL_SCRIPTS: Final = (
    REGISTER,
    HEARTBEAT,
    CLAIM,
    RELEASE,
    SEND,
    SEND_BATCH,
    BROADCAST,
    ACK,
    GOODBYE,
)
"""Every script, for SCRIPT LOAD after a NOSCRIPT reply."""
