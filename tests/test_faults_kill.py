"""The suite's own Redis killed (or frozen) in the middle of a concurrent workload.

Callers see misses and no-op writes, never an exception or a hang; the failures are bounded
by the operation budget (a refused connection fails at once, a frozen server after
``op_timeout``); the breaker then skips Redis; and when Redis is back, caching resumes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from asgi_cache import Cache, CacheSettings

from .faults import FAULT_SETTINGS, HANG_DETECTOR, wait_until
from .redis_server import RedisServer

pytestmark = pytest.mark.redis

WORKERS = 8
KEYS = 20


def value(i: int) -> dict[str, Any]:
    return {"i": i % KEYS}


async def test_killed_mid_workload_gets_miss_and_sets_do_not_raise(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache(CacheSettings(url=own_redis.url, **FAULT_SETTINGS))
    async with cache:
        for i in range(KEYS):
            assert await cache.set(f"items:{i}:v", value(i))
        killed = asyncio.Event()
        stop = asyncio.Event()
        done = 0
        after: list[tuple[Any, bool]] = []

        async def worker(w: int) -> None:
            nonlocal done
            i = w
            while not stop.is_set():
                started_after_kill = killed.is_set()
                async with asyncio.timeout(HANG_DETECTOR):  # hang detector, not a budget
                    got = await cache.get(f"items:{i % KEYS}:v")
                    stored = await cache.set(f"items:{i % KEYS}:v", value(i))
                assert got in (None, value(i))
                if started_after_kill:
                    after.append((got, stored))
                done += 1
                if done == 100:
                    own_redis.stop()
                    killed.set()
                if len(after) >= 200:
                    stop.set()
                i += WORKERS

        with caplog.at_level(logging.WARNING, logger="asgi_cache"):
            await asyncio.gather(*(worker(w) for w in range(WORKERS)))
        assert after == [(None, False)] * len(after)
        stats = cache.stats()
        assert stats["hits"] >= 100 - WORKERS
        assert stats["breaker"]["opened"] == 1
        assert stats["breaker"]["short_circuited"] > 0
        assert "Connect call failed" in stats["breaker"]["last_error"]
        assert "circuit breaker closed -> open" in caplog.text

        own_redis.start()  # empty: a restart loses the cache, not correctness
        breaker = cache.breaker
        assert breaker is not None
        await wait_until(lambda: breaker.state == "closed")
        assert await cache.get("items:1:v") is None
        assert await cache.set("items:1:v", value(1))
        assert await cache.get("items:1:v") == value(1)


async def test_frozen_redis_get_is_a_miss_bounded_by_the_op_timeout(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache(CacheSettings(url=own_redis.url, **FAULT_SETTINGS))
    async with cache:
        assert await cache.set("users:1:profile", {"n": 1})
        own_redis.pause()
        try:
            with caplog.at_level(logging.WARNING, logger="asgi_cache"):
                async with asyncio.timeout(HANG_DETECTOR):
                    assert await cache.get("users:1:profile") is None
                    assert await cache.set("users:2:profile", {"n": 2}) is False
        finally:
            own_redis.resume()
        # What ended each call was the operation budget (150 ms here), nothing longer.
        assert "redis GET timed out after 150 ms" in caplog.text
        assert "redis versions timed out after 150 ms" in caplog.text
        breaker = cache.breaker
        assert breaker is not None
        await wait_until(lambda: breaker.state == "closed")
        async with asyncio.timeout(HANG_DETECTOR):  # the value survived the freeze
            # A loaded machine may still time out once right after the resume.
            while (got := await cache.get("users:1:profile")) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert got == {"n": 1}
