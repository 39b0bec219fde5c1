"""Invalidations that cannot reach Redis are queued and land once it answers again."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from asgi_cache import BackendError, Cache, CacheSettings
from asgi_cache._retry import InvalidationQueue
from asgi_cache.backends import MemoryBackend


async def test_invalidation_while_redis_is_down_lands_after_restart(own_redis: Any) -> None:
    settings = CacheSettings(url=own_redis.url, op_timeout=0.2, ttl_jitter=0)
    async with Cache(settings) as cache:
        await cache.set("users:1:profile", "old", tags=["users:1"])
        await cache.set("users:2:profile", "other", tags=["users:2"])
        await cache.set("users:3:profile", "deleted")
        own_redis.command("SAVE")  # the restarted server comes back with this data
        own_redis.stop()
        assert await cache.invalidate_tags("users:1") == 0
        assert await cache.delete("users:3:profile") == 0
        assert cache.stats()["pending_invalidations"] == 2
        own_redis.start()
        async with asyncio.timeout(10):  # hang detector: the retry task delivers by itself
            await cache._tags.queue.wait_drained()
        assert cache.stats()["pending_invalidations"] == 0
        assert await cache.get("users:1:profile") is None
        assert await cache.get("users:3:profile") is None
        assert await cache.get("users:2:profile") == "other"


async def test_invalidation_during_a_hang_lands_after_resume(own_redis: Any) -> None:
    async with Cache.from_url(own_redis.url, op_timeout=0.1) as cache:
        await cache.set("users:1:profile", "old", tags=["users:1"])
        own_redis.pause()  # SIGSTOP: the command times out instead of failing fast
        try:
            assert await cache.invalidate_tags("users:1") == 0
            await cache.clear()
            assert cache.stats()["pending_invalidations"] == 2
        finally:
            own_redis.resume()
        async with asyncio.timeout(10):
            await cache._tags.queue.wait_drained()
        assert await cache.get("users:1:profile") is None


class FlakyBackend(MemoryBackend):
    """A memory backend whose invalidations fail while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.invalidated: list[list[str]] = []

    async def invalidate(self, tag_keys: Any, *, budget: float | None = None) -> int:
        if self.down:
            raise BackendError("down")
        self.invalidated.append(list(tag_keys))
        return await super().invalidate(tag_keys)

    async def delete(self, *keys: str) -> int:
        if self.down:
            raise BackendError("down")
        return await super().delete(*keys)


async def test_overflow_retires_the_whole_namespace_instead_of_dropping() -> None:
    backend = FlakyBackend()
    cache = Cache(CacheSettings(namespace="q"), backend=backend)
    cache._tags.queue.max_pending = 5
    backend.down = False
    await cache.set("a:1:x", 1, tags=["a"])
    await cache.set("b:1:x", 2, tags=["b"])
    backend.down = True
    for i in range(8):
        await cache.invalidate_tags(f"t{i}")
    stats = cache.stats()
    assert stats["invalidation_overflows"] == 1
    assert stats["pending_invalidations"] == 1 + 2  # the namespace tag, then t6 and t7
    backend.down = False
    assert await cache.drain_invalidations() is True
    assert "q:t:*" in backend.invalidated[-1]
    assert await cache.get("a:1:x") is None  # everything in the namespace is gone
    assert await cache.get("b:1:x") is None
    await cache.aclose()


async def test_backoff_grows_and_undelivered_are_logged_on_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []
    four_tries = asyncio.Event()

    async def invalidate(tags: Any) -> int:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 4:
            four_tries.set()
        raise BackendError("down")

    async def delete(*keys: str) -> int:
        return 0

    queue = InvalidationQueue(
        invalidate=invalidate, delete=delete, all_tag="n:t:*", initial_backoff=0.01
    )
    queue.add(tags=["n:t:a"])
    async with asyncio.timeout(10):
        await four_tries.wait()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[-1] > gaps[0]  # exponential backoff, not a tight loop
    await queue.aclose()
    assert "undelivered invalidations" in caplog.text
    assert "n:t:a" in caplog.text
