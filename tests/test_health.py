"""The health endpoint: ``cache.health_route()`` mounted in real Starlette and FastAPI apps."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from asgi_cache import Cache, CacheSettings, HealthApp
from asgi_cache.backends import MemoryBackend

from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer


def mounted(cache: Cache) -> Starlette:
    app = Starlette()
    app.add_route("/health/cache", cache.health_route())
    return app


@pytest.fixture
async def memory_cache() -> AsyncIterator[Cache]:
    async with Cache(CacheSettings(namespace="h", ttl_jitter=0.0)) as cache:
        yield cache


async def get(app: Any, path: str = "/health/cache", method: str = "GET") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path)


async def test_memory_cache_is_healthy_and_reports_counters(memory_cache: Cache) -> None:
    await memory_cache.set("users:1", {"name": "Ada"})
    assert await memory_cache.get("users:1") == {"name": "Ada"}
    assert await memory_cache.get("users:2") is None

    response = await get(mounted(memory_cache))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "healthy"
    assert body["backend"] == "memory"
    assert body["namespace"] == "h"
    assert body["maxmemory_policy"] == "allkeys-lru"
    assert body["used_memory"] > 0
    assert body["maxmemory"] == memory_cache.settings.memory_max_bytes
    assert body["hit_rate"] == 0.5
    assert body["stats"]["hits"] == 1
    assert body["stats"]["misses"] == 1
    assert body["stats"]["sets"] == 1
    assert "breaker" not in body


async def test_real_redis_is_healthy_with_its_memory_facts(redis_url: str) -> None:
    async with Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace="h") as cache:
        response = await get(mounted(cache))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["backend"] == "redis"
    assert body["maxmemory"] == 256 * 1024 * 1024  # the suite's server runs with 256mb
    assert body["maxmemory_policy"] == "allkeys-lru"
    assert body["used_memory"] > 0
    assert isinstance(body["latency_ms"], float)
    assert body["warnings"] == []


async def test_noeviction_redis_is_degraded_but_answers_200(own_redis: RedisServer) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    async with Cache.from_url(own_redis.url, namespace="h") as cache:
        response = await get(mounted(cache))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["warnings"] == ["maxmemory_policy is noeviction"]


async def test_killed_redis_is_down_and_answers_503(own_redis: RedisServer) -> None:
    async with Cache.from_url(own_redis.url, namespace="h") as cache:
        app = mounted(cache)
        assert (await get(app)).status_code == 200
        own_redis.stop()
        response = await get(app)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["latency_ms"] is None
    assert "redis" in body["error"]
    assert body["stats"]["backend"] == "redis"


async def test_head_has_the_status_and_no_body(own_redis: RedisServer) -> None:
    async with Cache.from_url(own_redis.url, namespace="h") as cache:
        app = mounted(cache)
        healthy = await get(app, method="HEAD")
        own_redis.stop()
        down = await get(app, method="HEAD")
    assert (healthy.status_code, healthy.content) == (200, b"")
    assert int(healthy.headers["content-length"]) > 0
    assert (down.status_code, down.content) == (503, b"")


async def test_other_methods_are_refused_with_405(memory_cache: Cache) -> None:
    response = await get(mounted(memory_cache), method="POST")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert "POST" in response.json()["error"]


async def test_fastapi_add_route_serves_the_exact_path(memory_cache: Cache) -> None:
    app = FastAPI()
    app.add_route("/healthz", memory_cache.health_route())
    response = await get(app, "/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert (await get(app, "/healthz/other")).status_code == 404


async def test_fastapi_mount_serves_everything_under_the_prefix(memory_cache: Cache) -> None:
    app = FastAPI()
    app.mount("/health/cache", memory_cache.health_route())
    for path in ("/health/cache/", "/health/cache/live"):
        response = await get(app, path)
        assert response.status_code == 200
        assert response.json()["status"] == "healthy"


class _BreakerCache(Cache):
    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "breaker": "open"}


class _BrokenCache(Cache):
    async def health(self) -> dict[str, Any]:
        raise RuntimeError("probe exploded")


async def test_breaker_state_is_lifted_to_the_top_level() -> None:
    response = await get(mounted(_BreakerCache()))
    assert response.json()["breaker"] == "open"
    assert response.json()["stats"]["breaker"] == "open"


async def test_a_failing_probe_is_reported_down_not_raised() -> None:
    response = await get(mounted(_BrokenCache()))
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["error"] == "RuntimeError: probe exploded"


async def test_standalone_app_answers_lifespan_and_closes_websockets() -> None:
    app = HealthApp(Cache())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "lifespan"}, receive, send)
    await app({"type": "websocket"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
        "websocket.close",
    ]


class OldRedis(MemoryBackend):
    """Answers INFO like a Redis 6.2: fit for a cache in every way but its version."""

    async def info(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "version": "6.2.14",
            "used_memory": 1,
            "maxmemory": 1 << 30,
            "maxmemory_policy": "allkeys-lru",
        }


async def test_redis_older_than_7_warns_at_startup_and_degrades_health(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = Cache(CacheSettings(namespace="h"), backend=OldRedis())
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        async with cache:
            report = await cache.health()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "Redis 6.2.14 is older than 7.0" in warned[0]
    assert "PEXPIRE ... GT" in warned[0]
    assert report["status"] == "degraded"
    assert any("6.2.14" in w for w in report["warnings"])


@pytest.mark.parametrize("version", ["7.0.15", "7.2.4", "8.0.0", "unknown", None])
async def test_redis_7_and_unparsed_versions_get_no_version_warning(
    version: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    class Reporting(OldRedis):
        async def info(self) -> dict[str, Any]:
            return {**await super().info(), "version": version}

    cache = Cache(CacheSettings(namespace="h"), backend=Reporting())
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        async with cache:
            report = await cache.health()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert report["status"] == "healthy"
