"""cache.write_through: the database first, then the cache; never a stale value left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from asgi_cache import BackendError, Cache, CacheSettings, SerializationError
from asgi_cache.backends import MemoryBackend
from asgi_cache.backends.base import Dependency

from .test_loading_get_or_load import Counter, until

KEY = "users:1:profile"


async def test_failing_database_write_leaves_the_cache_unchanged(cache: Cache) -> None:
    await cache.set(KEY, {"name": "old"})

    async def write() -> None:
        raise RuntimeError("constraint violated")

    with pytest.raises(RuntimeError, match="constraint violated"):
        await cache.write_through(KEY, {"name": "new"}, write=write)
    assert await cache.get(KEY) == {"name": "old"}
    with pytest.raises(RuntimeError):
        await cache.write_through("users:2:profile", {"name": "new"}, write=write)
    assert await cache.get("users:2:profile") is None
    assert cache.stats()["sets"] == 1


async def test_database_is_written_before_the_cache_is_touched(cache: Cache) -> None:
    await cache.set(KEY, "old")
    seen_during_write: list[object] = []

    async def write() -> None:
        seen_during_write.append(await cache.get(KEY))

    assert await cache.write_through(KEY, "new", write=write, ttl=60) is True
    assert seen_during_write == ["old"]
    assert await cache.get(KEY) == "new"


async def test_unencodable_value_fails_before_the_database_write(cache: Cache) -> None:
    writes = Counter()
    with pytest.raises(SerializationError, match=KEY):
        await cache.write_through(KEY, object(), write=writes)
    assert writes.calls == 0


async def test_none_is_written_as_a_negative_entry(cache: Cache) -> None:
    await cache.set(KEY, "exists")
    assert await cache.write_through(KEY, None, write=Counter()) is True
    loader = Counter("should not load")
    assert await cache.get_or_load(KEY, loader) is None
    assert loader.calls == 0


async def test_a_load_in_flight_cannot_land_after_the_write(cache: Cache) -> None:
    gate = asyncio.Event()
    reader = Counter("read before the write", gate=gate)
    load = asyncio.ensure_future(cache.get_or_load(KEY, reader))
    await reader.started.wait()
    assert await cache.write_through(KEY, "written", write=Counter()) is True
    gate.set()
    assert await load == "read before the write"
    assert await cache.get(KEY) == "written"  # the fenced store of the old read was refused


async def test_tags_retire_derived_entries_and_unlocked_loads(cache: Cache) -> None:
    await cache.set("users:1:summary", "old summary", tags=["users:1"])
    gate = asyncio.Event()
    reader = Counter("old list", gate=gate)
    load = asyncio.ensure_future(
        cache.get_or_load("users:list", reader, tags=["users:1"], lock=False)
    )
    await reader.started.wait()
    assert await cache.write_through(KEY, "new", write=Counter(), tags=["users:1"]) is True
    gate.set()
    assert await load == "old list"
    assert await cache.get("users:list") is None
    assert await cache.get("users:1:summary") is None
    assert await cache.get(KEY) == "new"
    await cache.invalidate_tags("users:1")
    assert await cache.get(KEY) is None  # the new value carries the tag too


class FlakyBackend(MemoryBackend):
    """A memory backend whose writes and deletes fail while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed_deletes = 0

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        if self.down:
            raise BackendError("write refused")
        return await super().set(key, value, ttl, deps)

    async def delete(self, *keys: str) -> int:
        if self.down:
            self.failed_deletes += 1
            if self.failed_deletes >= 3:
                self.down = False  # Redis comes back after a few attempts
            raise BackendError("delete refused")
        return await super().delete(*keys)


async def test_failed_cache_write_removes_the_old_value_with_retries() -> None:
    backend = FlakyBackend()
    async with Cache(CacheSettings(ttl_jitter=0), backend=backend) as cache:
        await cache.set(KEY, "old")
        backend.down = True
        assert await cache.write_through(KEY, "new", write=Counter()) is False
        await until(lambda: cache.stats()["pending_invalidations"] == 0)
        assert backend.failed_deletes == 3
        assert await cache.get(KEY) is None  # neither old nor half-written
        assert cache.stats()["errors"] >= 2  # the lock drop and the first delete


async def test_refused_store_deletes_the_old_value() -> None:
    class Refusing(MemoryBackend):
        async def set(
            self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
        ) -> bool:
            return False if key.endswith(KEY) else await super().set(key, value, ttl, deps)

    backend = Refusing()
    async with Cache(backend=backend) as cache:
        await backend.set(cache.keys.data(KEY), b"whatever", 60)
        assert await cache.write_through(KEY, "new", write=Counter()) is False
        assert await backend.get(cache.keys.data(KEY)) is None


async def test_disabled_cache_only_writes_the_database() -> None:
    async with Cache(CacheSettings(enabled=False)) as cache:
        writes = Counter()
        assert await cache.write_through(KEY, "v", write=writes) is False
        assert writes.calls == 1


async def test_tags_as_a_string_are_rejected() -> None:
    async with Cache() as cache:
        with pytest.raises(ValueError, match="tags="):
            await cache.write_through(KEY, "v", write=Counter(), tags="users:1")
