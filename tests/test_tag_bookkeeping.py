"""Tag bookkeeping stays bounded: tag versions expire with the entries that need them."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from asgi_cache import Cache, CacheSettings

from .redis_server import BEHAVIOUR_OP_TIMEOUT


async def test_tag_keys_expire_with_their_entries(redis_url: str) -> None:
    settings = CacheSettings(
        url=redis_url,
        namespace="bk",
        default_ttl=1.0,
        ttl_jitter=0.0,
        lock_lease=1.0,
        op_timeout=5.0,  # this test is about bookkeeping, not timeouts: a busy CI must not fail it
    )
    client = aioredis.Redis.from_url(redis_url)
    async with Cache(settings) as cache:

        async def write(start: int) -> None:
            for i in range(start, start + 3125):
                await cache.set(f"items:{i}:data", i, tags=[f"group:{i % 10_000}"])

        # 32 concurrent writers: within the connection pool, so every write lands.
        await asyncio.gather(*(write(s) for s in range(0, 100_000, 3125)))
        assert cache.stats()["errors"] == 0
        info: Any = await client.info("memory")
        peak = info["used_memory"]
        tag_keys = [k async for k in client.scan_iter(match="bk:t:*", count=5000)]
        # Bookkeeping grows with distinct tags, never with entries: at most one key per tag
        # plus the namespace tag (entries written early may have expired already).
        assert 0 < len(tag_keys) <= 10_000 + 1
        # After expiry, touch every key with SCAN (Redis then drops expired keys lazily, as
        # its active expiry would within seconds).
        # Tag versions are created to outlive a load (default TTL plus the lock lease) and are
        # extended to each entry's lifetime; after that they expire too.
        await asyncio.sleep(settings.default_ttl + settings.lock_lease + 0.3)
        async for _ in client.scan_iter(count=5000):
            pass
        left = await client.dbsize()
        info = await client.info("memory")
    await client.aclose()
    assert left <= 1  # at most the namespace tag, which lives as long as the longest entry
    # Memory is not compared byte for byte: Redis keeps its grown hash tables for a while after
    # keys go. What must not stay is any key: entries and tag versions are all gone.
    assert info["used_memory"] < peak


async def test_invalidate_tags_never_scans(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    async with Cache.from_url(
        redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace="scan"
    ) as cache:
        for i in range(200):
            await cache.set(f"items:{i}:data", i, tags=[f"group:{i % 7}", "all-items"])
        await client.config_resetstat()
        assert await cache.invalidate_tags("group:3", "all-items", "never-used") == 2
        stats: Any = await client.info("commandstats")
    await client.aclose()
    called = {name.removeprefix("cmdstat_") for name in stats}
    assert not called & {"scan", "keys", "sscan", "smembers"}
    # One UNLINK per tag: the cost is the number of tags, not of entries.
    assert stats["cmdstat_unlink"]["calls"] == 3


async def test_this_processs_invalidations_are_remembered_by_tag_and_bounded() -> None:
    # `Tags.moved_since` answers for this process's own invalidations, landed or not: the
    # miss coalescing asks it before handing a response read earlier to a later reader.
    async with Cache(CacheSettings(url="memory://", namespace="mv")) as cache:
        tags = cache._store.tags
        mark = tags.mark()
        assert not tags.moved_since(mark, ["users:1"])
        await cache.invalidate_tags("users:1")
        assert tags.moved_since(mark, ["users:2", "users:1"])
        assert not tags.moved_since(mark, ["users:2"])
        assert not tags.moved_since(tags.mark(), ["users:1"])  # a mark after it: not moved
        mark = tags.mark()
        await cache.clear()  # the namespace tag: every entry depends on it
        assert tags.moved_since(mark, ["anything"])
        mark = tags.mark()
        for i in range(4100):  # past what is remembered: the memory resets, marks before
            await cache.invalidate_tags(f"t:{i}")  # the reset count as moved (never stale)
        assert tags.moved_since(mark, ["never-invalidated"])
        assert not tags.moved_since(tags.mark(), ["never-invalidated"])
