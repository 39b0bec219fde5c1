"""cache.get_or_load: hits, misses, single-flight, negative caching, SWR, XFetch, failures.

Runs on memory, fakeredis and the suite's own real Redis (the ``cache`` fixture).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from asgi_cache import Cache, CacheSettings, ConfigurationError, SerializationError
from asgi_cache._entries import EntryKind
from asgi_cache._store import WriteResult


class Counter:
    """A loader that counts its calls and can be held at a gate."""

    def __init__(self, value: Any = "v", *, gate: asyncio.Event | None = None) -> None:
        self.value = value
        self.calls = 0
        self.gate = gate
        self.started = asyncio.Event()

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.value


async def until(condition: Any, *, limit: float = 10.0) -> None:
    """Yield to the event loop until ``condition()`` holds (bounded: a hang guard).

    For library counters that have no event to wait on (how many callers have joined a load).
    """
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - no event exists for these counters
            await asyncio.sleep(0.001)


async def test_hundred_concurrent_misses_run_the_loader_once(cache: Cache) -> None:
    gate = asyncio.Event()
    loader = Counter({"id": 42, "name": "Ada"}, gate=gate)
    calls = [
        asyncio.ensure_future(cache.get_or_load("users:42:profile", loader, ttl=60))
        for _ in range(100)
    ]
    # The calls share one lookup, joined when each task first runs: all of them, before the
    # lookup itself (scheduled after them) reaches the loader.
    await loader.started.wait()
    gate.set()
    results = await asyncio.gather(*calls)
    assert loader.calls == 1
    assert all(r == {"id": 42, "name": "Ada"} for r in results)
    # Now it is cached: another call is a hit and does not load.
    assert await cache.get_or_load("users:42:profile", loader) == {"id": 42, "name": "Ada"}
    assert loader.calls == 1
    stats = cache.stats()
    assert stats["loads"] == 1
    assert stats["hits"] == 1


async def test_value_is_stored_with_the_ttl_and_readable_by_get(cache: Cache) -> None:
    loader = Counter([1, 2, 3])
    assert await cache.get_or_load("lists:1:items", loader, ttl=30) == [1, 2, 3]
    assert await cache.get("lists:1:items") == [1, 2, 3]
    entry = await cache._store.read(cache.keys.data("lists:1:items"))
    assert entry is not None
    assert 29 < entry.fresh_until - entry.created_at <= 30.0001
    assert entry.load_time >= 0


async def test_loader_exception_reaches_every_waiter_and_caches_nothing(cache: Cache) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await gate.wait()
        raise RuntimeError("database is on fire")

    waiters = [
        asyncio.ensure_future(cache.get_or_load("users:1:profile", broken)) for _ in range(10)
    ]
    await started.wait()  # all ten joined the one lookup before it reached the loader
    gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, RuntimeError) and "on fire" in str(r) for r in results)
    assert await cache._store.read(cache.keys.data("users:1:profile")) is None
    # The lock was released: the next call loads at once.
    assert await cache.get_or_load("users:1:profile", Counter("ok")) == "ok"


async def test_unencodable_value_fails_loudly_naming_key_and_type(cache: Cache) -> None:
    class Opaque:
        pass

    async def load() -> Opaque:
        return Opaque()

    with pytest.raises(SerializationError, match=r"users:7:profile.*Opaque"):
        await cache.get_or_load("users:7:profile", load)
    # Nothing stored, lock released: a good loader works right after.
    assert await cache.get_or_load("users:7:profile", Counter("fine")) == "fine"


async def test_none_is_cached_as_a_negative_entry_that_expires(cache: Cache) -> None:
    missing = Counter(None)
    assert await cache.get_or_load("users:404:profile", missing, negative_ttl=0.2) is None
    assert await cache.get_or_load("users:404:profile", missing, negative_ttl=0.2) is None
    assert missing.calls == 1  # the second call was answered by the negative entry
    entry = await cache._store.read(cache.keys.data("users:404:profile"))
    assert entry is not None
    assert entry.kind is EntryKind.NEGATIVE
    assert entry.fresh_until - entry.created_at == pytest.approx(0.2)
    await asyncio.sleep(0.3)  # let the negative entry expire (time passing, not ordering)
    assert await cache.get_or_load("users:404:profile", missing, negative_ttl=0.2) is None
    assert missing.calls == 2


async def test_negative_ttl_defaults_to_the_setting() -> None:
    async with Cache(CacheSettings(negative_ttl=3.0, ttl_jitter=0)) as cache:
        await cache.get_or_load("users:404:profile", Counter(None))
        entry = await cache._store.read(cache.keys.data("users:404:profile"))
        assert entry is not None
        assert entry.fresh_until - entry.created_at == pytest.approx(3.0)


async def _store_stale(cache: Cache, key: str, value: Any, *, stale_for: float = 60) -> None:
    """Put an entry that went stale a second ago and stays servable for ``stale_for``."""
    entry = cache._store.value_entry(key, value, ttl=1, stale_ttl=stale_for)
    entry = dataclasses.replace(
        entry,
        created_at=entry.created_at - 2,
        fresh_until=entry.created_at - 1,
        stale_until=entry.created_at - 1 + stale_for,
    )
    snapshot = await cache._tags.snapshot()
    assert await cache._store.write(cache.keys.data(key), entry, snapshot) is WriteResult.STORED


async def test_stale_is_served_while_exactly_one_refresh_runs(cache: Cache) -> None:
    await _store_stale(cache, "users:1:profile", "old")
    gate = asyncio.Event()
    refresh = Counter("new", gate=gate)
    results = await asyncio.gather(
        *(cache.get_or_load("users:1:profile", refresh, stale_ttl=30) for _ in range(20))
    )
    assert results == ["old"] * 20  # all served at once, none waited for the refresh
    await refresh.started.wait()
    # Still refreshing: more callers keep getting the stale value, no second refresh.
    assert await cache.get_or_load("users:1:profile", refresh, stale_ttl=30) == "old"
    gate.set()
    await cache._loading.drain()
    assert refresh.calls == 1
    assert await cache.get_or_load("users:1:profile", refresh, stale_ttl=30) == "new"
    assert refresh.calls == 1
    assert cache.stats()["stale"] == 21


async def test_failed_background_refresh_keeps_the_stale_value(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    await _store_stale(cache, "users:1:profile", "old")

    async def broken() -> str:
        raise RuntimeError("db down")

    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        assert await cache.get_or_load("users:1:profile", broken, stale_ttl=30) == "old"
        await cache._loading.drain()
    assert "background refresh failed" in caplog.text
    assert await cache.get_or_load("users:1:profile", broken, stale_ttl=30) == "old"


async def test_stale_window_is_stored_with_the_entry(cache: Cache) -> None:
    await cache.get_or_load("users:1:profile", Counter("v"), ttl=10, stale_ttl=20)
    entry = await cache._store.read(cache.keys.data("users:1:profile"))
    assert entry is not None
    assert entry.stale_until - entry.fresh_until == pytest.approx(20)


async def test_xfetch_refreshes_a_fresh_key_early(cache: Cache) -> None:
    slow = Counter("v1")
    await cache.get_or_load("hot:1:key", slow, ttl=60)
    entry = await cache._store.read(cache.keys.data("hot:1:key"))
    assert entry is not None
    assert entry.load_time > 0
    newer = Counter("v2")
    # beta so large that any load time makes the early refresh certain
    assert await cache.get_or_load("hot:1:key", newer, early_refresh=1e12) == "v1"
    await cache._loading.drain()
    assert newer.calls == 1
    assert await cache.get("hot:1:key") == "v2"
    # Disabled (the default) or tiny beta: no early refresh of a value 60 s from expiry.
    idle = Counter("v3")
    assert await cache.get_or_load("hot:1:key", idle) == "v2"
    assert await cache.get_or_load("hot:1:key", idle, early_refresh=True) == "v2"
    await cache._loading.drain()
    assert idle.calls == 0


async def test_lock_false_still_coalesces_in_process(cache: Cache) -> None:
    gate = asyncio.Event()
    loader = Counter("v", gate=gate)
    calls = [
        asyncio.ensure_future(cache.get_or_load("k:1:x", loader, lock=False)) for _ in range(10)
    ]
    await loader.started.wait()
    gate.set()
    assert await asyncio.gather(*calls) == ["v"] * 10
    assert loader.calls == 1
    assert await cache.get("k:1:x") == "v"


async def test_sync_loader_is_accepted(cache: Cache) -> None:
    assert await cache.get_or_load("k:1:x", lambda: {"sync": True}) == {"sync": True}
    assert await cache.get("k:1:x") == {"sync": True}


async def test_tags_invalidate_loaded_values(cache: Cache) -> None:
    await cache.get_or_load("users:1:profile", Counter("v1"), tags=["users:1"])
    await cache.invalidate_tags("users:1")
    assert await cache.get_or_load("users:1:profile", Counter("v2"), tags=["users:1"]) == "v2"


async def test_invalidation_during_the_load_is_not_undone(cache: Cache) -> None:
    gate = asyncio.Event()
    loader = Counter("read before the update", gate=gate)
    task = asyncio.ensure_future(cache.get_or_load("users:1:profile", loader, tags=["users:1"]))
    await loader.started.wait()
    await cache.invalidate_tags("users:1")  # the row changed while the loader ran
    gate.set()
    assert await task == "read before the update"
    assert await cache.get("users:1:profile") is None  # not stored: its tag moved on


async def test_a_caller_after_an_invalidation_does_not_join_an_older_load(cache: Cache) -> None:
    # Read-after-write in one process: the load in flight read the row before the write; a
    # caller that asks after this process invalidated the row's tag gets a load of its own.
    gate = asyncio.Event()
    old = Counter("read before the update", gate=gate)
    first = asyncio.ensure_future(cache.get_or_load("users:1:profile", old, tags=["users:1"]))
    await old.started.wait()
    await cache.invalidate_tags("users:1")
    new = Counter("read after the update")
    second = asyncio.ensure_future(cache.get_or_load("users:1:profile", new, tags=["users:1"]))
    third = asyncio.ensure_future(cache.get_or_load("users:1:profile", Counter(), tags=["users:1"]))
    # Bounded: joining the older load would wait for its gate (a hang, not a pass).
    assert await asyncio.wait_for(second, timeout=10) == "read after the update"
    gate.set()
    assert await first == "read before the update"  # asked before the write: fine
    assert await third == "read after the update"  # joined the newer load, not the older one
    assert (old.calls, new.calls) == (1, 1)
    assert await cache.get("users:1:profile") == "read after the update"


async def test_an_invalidation_of_other_tags_leaves_the_load_shared(cache: Cache) -> None:
    gate = asyncio.Event()
    loader = Counter("v", gate=gate)
    first = asyncio.ensure_future(cache.get_or_load("users:1:profile", loader, tags=["users:1"]))
    await loader.started.wait()
    await cache.invalidate_tags("users:2")
    other = Counter("never called")
    second = asyncio.ensure_future(cache.get_or_load("users:1:profile", other, tags=["users:1"]))
    await asyncio.sleep(0)
    gate.set()
    assert await first == await second == "v"
    assert (loader.calls, other.calls) == (1, 0)


async def test_disabled_cache_runs_the_loader_every_time() -> None:
    async with Cache(CacheSettings(enabled=False)) as cache:
        loader = Counter("v")
        assert await cache.get_or_load("k:1:x", loader) == "v"
        assert await cache.get_or_load("k:1:x", loader) == "v"
        assert loader.calls == 2


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("ttl", 0),
        ("lock_timeout", -1),
        ("stale_ttl", float("nan")),
        ("negative_ttl", 0),
        ("early_refresh", -0.5),
        ("tags", "users:1"),
    ],
)
async def test_bad_options_name_themselves(option: str, value: Any) -> None:
    async with Cache() as cache:
        with pytest.raises(ConfigurationError, match=option):
            await cache.get_or_load("k:1:x", Counter(), **{option: value})


async def test_bad_key_is_rejected() -> None:
    async with Cache() as cache:
        with pytest.raises(ConfigurationError, match="cache key"):
            await cache.get_or_load("bad\nkey", Counter())


async def test_corrupt_entry_is_a_miss_and_gets_replaced(cache: Cache) -> None:
    full_key = cache.keys.data("users:1:profile")
    await cache.backend.set(full_key, b"not an entry", 60)
    assert await cache.get_or_load("users:1:profile", Counter("fresh")) == "fresh"
    assert cache.stats()["corrupt"] >= 1
    assert await cache.get("users:1:profile") == "fresh"


async def test_response_entry_under_a_data_key_is_a_miss(cache: Cache) -> None:
    key = "users:1:profile"
    entry = dataclasses.replace(cache._store.value_entry(key, "x", ttl=60), kind=EntryKind.RESPONSE)
    await cache._store.write(cache.keys.data(key), entry, await cache._tags.snapshot())
    assert await cache.get_or_load(key, Counter("loaded")) == "loaded"


async def test_a_miss_during_a_refresh_gets_the_refreshed_value(cache: Cache) -> None:
    await _store_stale(cache, "users:1:profile", "old")
    gate = asyncio.Event()
    refresh = Counter("new", gate=gate)
    assert await cache.get_or_load("users:1:profile", refresh, stale_ttl=30) == "old"
    await refresh.started.wait()  # the refresh holds the lock now
    await cache.delete("users:1:profile")  # the stale entry is gone (evicted, say)
    second = Counter("second load")
    miss = asyncio.ensure_future(cache.get_or_load("users:1:profile", second, lock_timeout=30))
    await until(lambda: cache.stats()["lock_waits"] == 1)  # it waits for the refresh's lock
    gate.set()
    async with asyncio.timeout(10):
        assert await miss == "new"
    assert second.calls == 0
