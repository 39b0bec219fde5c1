"""The Cache data API, the same on memory, fakeredis and real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_cache import Cache, CacheSettings, ConfigurationError, SerializationError
from asgi_cache._store import WriteResult
from asgi_cache.backends import CircuitBreakerBackend, MemoryBackend, RedisBackend

from .redis_server import BEHAVIOUR_OP_TIMEOUT

ROUND_TRIPS: list[Any] = [
    "text",
    b"\x00bytes",
    42,
    2.5,
    True,
    False,
    ["a", 1, [2, 3]],
    {"user": {"id": 1, "tags": ["x"], "score": 1.5, "active": True}},
    dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC),
    {"created": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "blob": b"\x01\x02"},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
async def test_round_trips(cache: Cache, value: Any) -> None:
    assert await cache.set("users:1:profile", value) is True
    got = await cache.get("users:1:profile")
    assert got == value
    assert type(got) is type(value)


async def test_miss_returns_default_and_delete_counts(cache: Cache) -> None:
    assert await cache.get("users:404:profile") is None
    assert await cache.get("users:404:profile", default="dflt") == "dflt"
    await cache.set("a:1:x", 1)
    await cache.set("a:2:x", 2)
    assert await cache.delete("a:1:x", "a:2:x", "a:3:x") == 2
    assert await cache.get("a:1:x") is None
    assert await cache.delete() == 0


async def test_ttl_expiry(cache: Cache) -> None:
    await cache.set("s:1:x", "short", ttl=0.05)
    await cache.set("l:1:x", "long", ttl=30)
    await asyncio.sleep(0.12)
    assert await cache.get("s:1:x") is None
    assert await cache.get("l:1:x") == "long"


async def test_ttl_none_means_default_never_forever(cache: Cache) -> None:
    await cache.set("d:1:x", "v", ttl=None)
    entry = await cache._store.read(cache.keys.data("d:1:x"))
    assert entry is not None
    lifetime = entry.fresh_until - entry.created_at
    assert lifetime == pytest.approx(cache.settings.default_ttl, rel=1e-6)
    with pytest.raises(ConfigurationError, match="ttl=0"):
        await cache.set("d:1:x", "v", ttl=0)


async def test_jitter_stays_within_its_bound() -> None:
    cache = Cache(CacheSettings(ttl_jitter=0.2))
    lifetimes = []
    for i in range(200):
        await cache.set(f"j:{i}:x", i, ttl=100)
        entry = await cache._store.read(cache.keys.data(f"j:{i}:x"))
        assert entry is not None
        lifetimes.append(entry.fresh_until - entry.created_at)
    assert all(80 <= t <= 120 for t in lifetimes)
    assert max(lifetimes) - min(lifetimes) > 10  # it does spread
    assert len({round(t, 3) for t in lifetimes}) > 100


async def test_tags_invalidate_only_their_entries(cache: Cache) -> None:
    await cache.set("users:1:profile", "one", tags=["users:1"])
    await cache.set("users:1:orders", "orders", tags=["users:1", "orders"])
    await cache.set("users:2:profile", "two", tags=["users:2"])
    assert await cache.invalidate_tags("users:1") == 1
    assert await cache.get("users:1:profile") is None
    assert await cache.get("users:1:orders") is None
    assert await cache.get("users:2:profile") == "two"
    await cache.set("users:1:profile", "one again", tags=["users:1"])
    assert await cache.get("users:1:profile") == "one again"
    assert cache.stats()["invalidations"] == 1


async def test_store_after_invalidation_during_load_is_refused(cache: Cache) -> None:
    # The race the tag versions close: snapshot -> (invalidation) -> write.
    snapshot = await cache._tags.snapshot(["users:7"])
    await cache.invalidate_tags("users:7")
    entry = cache._store.value_entry("users:7:profile", "stale", ttl=30)
    written = await cache._store.write(cache.keys.data("users:7:profile"), entry, snapshot)
    assert written is WriteResult.REFUSED
    assert await cache.get("users:7:profile") is None


async def test_clear_invalidates_the_whole_namespace(cache: Cache) -> None:
    await cache.set("a:1:x", 1, tags=["a"])
    await cache.set("b:1:x", 2)
    await cache.clear()
    assert await cache.get("a:1:x") is None
    assert await cache.get("b:1:x") is None
    await cache.set("b:1:x", 3)
    assert await cache.get("b:1:x") == 3


async def test_unencodable_value_fails_loudly(cache: Cache) -> None:
    with pytest.raises(SerializationError, match=r"'bad:1:x'.*object"):
        await cache.set("bad:1:x", object())


@pytest.mark.parametrize("key", ["", "a\nb", "x" * 1025])
async def test_bad_keys_and_tags_are_refused(cache: Cache, key: str) -> None:
    with pytest.raises(ConfigurationError, match="not allowed"):
        await cache.get(key)
    with pytest.raises(ConfigurationError, match="not allowed"):
        await cache.set("ok:1:x", 1, tags=[key])


async def test_reserved_tag_is_refused(cache: Cache) -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        await cache.invalidate_tags("*")


async def test_stats_count_hits_misses_and_rate(cache: Cache) -> None:
    await cache.set("k:1:x", 1)
    await cache.get("k:1:x")
    await cache.get("k:1:x")
    await cache.get("k:2:x")
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["sets"]) == (2, 1, 1)
    assert stats["hit_rate"] == pytest.approx(2 / 3, abs=1e-3)


async def test_namespace_isolation_on_one_redis(redis_url: str) -> None:
    async with (
        Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace="shop") as shop,
        Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace="blog") as blog,
    ):
        await shop.set("users:1:profile", "shop user", tags=["users:1"])
        await blog.set("users:1:profile", "blog user", tags=["users:1"])
        assert await shop.get("users:1:profile") == "shop user"
        assert await blog.get("users:1:profile") == "blog user"
        await blog.invalidate_tags("users:1")
        await blog.clear()
        assert await shop.get("users:1:profile") == "shop user"
        assert await blog.get("users:1:profile") is None
        client = aioredis.Redis.from_url(redis_url)
        keys = sorted(k.decode() for k in await client.keys("*"))
        await client.aclose()
        # Every key is namespaced; the caller's key appears verbatim after the prefix.
        assert "shop:d:users:1:profile" in keys
        assert all(k.startswith(("shop:", "blog:")) for k in keys)


async def test_corrupt_and_foreign_values_are_counted_misses(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    async with Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace="ns") as cache:
        await client.set("ns:d:foreign", b'{"written": "by another library"}', ex=60)
        await client.set("ns:d:truncated", b"\xacD\x00\x01\x00", ex=60)
        await cache.set("good:1:x", {"v": 1})
        good = await client.get("ns:d:good:1:x")
        await client.set("ns:d:moved", good, ex=60)  # bytes copied from another key
        await client.set("ns:d:cut", good[:-3] if good else b"", ex=60)
        await client.lpush("ns:d:wrongtype", b"x")
        await client.expire("ns:d:wrongtype", 60)
        for key in ("foreign", "truncated", "moved", "cut"):
            assert await cache.get(key) is None, key
        assert await cache.get("wrongtype") is None  # an error reply, failing open
        stats = cache.stats()
        assert stats["corrupt"] == 4
        assert stats["errors"] == 1
        assert await cache.get("good:1:x") == {"v": 1}
    await client.aclose()


async def test_disabled_cache_never_touches_the_backend() -> None:
    backend = MemoryBackend()
    cache = Cache(CacheSettings(enabled=False), backend=backend)
    async with cache:
        assert await cache.set("a:1:x", 1) is False
        assert await cache.get("a:1:x") is None
        assert await cache.delete("a:1:x") == 0
        assert await cache.invalidate_tags("t") == 0
        await cache.clear()
    assert len(backend) == 0
    assert backend._meta == {}


async def test_msgpack_serializer_end_to_end(redis_url: str) -> None:
    async with Cache.from_url(
        redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, serializer="msgpack"
    ) as cache:
        value = {"b": b"\x00", "when": dt.date(2026, 2, 3), "n": [1, 2.5]}
        await cache.set("m:1:x", value)
        assert await cache.get("m:1:x") == value


async def test_health_on_real_redis_reports_server_facts(redis_url: str) -> None:
    async with Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT) as cache:
        health = await cache.health()
    assert health["status"] == "healthy"  # the suite's Redis has maxmemory + allkeys-lru
    assert health["backend"] == "redis"
    assert health["version"].count(".") == 2
    assert health["maxmemory"] == 256 * 1024 * 1024
    assert health["maxmemory_policy"] == "allkeys-lru"
    assert health["used_memory"] > 0
    assert health["latency_ms"] >= 0


async def test_health_degraded_and_down(own_redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory", "0")
    own_redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    cache = Cache.from_url(own_redis.url, op_timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        async with cache:
            health = await cache.health()
            assert health["status"] == "degraded"
            assert "maxmemory is not set" in health["warnings"]
            own_redis.stop()
            down = await cache.health()
            assert down["status"] == "down"
            assert "error" in down
    assert caplog.text.count("no maxmemory limit") == 1


async def test_redis_killed_mid_run_fails_open(
    own_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CacheSettings(url=own_redis.url, op_timeout=0.2, ttl_jitter=0, breaker_cooldown=0.05)
    async with Cache(settings) as cache:
        await cache.set("users:1:profile", "cached")
        assert await cache.get("users:1:profile") == "cached"
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="asgi_cache"):
            async with asyncio.timeout(settings.op_timeout * 5):  # hang detector, not a timing
                assert await cache.get("users:1:profile") is None
            for i in range(20):
                assert await cache.set(f"users:{i}:profile", "x") is False
                assert await cache.get(f"users:{i}:profile") is None
            assert await cache.delete("users:1:profile") == 0
            assert await cache.invalidate_tags("users:1") == 0
        stats = cache.stats()
        assert stats["errors"] >= 40
        # Rate-limited: one line per kind of failure, not one per request.
        assert len([r for r in caplog.records if "failing open" in r.message]) <= 6
        own_redis.start()
        breaker = cache.breaker
        assert breaker is not None
        async with asyncio.timeout(5):  # the breaker opened; its probe closes it again
            while breaker.state != "closed":  # noqa: ASYNC110 - no event for the probe
                await asyncio.sleep(0.01)
        assert await cache.set("users:1:profile", "back") is True
        assert await cache.get("users:1:profile") == "back"


async def test_redis_down_at_startup_does_not_prevent_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from .redis_server import free_port

    cache = Cache.from_url(f"redis://127.0.0.1:{free_port()}/0", op_timeout=0.1)
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        async with cache:
            assert await cache.get("a:1:x") is None
    assert "unreachable at startup" in caplog.text


async def test_start_and_stop_nest_and_reopen(redis_url: str) -> None:
    cache = Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    async with cache:
        async with cache:
            await cache.set("n:1:x", 1)
        backend = cache.backend
        assert await cache.get("n:1:x") == 1  # still open after the inner exit
    assert cache._runtime._backend is None  # the last exit released the connections
    assert isinstance(backend, CircuitBreakerBackend)
    assert isinstance(backend.inner, RedisBackend)
    async with cache:
        assert await cache.get("n:1:x") == 1  # reconnects lazily


async def test_from_env_builds_a_working_cache(redis_url: str) -> None:
    cache = Cache.from_env({"ASGI_CACHE_URL": redis_url, "ASGI_CACHE_NAMESPACE": "envns"})
    async with cache:
        await cache.set("e:1:x", "v")
        assert await cache.get("e:1:x") == "v"
    assert cache.keys.data("e:1:x") == "envns:d:e:1:x"


async def test_lifespan_on_a_starlette_app_and_composed(redis_url: str) -> None:
    cache = Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    events: list[str] = []

    @asynccontextmanager
    async def app_lifespan(app: Any) -> AsyncIterator[dict[str, str]]:
        events.append("app start")
        yield {"db": "connected"}
        events.append("app stop")

    async def endpoint(request: Request) -> JSONResponse:
        value = await cache.get("l:1:x")
        if value is None:
            await cache.set("l:1:x", "stored")
        return JSONResponse({"value": value, "db": request.state.db})

    app = Starlette(routes=[Route("/", endpoint)], lifespan=cache.wrap_lifespan(app_lifespan))
    async with app.router.lifespan_context(app) as state:
        assert state == {"db": "connected"}
        assert cache._runtime._users == 1
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t"):
            client_state = {"state": state}
            del client_state
    assert events == ["app start", "app stop"]
    assert cache._runtime._users == 0

    plain = Starlette(lifespan=cache.lifespan)
    async with plain.router.lifespan_context(plain):
        assert cache._runtime._users == 1
    assert cache._runtime._users == 0


async def test_memory_cache_is_the_default() -> None:
    cache = Cache()
    assert cache.backend.name == "memory"
    assert cache.stats()["backend"] == "memory"
    async with cache:
        await cache.set("m:1:x", [1])
        assert await cache.get("m:1:x") == [1]
