"""The Lua scripts of write-behind on Redis Streams, one documented constant per step.

Each script is one atomic step on one Redis node. The write-behind keys of one name share a
hash tag (``<ns>:w:{<name>}:s``, ``...:dead``, ``...:v``), so the stream, its dead letter and
the per-key versions live in one slot on Redis Cluster. `RedisStreams` registers them once
(``SCRIPT LOAD`` on first use, ``EVALSHA`` after).

Retention is by acknowledgement: an entry leaves the stream only in `ACK_SCRIPT` and
`DEAD_LETTER_SCRIPT`, after ``XACK``; nothing is ever trimmed by length, so an entry
delivered but not yet acknowledged cannot be dropped (the ``MAXLEN`` trap of task queues on
Streams). The stream's length is therefore exactly the backlog: entries not yet handled.

The first write of every script is the one that may grow memory (``HSET``, ``XADD``):
Redis checks ``maxmemory`` only at a script's first write, so under ``noeviction`` a full
Redis refuses the whole step rather than half of it.
"""

from __future__ import annotations

from typing import Final

_APPEND: Final = """
-- KEYS[1]: stream; KEYS[2]: versions hash. ARGV[1]: backlog limit (0: none); ARGV[2]: the
-- caller's key; ARGV[3]: 's' (set) or 'd' (delete); ARGV[5]: entry bytes; ARGV[7]:
-- idempotency id; ARGV[8]: write time in ms.
-- The version is Redis's clock in microseconds, or one more than the key's last version if
-- that is not below it: it grows with every write of the key, and keeps growing after Redis
-- lost its data (a restart without persistence), so a database row written before the loss
-- never outranks a later write. Formatted with %d: Lua would print a double in 14 digits.
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then return 0 end
local t = redis.call('TIME')
local version = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if last >= version then version = last + 1 end
local text = string.format('%d', version)
redis.call('HSET', KEYS[2], ARGV[2], text)
local value = ''
if ARGV[3] == 's' then value = ARGV[5] end
redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 'op', ARGV[3], 'v', value,
           'n', text, 'i', ARGV[7], 't', ARGV[8])
"""

APPEND_SCRIPT: Final = (
    """
-- Append one change to the stream and bump the key's version (the durable step alone, for a
-- cluster, where the cache entry lives in another slot; see _APPEND for the arguments,
-- ARGV[4] and ARGV[6] are unused). Returns the new version, or 0 when the backlog is full.
"""
    + _APPEND
    + "return version\n"
)

WRITE_SCRIPT: Final = (
    """
-- Record one change: bump the key's version, append the change to the stream and set (or
-- delete) the cache entry, all or nothing.
-- KEYS[3]: entry key; KEYS[4..]: tag keys. ARGV[4]: dependency header; ARGV[6]: entry ttl
-- in ms; ARGV[9..]: each tag key's version; the others as in _APPEND.
-- Returns the new version, or 0 when the backlog is at its limit (nothing written).
-- An entry whose tags moved on since they were read is not stored, and the old entry is
-- unlinked (it is older than this change); the change is appended all the same.
"""
    + _APPEND
    + """
if ARGV[3] ~= 's' then
  redis.call('UNLINK', KEYS[3])
  return version
end
for i = 4, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 5] then
    redis.call('UNLINK', KEYS[3])
    return version
  end
end
redis.call('SET', KEYS[3], ARGV[4] .. ARGV[5], 'PX', ARGV[6])
for i = 4, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[6], 'GT') end
return version
"""
)
"""One change in one step on one node. Its first write (``HSET``) comes after the backlog
check and before anything that could leave half a change: under ``noeviction`` a full Redis
refuses the whole step."""

NEXT_VERSION_SCRIPT: Final = """
-- Bump a key's version without appending a change (a change handed to the handler inline
-- because the backlog is full); the same rule as WRITE_SCRIPT's.
-- KEYS[1]: versions hash. ARGV[1]: the caller's key. Returns the new version.
local t = redis.call('TIME')
local version = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if last >= version then version = last + 1 end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', version))
return version
"""

ACK_SCRIPT: Final = """
-- Acknowledge handled entries and remove them from the stream (retention by acknowledgement).
-- KEYS[1]: stream. ARGV[1]: group; ARGV[2..]: entry ids. Returns how many were still pending
-- (an entry another consumer took over and acknowledged first counts 0).
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
"""

DEAD_LETTER_SCRIPT: Final = """
-- Move one entry to the dead-letter stream with the reason, then acknowledge and remove it.
-- KEYS[1]: stream; KEYS[2]: dead-letter stream. ARGV[1]: group; ARGV[2]: entry id;
-- ARGV[3]: reason; ARGV[4]: deliveries. Returns 1 if moved, 0 if the entry was gone.
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
local fields = found[1][2]
fields[#fields + 1] = 'reason'
fields[#fields + 1] = ARGV[3]
fields[#fields + 1] = 'from'
fields[#fields + 1] = ARGV[2]
fields[#fields + 1] = 'deliveries'
fields[#fields + 1] = ARGV[4]
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

REPLAY_SCRIPT: Final = """
-- Move dead letters back into the stream (as new entries, same version and idempotency id).
-- KEYS[1]: stream; KEYS[2]: dead-letter stream. ARGV: dead-letter ids. Returns how many.
local moved = 0
for i = 1, #ARGV do
  local found = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if #found > 0 then
    local fields, out = found[1][2], {}
    for j = 1, #fields, 2 do
      local name = fields[j]
      if name ~= 'reason' and name ~= 'from' and name ~= 'deliveries' then
        out[#out + 1] = name
        out[#out + 1] = fields[j + 1]
      end
    end
    redis.call('XADD', KEYS[1], '*', unpack(out))
    redis.call('XDEL', KEYS[2], ARGV[i])
    moved = moved + 1
  end
end
return moved
"""

RENEW_SCRIPT: Final = """
-- Renew the lease of entries this consumer still owns: reset their idle time (XCLAIM with
-- JUSTID leaves the delivery count alone). An entry another consumer took over is left to it.
-- KEYS[1]: stream. ARGV[1]: group; ARGV[2]: consumer; ARGV[3..]: entry ids.
-- Returns how many were renewed.
local renewed = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
"""

DELIVERIES_SCRIPT: Final = """
-- How many times each entry was delivered (0: not pending any more).
-- KEYS[1]: stream. ARGV[1]: group; ARGV[2..]: entry ids.
local out = {}
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 then out[#out + 1] = p[1][4] else out[#out + 1] = 0 end
end
return out
"""
