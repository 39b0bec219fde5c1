"""The opt-in L1 near-cache: hits without Redis, and invalidation in and across processes.

Every test runs on the suite's real Redis. "Another process" is a second :class:`Cache` with
its own backend (its own connections and pub/sub subscription), as a second worker would have.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI

from asgi_cache import BackendError, Cache, CacheMiddleware, CacheSettings, ConfigurationError
from asgi_cache.backends import MemoryBackend, RedisBackend

from .http_support import Clock, client_for, command_calls
from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer


def l1_cache(url: str, **settings: Any) -> Cache:
    options: dict[str, Any] = {"namespace": "near", "ttl_jitter": 0.0, "l1_ttl": 30.0}
    options.update(settings)
    return Cache(
        CacheSettings(**options),
        backend=RedisBackend(url, op_timeout=BEHAVIOUR_OP_TIMEOUT, tagged_reads=True),
    )


@pytest.fixture
async def near(redis_url: str) -> AsyncIterator[Cache]:
    cache = l1_cache(redis_url)
    yield cache
    await cache.aclose()
    await cache.backend.aclose()


@pytest.fixture
async def other(redis_url: str) -> AsyncIterator[Cache]:
    """The same namespace in "another process"."""
    cache = l1_cache(redis_url)
    yield cache
    await cache.aclose()
    await cache.backend.aclose()


def reads(server: RedisServer) -> int:
    """Script runs: every entry read is one (the GET script; its inner GETs not counted)."""
    calls = command_calls(server)
    return sum(n for cmd, n in calls.items() if cmd.startswith("eval"))


def message_seen(cache: Cache, channel_suffix: str) -> asyncio.Event:
    """An event set once ``cache``'s L1 applies a message whose channel ends so."""
    near = cache.near
    assert near is not None
    seen = asyncio.Event()
    apply = near.on_message

    def spy(channel: str) -> None:
        apply(channel)
        if channel.endswith(":" + channel_suffix):
            seen.set()

    near.on_message = spy  # type: ignore[method-assign]
    return seen


# -- hits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["get", "get_or_load"])
async def test_repeated_reads_cost_no_redis_reads(
    near: Cache, redis_server: RedisServer, api: str
) -> None:
    loads = Counter[str]()

    async def loader() -> dict[str, int]:
        loads["k"] += 1
        return {"v": 1}

    async def read() -> Any:
        if api == "get":
            return await near.get("k")
        return await near.get_or_load("k", loader, ttl=60)

    await near.set("k", {"v": 1}, ttl=60)
    assert await read() == {"v": 1}  # first read: Redis, and fills L1
    before = reads(redis_server)
    results = [await read() for _ in range(50)]
    assert results == [{"v": 1}] * 50
    assert reads(redis_server) == before  # not one round trip
    assert near.near is not None
    assert near.near.hits == 50
    assert loads["k"] == 0
    assert near.stats()["hits"] == 51
    l1 = near.stats()["l1"]
    assert (l1["entries"], l1["hits"], l1["evictions"], l1["drops"]) == (1, 50, 0, 0)


async def test_without_l1_every_read_goes_to_redis(
    redis_url: str, redis_server: RedisServer
) -> None:
    # The counting above is meaningful: the same reads with L1 off cost one read each.
    cache = l1_cache(redis_url, l1_ttl=0)
    assert cache.near is None
    await cache.set("k", 1, ttl=60)
    before = reads(redis_server)
    for _ in range(5):
        assert await cache.get("k") == 1
    assert reads(redis_server) >= before + 5
    await cache.backend.aclose()


def test_l1_is_off_by_default_and_for_memory() -> None:
    assert Cache.from_url("redis://localhost:1").near is None
    assert Cache(CacheSettings(l1_ttl=5), backend=MemoryBackend()).near is None
    assert Cache(CacheSettings(l1_ttl=5)).near is None  # memory:// is in-process already
    assert Cache.from_url("redis://localhost:1", l1_ttl=5).near is not None


def test_l1_settings_from_env() -> None:
    s = CacheSettings.from_env({"ASGI_CACHE_L1_TTL": "0.5", "ASGI_CACHE_L1_MAX_ENTRIES": "2_000"})
    assert (s.l1_ttl, s.l1_max_entries) == (0.5, 2000)
    with pytest.raises(ConfigurationError, match="ASGI_CACHE_L1_TTL"):
        CacheSettings.from_env({"ASGI_CACHE_L1_TTL": "-1"})
    with pytest.raises(ConfigurationError, match="l1_max_entries"):
        CacheSettings(l1_max_entries=0)


# -- local invalidation: seen at once in this process ---------------------------------------


async def _tags(c: Cache) -> Any:
    return await c.invalidate_tags("t")


async def _delete(c: Cache) -> Any:
    return await c.delete("k")


async def _clear(c: Cache) -> Any:
    return await c.clear()


async def _prefix(c: Cache) -> Any:
    return await c.invalidate_prefix("k")


async def _store(c: Cache) -> Any:
    return await c.set("k", "new", ttl=60, tags=["t"])


async def _write_through(c: Cache) -> Any:
    async def write() -> None:
        return None

    return await c.write_through("k", "new", write=write, ttl=60)


LOCAL: dict[str, tuple[Callable[[Cache], Awaitable[Any]], Any]] = {
    "invalidate_tags": (_tags, None),
    "delete": (_delete, None),
    "clear": (_clear, None),
    "invalidate_prefix": (_prefix, None),
    "set": (_store, "new"),
    "write_through": (_write_through, "new"),
}


@pytest.mark.parametrize("op", sorted(LOCAL))
async def test_local_invalidation_is_seen_at_once(near: Cache, op: str) -> None:
    change, expected = LOCAL[op]
    await near.set("k", "old", ttl=60, tags=["t"])
    assert await near.get("k") == "old"
    assert await near.get("k") == "old"  # from L1 now
    await change(near)
    assert await near.get("k") == expected


async def test_a_read_in_flight_during_an_invalidation_does_not_refill_l1(redis_url: str) -> None:
    # The read fetched the old entry before the invalidation landed and returns after it:
    # its caller gets what it read, but L1 must not keep it.
    backend = RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    cache = Cache(CacheSettings(namespace="near", ttl_jitter=0.0, l1_ttl=30.0), backend=backend)
    await cache.set("k", "old", ttl=60, tags=["t"])
    read_done = asyncio.Event()
    release = asyncio.Event()
    inner_get = backend.get_tagged

    async def slow_get(key: str) -> tuple[bytes, tuple[str, ...]] | None:
        raw = await inner_get(key)
        read_done.set()
        await release.wait()
        return raw

    backend.get_tagged = slow_get  # type: ignore[method-assign]
    reader = asyncio.create_task(cache.get("k"))
    await read_done.wait()
    await cache.invalidate_tags("t")
    release.set()
    assert await reader == "old"
    backend.get_tagged = inner_get  # type: ignore[method-assign]
    assert await cache.get("k") is None
    await cache.aclose()
    await backend.aclose()


# -- across processes -------------------------------------------------------------------------


async def _delete_many(c: Cache) -> Any:
    return await c.delete("k", *(f"x{i}" for i in range(16)))


REMOTE: dict[str, tuple[Callable[[Cache], Awaitable[Any]], str, Any]] = {
    "invalidate_tags": (_tags, "near:t:t", None),
    "delete_many": (_delete_many, "", None),
    "clear": (_clear, "", None),
    "delete": (_delete, "near:d:k", None),
    "set": (_store, "near:d:k", "new"),
}


@pytest.mark.parametrize("op", sorted(REMOTE))
async def test_another_process_drops_its_l1_when_the_message_arrives(
    near: Cache, other: Cache, op: str
) -> None:
    change, channel, expected = REMOTE[op]
    await other.set("k", "old", ttl=60, tags=["t"])
    assert await near.get("k") == "old"  # near subscribes, then fills its L1
    assert near.near is not None
    assert len(near.near) == 1
    seen = message_seen(near, channel)
    await change(other)
    await asyncio.wait_for(seen.wait(), timeout=5)  # a bound for a hang, not a timing assert
    assert len(near.near) == 0
    assert await near.get("k") == expected


async def _fail(*args: Any, **kwargs: Any) -> Any:
    raise BackendError("injected")


@pytest.mark.parametrize("op", ["invalidate_tags", "delete", "clear"])
async def test_a_queued_invalidation_reaches_other_processes_when_it_lands(
    near: Cache, other: Cache, op: str
) -> None:
    change, _ = LOCAL[op]
    await near.set("k", "old", ttl=60, tags=["t"])
    assert await near.get("k") == "old"
    assert await other.get("k") == "old"
    backend = near.backend
    method = "delete" if op == "delete" else "invalidate"
    setattr(backend, method, _fail)  # Redis refuses the invalidation: it is queued
    await change(near)
    assert near.near is not None
    assert len(near.near) == 0
    assert await other.get("k") == "old"  # the documented window: nobody told `other`
    delattr(backend, method)
    channel = {"delete": "near:d:k", "invalidate_tags": "near:t:t", "clear": ""}[op]
    seen = message_seen(other, channel)
    assert await near.drain_invalidations()
    await asyncio.wait_for(seen.wait(), timeout=5)
    assert await other.get("k") is None
    assert await near.get("k") is None


async def test_no_l1_fill_without_a_subscription(near: Cache) -> None:
    # Unsubscribed, this process would not hear other processes' invalidations.
    await near.set("k", 1, ttl=60)
    near.backend.subscribe = _fail  # type: ignore[method-assign]
    assert await near.get("k") == 1
    assert await near.get("k") == 1
    assert near.near is not None
    assert len(near.near) == 0


async def test_closing_empties_l1_and_reopening_resubscribes(redis_url: str) -> None:
    cache = Cache.from_url(
        redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace="near", l1_ttl=30.0
    )
    other = l1_cache(redis_url)
    assert cache.near is not None
    async with cache:
        await cache.set("k", 1, ttl=60)
        assert await cache.get("k") == 1
        assert len(cache.near) == 1
    assert len(cache.near) == 0  # nothing is heard while closed
    async with cache:
        assert await cache.get("k") == 1  # a new connection, subscribed again
        assert len(cache.near) == 1
        seen = message_seen(cache, "")
        await other.clear()
        await asyncio.wait_for(seen.wait(), timeout=5)
        assert len(cache.near) == 0
    await other.backend.aclose()


# -- expiry and bound --------------------------------------------------------------------------


async def test_l1_entries_expire_after_l1_ttl(redis_url: str, redis_server: RedisServer) -> None:
    cache = l1_cache(redis_url, l1_ttl=2.0)
    assert cache.near is not None
    clock = Clock()
    cache.near.clock = clock.time
    await cache.set("k", 1, ttl=60)
    await cache.get("k")
    before = reads(redis_server)
    clock.advance(1.5)
    assert await cache.get("k") == 1
    assert reads(redis_server) == before  # still within l1_ttl
    clock.advance(1.0)
    assert await cache.get("k") == 1
    assert reads(redis_server) == before + 1  # past l1_ttl: read from Redis again
    await cache.backend.aclose()


async def test_l1_never_outlives_the_entrys_freshness(
    redis_url: str, redis_server: RedisServer
) -> None:
    cache = l1_cache(redis_url, l1_ttl=600.0)
    assert cache.near is not None
    clock = Clock()
    cache.near.clock = clock.time
    await cache.set("k", 1, ttl=5)
    await cache.get("k")
    before = reads(redis_server)
    clock.advance(6)  # past fresh_until, well within l1_ttl
    await cache.get("k")
    assert reads(redis_server) == before + 1
    await cache.backend.aclose()


# -- through the HTTP middleware -----------------------------------------------------------------


async def test_put_in_the_same_process_is_seen_by_the_next_get(
    redis_url: str, redis_server: RedisServer
) -> None:
    cache = l1_cache(redis_url)
    db = {1: "ann"}
    calls = Counter[str]()
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)

    @app.get("/users/{user_id}")
    @cache.response(ttl=60, tags=["users:{user_id}"])
    async def get_user(user_id: int) -> dict[str, Any]:
        calls["get"] += 1
        return {"id": user_id, "name": db[user_id]}

    @app.put("/users/{user_id}")
    @cache.invalidates("users:{user_id}")
    async def put_user(user_id: int, name: str) -> dict[str, Any]:
        db[user_id] = name
        return {"id": user_id, "name": name}

    async with client_for(app) as client:
        assert (await client.get("/users/1")).headers["x-cache"] == "MISS"
        assert (await client.get("/users/1")).headers["x-cache"] == "HIT"
        before = reads(redis_server)
        hit = await client.get("/users/1")
        assert hit.headers["x-cache"] == "HIT"
        assert reads(redis_server) == before  # served from L1
        assert (await client.put("/users/1", params={"name": "ann2"})).status_code == 200
        after = await client.get("/users/1")
    assert after.headers["x-cache"] == "MISS"
    assert after.json() == {"id": 1, "name": "ann2"}
    assert calls["get"] == 2
    await cache.backend.aclose()
