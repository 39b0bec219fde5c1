"""Startup checks: a Redis unfit for a cache is reported once, clearly, and never blocks startup."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.applications import Starlette

from asgi_cache import Cache
from asgi_cache._runtime import MEMORY_PER_PROCESS

from .redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis

NO_MAXMEMORY = "Redis has no maxmemory limit"
NOEVICTION = "maxmemory-policy is noeviction"


def count(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if text in r.getMessage() and r.levelno == logging.WARNING)


async def start_stop_many_ways(cache: Cache) -> None:
    """Nested starts, a restart after a full stop, and an app lifespan around the cache."""
    async with cache, cache:
        await cache.get("a:1:x")
    async with cache:
        await cache.get("a:1:x")

    # The lifespan of an app, driven by the ASGI lifespan protocol as a server would.
    app = Starlette(lifespan=cache.lifespan)
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_no_maxmemory_warns_exactly_once(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory", "0")
    cache = Cache.from_url(own_redis.url, op_timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        await start_stop_many_ways(cache)
    assert count(caplog, NO_MAXMEMORY) == 1
    assert count(caplog, NOEVICTION) == 0
    assert "docs/operations.md" in caplog.text


async def test_noeviction_warns_exactly_once(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    cache = Cache.from_url(own_redis.url, op_timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        await start_stop_many_ways(cache)
    assert count(caplog, NOEVICTION) == 1
    assert count(caplog, NO_MAXMEMORY) == 0


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "volatile-lru"])
async def test_a_cache_ready_redis_gets_no_warning(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture, policy: str
) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory-policy", policy)
    cache = Cache.from_url(own_redis.url, op_timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        await start_stop_many_ways(cache)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_memory_backend_warns_once_that_it_is_per_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        await start_stop_many_ways(Cache.from_url("memory://"))
    # One line however often it starts, naming the consequence with several workers.
    assert [r.getMessage() for r in caplog.records] == [f"asgi-cache: {MEMORY_PER_PROCESS}"]
    assert "other" in MEMORY_PER_PROCESS
    assert "stale" in MEMORY_PER_PROCESS


async def test_redis_down_at_startup_is_reported_then_checked_when_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from .redis_server import redis_binary

    binary = redis_binary()
    if binary is None:  # pragma: no cover - the own_redis tests skip the same way
        pytest.skip("redis-server not found")
    server = RedisServer(binary, "--maxmemory", "0")
    server.port = free_port()
    cache = Cache.from_url(server.url, op_timeout=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="asgi_cache"):
            async with cache:  # nothing listens yet: logged, not raised
                assert await cache.get("a:1:x") is None
            assert count(caplog, "unreachable at startup") == 1
            assert count(caplog, NO_MAXMEMORY) == 0
            server.start()
            await start_stop_many_ways(cache)
        assert count(caplog, "unreachable at startup") == 1
        assert count(caplog, NO_MAXMEMORY) == 1  # checked once it answered, and only once
    finally:
        server.close()
