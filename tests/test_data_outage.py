"""Invalidations queued during an outage land before this process serves from Redis again.

The suite's own redis-server is saved (its RDB), killed, and started again from that RDB: it
comes back with the entries written before the outage, like a restart with persistence or a
failover to a replica. An invalidation made meanwhile waits in the retry queue; no read or
store of this process may use Redis before it lands.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asgi_cache import Cache

from .redis_server import RedisServer

pytestmark = pytest.mark.redis


def _restart_with_old_data(server: RedisServer) -> None:
    server.start()
    assert server.client().dbsize() > 0  # the entries from before the outage are back


async def _outage_with_invalidation(server: RedisServer, cache: Cache) -> None:
    assert await cache.set("users:1:profile", {"v": 1}, tags=["users:1"])
    assert await cache.get("users:1:profile") == {"v": 1}
    server.command("SAVE")  # the RDB the restarted server loads
    server.stop()
    # The database changed meanwhile: the invalidation cannot reach Redis, it is queued.
    assert await cache.invalidate_tags("users:1") == 0
    assert cache.stats()["pending_invalidations"] == 1
    # Long enough for the queue's own retries to back off past the restart (0.05 s doubling:
    # the next retry is then about 1.6 s away), so only the read path can deliver it in time.
    await asyncio.sleep(1.6)
    _restart_with_old_data(server)


async def test_without_breaker_the_first_read_delivers_the_queue_first(
    own_redis: RedisServer,
) -> None:
    cache = Cache.from_url(own_redis.url, ttl_jitter=0.0, breaker_threshold=0, op_timeout=1.0)
    async with cache:
        await _outage_with_invalidation(own_redis, cache)
        # Before: the old entry was served until the background retry came round.
        assert await cache.get("users:1:profile") is None
        assert cache.stats()["pending_invalidations"] == 0
        loads = 0

        async def load() -> dict[str, Any]:
            nonlocal loads
            loads += 1
            return {"v": 2}

        assert await cache.get_or_load("users:1:profile", load, tags=["users:1"]) == {"v": 2}
        assert await cache.get_or_load("users:1:profile", load, tags=["users:1"]) == {"v": 2}
        assert loads == 1  # the new value is cached again


async def test_when_the_breaker_closes_lookups_resume_only_after_the_drain(
    own_redis: RedisServer,
) -> None:
    cache = Cache.from_url(
        own_redis.url, ttl_jitter=0.0, breaker_threshold=1, breaker_cooldown=0.05, op_timeout=1.0
    )
    async with cache:
        await _outage_with_invalidation(own_redis, cache)
        breaker = cache.breaker
        assert breaker is not None
        async with asyncio.timeout(10):  # the probe closes it once Redis answers
            while breaker.state != "closed":  # noqa: ASYNC110 - no event for the probe
                await asyncio.sleep(0.01)
        assert await cache.get("users:1:profile") is None
        assert cache.stats()["pending_invalidations"] == 0


async def test_a_store_waits_for_the_queue_too(own_redis: RedisServer) -> None:
    cache = Cache.from_url(own_redis.url, ttl_jitter=0.0, breaker_threshold=0, op_timeout=1.0)
    async with cache:
        await _outage_with_invalidation(own_redis, cache)
        # The queued invalidation lands before the store: the new value is not killed by it.
        assert await cache.set("users:1:profile", {"v": 3}, tags=["users:1"])
        assert cache.stats()["pending_invalidations"] == 0
        assert await cache.get("users:1:profile") == {"v": 3}


async def test_while_redis_is_still_down_reads_are_misses_not_errors(
    own_redis: RedisServer,
) -> None:
    cache = Cache.from_url(own_redis.url, ttl_jitter=0.0, breaker_threshold=0, op_timeout=0.2)
    async with cache:
        assert await cache.set("users:1:profile", {"v": 1}, tags=["users:1"])
        own_redis.stop()
        assert await cache.invalidate_tags("users:1") == 0
        assert await cache.get("users:1:profile") is None
        assert await cache.set("users:1:profile", {"v": 2}) is False
        assert cache.stats()["pending_invalidations"] == 1
