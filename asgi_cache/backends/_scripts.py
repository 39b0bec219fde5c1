"""The Lua scripts of the Redis backend, one documented constant per operation.

Each script is one atomic step on one Redis node: read an entry and check the tag versions
it records, store an entry only while those versions (and, fenced, a lock token) are current,
read or create tag versions, extend and release a lock.
[`RedisBackend`][asgi_cache.backends.RedisBackend] registers them once (``SCRIPT LOAD`` on first
use, ``EVALSHA`` after).

Requires Redis >= 7.0: the stores extend tag keys with ``PEXPIRE key ms GT`` (the ``GT``
option, which never shortens an expiry, arrived in Redis 7.0). On an older server those
scripts fail with an error reply, every store fails open, and nothing is cached; the cache
warns about the version at startup (see ``docs/operations.md``).

Writes come before ``PEXPIRE`` in every script: Redis checks ``maxmemory`` only at a script's
first write, so an expiry change first would let a script grow memory past the limit under
``noeviction``.

`GET_SCRIPT` reads tag keys named inside the entry, which a single Redis node allows;
Redis Cluster refuses a key a script does not declare, and a script's keys must share one hash
slot. So [`ClusterBackend`][asgi_cache.backends.ClusterBackend] runs only single-slot scripts: it
reads entries with ``GET`` and checks their tag versions client-side, checks (and extends) each tag
of a store with `CHECK_TAG_SCRIPT` before it writes, reads versions one tag key per
`VERSIONS_SCRIPT` call, and runs `SET_SCRIPT` and `FENCED_SET_SCRIPT` with no
tag keys (the entry and its lock share a hash tag, see `KeySpace`).
"""

from __future__ import annotations

from typing import Final

_GET_TEMPLATE: Final = """
-- Read an entry and check its dependencies in one round trip.
-- KEYS[1]: entry key. Returns %(returns)s
-- when every (tag key, version) recorded in the header still matches; otherwise unlinks
-- the entry and returns false. The stored bytes go back as they are, with the length of their
-- header for the caller to skip: a string.sub() of the entry would copy it once more inside
-- Redis, which costs a third of the script. Values without a well-formed header (foreign
-- data) are returned whole, for the caller to reject when they fail to decode.
local v = redis.call('GET', KEYS[1])
if not v then return false end
if #v < 4 or string.byte(v, 1) ~= 172 or string.byte(v, 2) ~= 68 then return %(whole)s end
local n = string.byte(v, 3) * 256 + string.byte(v, 4)
local pos = 5
%(start)s
for i = 1, n do
  if pos + 1 > #v then return %(whole)s end  -- truncated header: the caller rejects it
  local klen = string.byte(v, pos) * 256 + string.byte(v, pos + 1)
  local tag = string.sub(v, pos + 2, pos + 1 + klen)
  pos = pos + 2 + klen
  if pos + 1 > #v then return %(whole)s end
  local vlen = string.byte(v, pos) * 256 + string.byte(v, pos + 1)
  local version = string.sub(v, pos + 2, pos + 1 + vlen)
  pos = pos + 2 + vlen
  if redis.call('GET', tag) ~= version then
    redis.call('UNLINK', KEYS[1])
    return false
  end
%(keep)s
end
%(result)s
"""

GET_SCRIPT: Final = _GET_TEMPLATE % {
    "returns": "{header length, stored bytes}",
    "whole": "v",
    "start": "",
    "keep": "",
    "result": "return {pos - 1, v}",
}
"""Read an entry, checking its dependencies. The reply is ``[n, stored]`` (the entry is
``stored[n:]``), a foreign value's bytes whole, or nil."""

GET_TAGGED_SCRIPT: Final = _GET_TEMPLATE % {
    "returns": "{header length, stored bytes, tag key 1, tag key 2, ...}",
    "whole": "{v}",
    "start": "local tags = {0, v}",
    "keep": "  tags[i + 2] = tag",
    "result": "tags[1] = pos - 1\nreturn tags",
}
"""`GET_SCRIPT` that also names the tag keys the entry depends on (the L1 fill read): the
reply is ``[n, stored, tag key, ...]``, ``[value]`` for a foreign value, or nil."""

SET_SCRIPT: Final = """
-- Store an entry only if the tag versions it was built under are still current.
-- KEYS[1]: entry key; KEYS[2..]: tag keys. ARGV[1]: value; ARGV[2]: ttl in ms;
-- ARGV[3..]: the version recorded for each tag key. Extends each tag key to live at least as
-- long as the entry (PEXPIRE GT: never shortens). Returns 1 if stored, 0 if a tag moved on.
-- SET comes first: Redis checks maxmemory only at a script's first write, so a PEXPIRE
-- before it would let the script grow memory past the limit under noeviction.
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[2], 'GT') end
return 1
"""

VERSIONS_SCRIPT: Final = """
-- Return the current version of each tag key, creating missing ones.
-- KEYS: tag keys. ARGV[1]: ttl in ms; ARGV[2..]: a fresh random version per key, used only
-- when the key has none. Every key is left with an expiry of at least ARGV[1].
-- The SETs come before the PEXPIREs: Redis checks maxmemory only at a script's first write.
local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    v = ARGV[i + 1]
    redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
  end
  out[i] = v
end
for i = 1, #KEYS do
  if out[i] ~= ARGV[i + 1] then redis.call('PEXPIRE', KEYS[i], ARGV[1], 'GT') end
end
return out
"""

EXTEND_LOCK_SCRIPT: Final = """
-- Reset a lock's expiry if the caller's token still holds it.
-- KEYS[1]: lock key. ARGV[1]: token; ARGV[2]: ttl in ms. Returns 1 if extended, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

FENCED_SET_SCRIPT: Final = """
-- SET_SCRIPT fenced by a lock: store only while the writer still holds the key's lock.
-- KEYS[1]: entry key; KEYS[2]: lock key; KEYS[3..]: tag keys. ARGV[1]: value; ARGV[2]: ttl
-- in ms; ARGV[3]: the writer's lock token; ARGV[4..]: the version recorded for each tag key.
-- The token is the fencing version: a writer whose lease expired (the lock is gone, or holds
-- the next holder's token) cannot overwrite what the next holder wrote.
-- Returns 1 if stored, 0 if the lock or a tag moved on. SET comes first, as in SET_SCRIPT
-- (Redis checks maxmemory only at a script's first write).
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 3, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[2], 'GT') end
return 1
"""

RELEASE_LOCK_SCRIPT: Final = """
-- Compare-and-delete: release a lock only if the caller's token still holds it.
-- KEYS[1]: lock key. ARGV[1]: token. Returns 1 if released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

CHECK_TAG_SCRIPT: Final = """
-- One tag of a store on Redis Cluster, where tags live in other slots than the entry: check
-- that the tag still holds the version the value was loaded under, and extend it to live at
-- least as long as the entry (PEXPIRE GT: never shortens).
-- KEYS[1]: tag key. ARGV[1]: the recorded version; ARGV[2]: the entry's ttl in ms.
-- Returns 1 if current (and extended), 0 if the tag moved on.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
return 1
"""

UNLINK_IF_SAME_SCRIPT: Final = """
-- Drop an entry found stale on Redis Cluster (a tag it depends on moved on), unless it was
-- replaced meanwhile: a store that landed after the read is a fresh value and stays.
-- KEYS[1]: entry key. ARGV[1]: the bytes the read found. Returns 1 if unlinked, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) end
return 0
"""
