"""Bounded everything, under load: pool limits, pool waits, op timeouts, and the breaker.

200 concurrent operations against a slow, a healthy and a frozen Redis: every call returns,
none raises, the pool never opens more connections than allowed, a saturated pool does not
open the breaker, and an open breaker sends nothing at all to Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asgi_cache import BackendBusyError, BackendTimeoutError, Cache, CacheSettings
from asgi_cache.backends import RedisBackend

from .faults import FAULT_SETTINGS, HANG_DETECTOR, wait_until
from .redis_server import RedisServer
from .tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis

CONCURRENCY = 200


def clients(server: RedisServer) -> int:
    """Connections the server holds, not counting the redis-cli asking."""
    lines = server.command("CLIENT", "LIST").decode().splitlines()
    return sum(1 for line in lines if "cmd=client|list" not in line)


def settings(url: str, **overrides: Any) -> CacheSettings:
    return CacheSettings(url=url, **{**FAULT_SETTINGS, **overrides})


async def fill(cache: Cache, n: int) -> None:
    for i in range(n):
        assert await cache.set(f"items:{i}:v", {"i": i})


async def test_saturated_pool_fails_open_without_opening_the_breaker(
    own_redis: RedisServer, proxied: TcpProxy
) -> None:
    # Each reply takes 50 ms through the proxy and only 4 connections exist: most of the 200
    # callers cannot get a connection within the 10 ms pool wait and are served as misses.
    # (With batch_reads on, concurrent reads share one or two connections and never saturate
    # the pool: test_read_batching covers that; this test needs one connection per read.)
    cache = Cache(
        settings(
            proxied.url,
            max_connections=4,
            pool_timeout=0.01,
            op_timeout=1.0,
            connect_timeout=1.0,
            batch_reads=False,
        )
    )
    async with cache:
        await fill(cache, 10)
        proxied.latency = 0.05
        async with asyncio.timeout(HANG_DETECTOR):
            results = await asyncio.gather(
                *(cache.get(f"items:{i % 10}:v") for i in range(CONCURRENCY))
            )
        assert all(r in (None, {"i": i % 10}) for i, r in enumerate(results))
        hits = sum(r is not None for r in results)
        stats = cache.stats()
        assert 4 <= hits < CONCURRENCY
        assert stats["errors"] == CONCURRENCY - hits  # every miss was a counted pool wait
        assert stats["breaker"]["opened"] == 0  # saturation here is not Redis being down
        assert stats["breaker"]["consecutive_failures"] == 0
        assert clients(own_redis) <= 4
        proxied.latency = 0.0
        assert await cache.get("items:3:v") == {"i": 3}


async def test_healthy_redis_serves_200_concurrent_callers_within_the_pool(
    own_redis: RedisServer,
) -> None:
    cache = Cache(
        settings(
            own_redis.url, max_connections=16, pool_timeout=2.0, op_timeout=2.0, connect_timeout=2.0
        )
    )
    async with cache:
        await fill(cache, 50)
        async with asyncio.timeout(HANG_DETECTOR):
            results = await asyncio.gather(
                *(cache.get(f"items:{i % 50}:v") for i in range(CONCURRENCY))
            )
        assert results == [{"i": i % 50} for i in range(CONCURRENCY)]
        assert cache.stats()["errors"] == 0
        assert clients(own_redis) <= 16


async def test_frozen_redis_every_operation_ends_by_timeout_or_pool_wait(
    own_redis: RedisServer,
) -> None:
    backend = RedisBackend(own_redis.url, op_timeout=0.1, max_connections=8, pool_timeout=0.02)
    try:
        await backend.set("k", b"v", 10.0)
        own_redis.pause()
        async with asyncio.timeout(HANG_DETECTOR):
            results = await asyncio.gather(
                *(backend.get("k") for _ in range(CONCURRENCY)), return_exceptions=True
            )
        kinds = {type(r) for r in results}
        # Bounded: each call ended because its op budget or its pool wait ran out, nothing else.
        assert kinds <= {BackendTimeoutError, BackendBusyError}, kinds
        assert BackendTimeoutError in kinds
        own_redis.resume()
        await wait_until(lambda: clients(own_redis) <= 8)
        assert await backend.get("k") == b"v"
    finally:
        own_redis.resume()
        await backend.aclose()


async def test_frozen_redis_under_200_callers_opens_the_breaker_and_recovers(
    own_redis: RedisServer,
) -> None:
    cache = Cache(settings(own_redis.url, max_connections=8, op_timeout=0.1))
    async with cache:
        await fill(cache, 20)
        own_redis.pause()
        try:
            for _ in range(4):  # waves of callers: the breaker opens within a few
                async with asyncio.timeout(HANG_DETECTOR):
                    results = await asyncio.gather(
                        *(cache.get(f"items:{i % 20}:v") for i in range(CONCURRENCY))
                    )
                assert results == [None] * CONCURRENCY
        finally:
            own_redis.resume()
        breaker = cache.stats()["breaker"]
        assert breaker["opened"] == 1
        assert breaker["short_circuited"] >= CONCURRENCY
        breaker_obj = cache.breaker
        assert breaker_obj is not None
        await wait_until(lambda: breaker_obj.state == "closed")
        # The timed-out connections were dropped, not reused: every reply is the right one
        # (batches of the pool's size, so no caller waits on the pool here).
        for start in range(0, CONCURRENCY, 8):
            keys = [f"items:{i % 20}:v" for i in range(start, start + 8)]
            results = await asyncio.gather(*(cache.get(k) for k in keys))
            assert results == [{"i": i % 20} for i in range(start, start + 8)]
        assert clients(own_redis) <= 8


async def test_open_breaker_sends_nothing_to_redis(proxied: TcpProxy) -> None:
    # A long cooldown: no probe runs during the test, so the proxy must see no traffic at all.
    cache = Cache(settings(proxied.url, breaker_cooldown=60.0))
    async with cache:
        await fill(cache, 1)
        proxied.blackhole = True
        for _ in range(3):
            assert await cache.get("items:0:v") is None
        assert cache.stats()["breaker"]["state"] == "open"
        proxied.heal()
        commands, connections = proxied.commands, proxied.connections
        for _ in range(100):
            assert await cache.get("items:0:v") is None
            assert await cache.set("items:0:v", {"i": 0}) is False
            assert await cache.delete("items:1:v") == 0
        assert (proxied.commands, proxied.connections) == (commands, connections)
        assert cache.stats()["breaker"]["short_circuited"] >= 300


async def test_invalidation_during_an_outage_lands_after_recovery(proxied: TcpProxy) -> None:
    # The blackhole swallows the UNLINK entirely: only the retry queue can deliver it.
    cache = Cache(settings(proxied.url))
    async with cache:
        assert await cache.set("users:1:profile", {"v": 1}, tags=["users:1"])
        proxied.blackhole = True
        async with asyncio.timeout(HANG_DETECTOR):
            assert await cache.invalidate_tags("users:1") == 0
        assert cache.stats()["pending_invalidations"] == 1
        proxied.heal()
        breaker = cache.breaker
        assert breaker is not None
        await wait_until(lambda: breaker.state == "closed")
        async with asyncio.timeout(HANG_DETECTOR):
            assert await cache.drain_invalidations()
        assert await cache.get("users:1:profile") is None  # the stale entry is not served
        assert cache.stats()["pending_invalidations"] == 0
