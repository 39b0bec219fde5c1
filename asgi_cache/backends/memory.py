"""``memory://``: an in-process backend with TTLs and LRU eviction.

It obeys the same contract as Redis (see `asgi_cache.backends.base`) inside one process:
nothing is shared between worker processes, and everything is lost on restart. It is bounded
by entry count and by bytes (key plus value, plus a fixed per-entry overhead); the least
recently used entries are evicted first. Expired entries are dropped when touched and by a
sweep on writes, so an idle cache does not hold expired values forever.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .._validate import whole
from ._memory_streams import MemoryStreams
from .base import Backend, Dependency

_ENTRY_OVERHEAD = 96  # bytes accounted per entry for the dict slot, tuple and key object


class MemoryBackend(Backend):
    """A bounded, TTL-aware LRU store in this process's memory.

    Args:
        max_entries: Most entries kept (tag versions and locks are counted separately).
        max_bytes: Most bytes of keys and values kept.
        clock: Monotonic clock in seconds; tests may pass a fake one.

    Raises:
        ConfigurationError: A bound is not a whole number > 0.
    """

    name = "memory"
    in_process = True

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        whole().require("max_entries", max_entries)
        whole(words="a whole number of bytes").require("max_bytes", max_bytes)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        # key -> (value, deps, expires_at)
        self._data: OrderedDict[str, tuple[bytes, tuple[Dependency, ...], float]] = OrderedDict()
        self._bytes = 0
        # tag key / lock key / raw key -> (value, expires_at)
        self._meta: dict[str, tuple[str | bytes, float]] = {}
        self._writes = 0
        self.evictions = 0
        self._subscribers: list[tuple[str, Callable[[str], None]]] = []
        self.streams = MemoryStreams(self)
        """The write-behind logs of this process (`asgi_cache.write_behind`)."""

    @property
    def used_bytes(self) -> int:
        """Bytes currently accounted to entries."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def _fresh(self, key: str) -> tuple[bytes, tuple[Dependency, ...], float] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[2] <= self._clock() or not self._deps_current(item[1]):
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return item

    async def get(self, key: str) -> bytes | None:
        item = self._fresh(key)
        return None if item is None else item[0]

    async def get_tagged(self, key: str) -> tuple[bytes, tuple[Dependency, ...]] | None:
        item = self._fresh(key)
        return None if item is None else (item[0], tuple(item[1]))

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        now = self._clock()
        if not self._deps_current(deps, now):
            return False
        expires = now + ttl
        for tag_key, _ in deps:
            version, tag_expires = self._meta[tag_key]
            if tag_expires < expires:
                self._meta[tag_key] = (version, expires)
        size = len(key) + len(value) + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            self._drop(key)
            return False
        self._drop(key)
        self._data[key] = (value, tuple(deps), expires)
        self._bytes += size
        self._writes += 1
        if self._writes % 256 == 0:
            self._sweep(now)
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)
            self.evictions += 1
        return True

    async def delete(self, *keys: str) -> int:
        count = 0
        for key in keys:
            if key in self._data:
                count += self._live(key)
                self._drop(key)
            elif self._meta.pop(key, None) is not None:
                count += 1
        return count

    async def get_raw(self, key: str) -> bytes | None:
        value = self._meta_get(key)
        return value if isinstance(value, bytes) else None

    async def set_raw(self, key: str, value: bytes, ttl: float) -> None:
        self._meta[key] = (value, self._clock() + ttl)

    async def versions(self, tag_keys: Sequence[str], ttl: float) -> list[str]:
        now = self._clock()
        out = []
        for tag_key in tag_keys:
            current = self._meta_get(tag_key, now)
            if not isinstance(current, str):
                current = os.urandom(8).hex()
                self._meta[tag_key] = (current, now + ttl)
            else:
                expires = self._meta[tag_key][1]
                self._meta[tag_key] = (current, max(expires, now + ttl))
            out.append(current)
        return out

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        now = self._clock()  # (no I/O, so no time budget: ``budget`` changes nothing here)
        count = 0
        for tag_key in tag_keys:
            if self._meta_get(tag_key, now) is not None:
                count += 1
            self._meta.pop(tag_key, None)
        return count

    async def delete_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        now = self._clock()
        keys = [k for k in self._data if k.startswith(prefix)]
        count = sum(self._live(k, now) for k in keys)
        for key in keys:
            self._drop(key)
        meta = [k for k in self._meta if k.startswith(prefix)]
        for key in meta:
            count += self._meta_get(key, now) is not None
            self._meta.pop(key, None)
        if progress is not None:
            progress(count)
        return count

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        now = self._clock()
        if self._meta_get(key, now) is not None:
            return False
        self._meta[key] = (token, now + ttl)
        return True

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        now = self._clock()
        if self._meta_get(key, now) != token:
            return False
        self._meta[key] = (token, now + ttl)
        return True

    async def release_lock(self, key: str, token: str) -> bool:
        if self._meta_get(key) != token:
            return False
        del self._meta[key]
        return True

    async def set_if_locked(
        self,
        key: str,
        value: bytes,
        ttl: float,
        deps: Sequence[Dependency],
        lock_key: str,
        token: str,
    ) -> bool:
        if self._meta_get(lock_key) != token:
            return False
        return await self.set(key, value, ttl, deps)

    async def publish(self, channel: str) -> None:
        for prefix, callback in list(self._subscribers):
            if channel.startswith(prefix):
                callback(channel)

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        self._subscribers.append((prefix, callback))

    async def ping(self) -> float:
        return 0.0

    async def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": None,
            "used_memory": self._bytes,
            "maxmemory": self.max_bytes,
            "maxmemory_policy": "allkeys-lru",
            "keys": len(self._data),
            "max_entries": self.max_entries,
            "evictions": self.evictions,
        }

    async def aclose(self) -> None:
        self._data.clear()
        self._meta.clear()
        self._subscribers.clear()
        self._bytes = 0

    # -- internals ---------------------------------------------------------------------------

    def _deps_current(self, deps: Sequence[Dependency], now: float | None = None) -> bool:
        if not deps:
            return True
        now = self._clock() if now is None else now
        return all(self._meta_get(tag_key, now) == version for tag_key, version in deps)

    def _meta_get(self, key: str, now: float | None = None) -> str | bytes | None:
        item = self._meta.get(key)
        if item is None:
            return None
        if item[1] <= (self._clock() if now is None else now):
            del self._meta[key]
            return None
        return item[0]

    def _live(self, key: str, now: float | None = None) -> int:
        item = self._data[key]
        return int(item[2] > (self._clock() if now is None else now))

    def _drop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self._bytes -= len(key) + len(item[0]) + _ENTRY_OVERHEAD

    def _sweep(self, now: float) -> None:
        for key in [k for k, item in self._data.items() if item[2] <= now]:
            self._drop(key)
        for key in [k for k, item in self._meta.items() if item[1] <= now]:
            del self._meta[key]
