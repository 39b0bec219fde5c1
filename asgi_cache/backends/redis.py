"""``redis://``, ``rediss://``, ``unix://``: the Redis backend (redis-py asyncio, hiredis).

Every operation runs under a time budget (``op_timeout``) and a bounded wait for a pooled
connection (``pool_timeout``); any redis-py error, socket error or timeout is raised as
:class:`~asgi_cache.BackendError`, so the cache above can fail open.

Stored layout of an entry with dependencies (so a Lua script can check them in the same round
trip as the read)::

    b"\\xacD" | u16 count | count x (u16 len, tag key, u16 len, version) | entry bytes

Cost per operation on one Redis node: ``get`` one EVALSHA (reads the entry and its tag
versions), ``set`` one EVALSHA, ``versions`` one EVALSHA, ``invalidate`` one DEL/UNLINK.
The scripts read tag keys named inside the entry, which a single Redis node allows; on Redis
Cluster they would need the entry and its tags in one slot (not supported yet).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .._exceptions import BackendError, BackendTimeoutError
from .base import Backend, Dependency

__all__ = ["RedisBackend", "decode_deps_header", "encode_deps_header"]

DEPS_MAGIC: Final = b"\xacD"
_U16 = struct.Struct(">H")

GET_SCRIPT: Final = """
-- Read an entry and check its dependencies in one round trip.
-- KEYS[1]: entry key. Returns the entry (the bytes after the dependency header) when every
-- (tag key, version) recorded in the header still matches; otherwise unlinks the entry and
-- returns false. Values without a well-formed header (foreign data) are returned whole, for
-- the caller to reject when it fails to decode them.
local v = redis.call('GET', KEYS[1])
if not v then return false end
if string.sub(v, 1, 2) ~= '\\172D' or #v < 4 then return v end
local n = string.byte(v, 3) * 256 + string.byte(v, 4)
local pos = 5
for i = 1, n do
  if pos + 1 > #v then return v end  -- truncated header: the caller rejects it
  local klen = string.byte(v, pos) * 256 + string.byte(v, pos + 1)
  local tag = string.sub(v, pos + 2, pos + 1 + klen)
  pos = pos + 2 + klen
  if pos + 1 > #v then return v end
  local vlen = string.byte(v, pos) * 256 + string.byte(v, pos + 1)
  local version = string.sub(v, pos + 2, pos + 1 + vlen)
  pos = pos + 2 + vlen
  if redis.call('GET', tag) ~= version then
    redis.call('UNLINK', KEYS[1])
    return false
  end
end
return string.sub(v, pos)
"""

SET_SCRIPT: Final = """
-- Store an entry only if the tag versions it was built under are still current.
-- KEYS[1]: entry key; KEYS[2..]: tag keys. ARGV[1]: value; ARGV[2]: ttl in ms;
-- ARGV[3..]: the version recorded for each tag key. Extends each tag key to live at least as
-- long as the entry (PEXPIRE GT: never shortens). Returns 1 if stored, 0 if a tag moved on.
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 1] then return 0 end
end
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[2], 'GT') end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

VERSIONS_SCRIPT: Final = """
-- Return the current version of each tag key, creating missing ones.
-- KEYS: tag keys. ARGV[1]: ttl in ms; ARGV[2..]: a fresh random version per key, used only
-- when the key has none. Every key is left with an expiry of at least ARGV[1].
local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    redis.call('PEXPIRE', KEYS[i], ARGV[1], 'GT')
  else
    v = ARGV[i + 1]
    redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
  end
  out[i] = v
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

RELEASE_LOCK_SCRIPT: Final = """
-- Compare-and-delete: release a lock only if the caller's token still holds it.
-- KEYS[1]: lock key. ARGV[1]: token. Returns 1 if released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def encode_deps_header(deps: Sequence[Dependency]) -> bytes:
    """Encode the dependency header that prefixes a stored entry."""
    parts = [DEPS_MAGIC, _U16.pack(len(deps))]
    for tag_key, version in deps:
        k, v = tag_key.encode(), version.encode()
        parts += (_U16.pack(len(k)), k, _U16.pack(len(v)), v)
    return b"".join(parts)


def decode_deps_header(data: bytes) -> tuple[list[Dependency], int] | None:
    """Parse the dependency header; return the dependencies and the offset of the entry.

    Returns ``None`` when ``data`` does not start with a well-formed header.
    """
    if data[:2] != DEPS_MAGIC or len(data) < 4:
        return None
    try:
        (count,) = _U16.unpack_from(data, 2)
        pos = 4
        deps = []
        for _ in range(count):
            (klen,) = _U16.unpack_from(data, pos)
            key = data[pos + 2 : pos + 2 + klen].decode()
            pos += 2 + klen
            (vlen,) = _U16.unpack_from(data, pos)
            version = data[pos + 2 : pos + 2 + vlen].decode()
            pos += 2 + vlen
            deps.append((key, version))
    except (struct.error, UnicodeDecodeError):
        return None
    if pos > len(data):
        return None
    return deps, pos


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisBackend(Backend):
    """Entries in Redis, through a bounded redis-py connection pool.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        client: An existing ``redis.asyncio.Redis`` (for example fakeredis) to use instead of
            building one from ``url``; it is not closed by :meth:`aclose` unless ``owns_client``.
        op_timeout: Budget in seconds of one operation, waiting for a connection included.
        connect_timeout: Budget in seconds for opening a connection.
        max_connections: Pool size.
        pool_timeout: Longest wait in seconds for a free connection.
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: aioredis.Redis | None = None,
        owns_client: bool | None = None,
        op_timeout: float = 0.25,
        connect_timeout: float = 0.5,
        max_connections: int = 64,
        pool_timeout: float = 0.05,
    ) -> None:
        self.url = url
        self.op_timeout = op_timeout
        if client is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=pool_timeout,
                socket_timeout=op_timeout,
                socket_connect_timeout=connect_timeout,
            )
            client = aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool
            owns_client = True if owns_client is None else owns_client
        self.client = client
        self._owns_client = bool(owns_client)
        self._get = client.register_script(GET_SCRIPT)
        self._set = client.register_script(SET_SCRIPT)
        self._versions = client.register_script(VERSIONS_SCRIPT)
        self._extend = client.register_script(EXTEND_LOCK_SCRIPT)
        self._release = client.register_script(RELEASE_LOCK_SCRIPT)

    async def _run(self, what: str, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self.op_timeout):
                return await coro
        except TimeoutError:
            raise BackendTimeoutError(
                f"redis {what} timed out after {self.op_timeout * 1000:.0f} ms"
            ) from None
        except (RedisError, OSError) as exc:
            if "timeout" in type(exc).__name__.lower():
                raise BackendTimeoutError(f"redis {what} timed out: {exc}") from None
            raise BackendError(f"redis {what} failed: {type(exc).__name__}: {exc}") from None

    async def get(self, key: str) -> bytes | None:
        raw = await self._run("GET", self._get(keys=[key]))
        # The script strips the dependency header; anything else (a foreign value) comes back
        # whole and fails to decode as an entry.
        return raw or None

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        payload = encode_deps_header(deps) + value
        keys = [key, *(d[0] for d in deps)]
        args: list[bytes | int | str] = [payload, _ms(ttl), *(d[1] for d in deps)]
        return bool(await self._run("SET", self._set(keys=keys, args=args)))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._run("UNLINK", self.client.unlink(*keys)))

    async def get_raw(self, key: str) -> bytes | None:
        value = await self._run("GET", self.client.get(key))
        return None if value is None else bytes(value)

    async def set_raw(self, key: str, value: bytes, ttl: float) -> None:
        await self._run("SET", self.client.set(key, value, px=_ms(ttl)))

    async def versions(self, tag_keys: Sequence[str], ttl: float) -> list[str]:
        if not tag_keys:
            return []
        fresh = [os.urandom(8).hex() for _ in tag_keys]
        out = await self._run(
            "versions", self._versions(keys=list(tag_keys), args=[_ms(ttl), *fresh])
        )
        return [v.decode() if isinstance(v, bytes) else str(v) for v in out]

    async def invalidate(self, tag_keys: Sequence[str]) -> int:
        if not tag_keys:
            return 0

        # One single-key command per tag (pipelined), so tags may live on different nodes.
        async def run() -> int:
            async with self.client.pipeline(transaction=False) as pipe:
                for tag_key in tag_keys:
                    pipe.unlink(tag_key)
                return sum(int(n) for n in await pipe.execute())

        return int(await self._run("invalidate", run()))

    async def delete_prefix(self, prefix: str, *, batch: int = 500) -> int:
        pattern = _glob_escape(prefix) + "*"
        count = 0
        cursor: int = 0
        while True:
            cursor, keys = await self._run(
                "SCAN", self.client.scan(cursor=cursor, match=pattern, count=batch)
            )
            if keys:
                count += await self.delete(*(k.decode() for k in keys))
            if int(cursor) == 0:
                return count

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        return bool(await self._run("lock", self.client.set(key, token, nx=True, px=_ms(ttl))))

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        return bool(
            await self._run("lock extend", self._extend(keys=[key], args=[token, _ms(ttl)]))
        )

    async def release_lock(self, key: str, token: str) -> bool:
        return bool(await self._run("unlock", self._release(keys=[key], args=[token])))

    async def ping(self) -> float:
        start = time.perf_counter()
        await self._run("PING", self.client.ping())
        return time.perf_counter() - start

    async def info(self) -> dict[str, Any]:
        server = await self._run("INFO", self.client.info("server"))
        memory = await self._run("INFO", self.client.info("memory"))
        return {
            "backend": self.name,
            "version": server.get("redis_version"),
            "used_memory": memory.get("used_memory"),
            "maxmemory": memory.get("maxmemory"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
        }

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
