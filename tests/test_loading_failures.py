"""get_or_load fails open: Redis down, frozen or dying mid-load never reaches the caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asgi_cache import Cache, CacheSettings

from .test_loading_get_or_load import Counter

KEY = "users:1:profile"
OP_TIMEOUT = 0.2


def _cache(url: str) -> Cache:
    return Cache(CacheSettings(url=url, op_timeout=OP_TIMEOUT, ttl_jitter=0, lock_timeout=30))


@pytest.mark.redis
async def test_redis_down_runs_the_loader_once_per_process(own_redis: Any) -> None:
    async with _cache(own_redis.url) as cache:
        assert await cache.get_or_load(KEY, Counter("warm")) == "warm"
        own_redis.stop()
        gate = asyncio.Event()
        loader = Counter("from the database", gate=gate)
        async with asyncio.timeout(OP_TIMEOUT * 10):  # hang guard, not a timing assert
            calls = [asyncio.ensure_future(cache.get_or_load("k:2:x", loader)) for _ in range(10)]
            await loader.started.wait()  # all ten share the one lookup
            gate.set()
            assert await asyncio.gather(*calls) == ["from the database"] * 10
        assert loader.calls == 1  # single-flight still holds without Redis
        assert cache.stats()["errors"] >= 1
        own_redis.start()
        assert await cache.get_or_load("k:3:x", Counter("back")) == "back"
        assert await cache.get("k:3:x") == "back"


@pytest.mark.redis
async def test_frozen_redis_costs_one_op_timeout_not_a_lock_wait(own_redis: Any) -> None:
    async with _cache(own_redis.url) as cache:
        await cache.get_or_load("k:0:x", Counter("warm"))  # connect first
        own_redis.pause()
        try:
            loader = Counter("v")
            # lock_timeout is 30 s: finishing within a few op timeouts shows that a frozen
            # Redis makes us load directly instead of waiting on a lock.
            async with asyncio.timeout(OP_TIMEOUT * 10):
                assert await cache.get_or_load(KEY, loader) == "v"
            assert loader.calls == 1
        finally:
            own_redis.resume()


@pytest.mark.redis
async def test_redis_dying_during_the_load_still_returns_the_value(own_redis: Any) -> None:
    async with _cache(own_redis.url) as cache:
        gate = asyncio.Event()
        loader = Counter({"ok": True}, gate=gate)
        task = asyncio.ensure_future(cache.get_or_load(KEY, loader))
        await loader.started.wait()  # holding the lock now
        own_redis.stop()
        gate.set()
        async with asyncio.timeout(OP_TIMEOUT * 10):
            assert await task == {"ok": True}
        assert cache.stats()["errors"] >= 2  # the store, the unlock and the notify failed


@pytest.mark.redis
async def test_waiting_without_notifications_is_still_bounded(own_redis: Any) -> None:
    async with _cache(own_redis.url) as cache:
        full_key = cache.keys.data(KEY)
        assert await cache.backend.acquire_lock(cache.keys.lock(full_key), "other", 30)
        # Another process holds the lock and Redis refuses the pub/sub subscription.
        own_redis.command("ACL", "SETUSER", "default", "-psubscribe")
        loader = Counter("loaded")
        assert await cache.get_or_load(KEY, loader, lock_timeout=0.1) == "loaded"
        assert loader.calls == 1
