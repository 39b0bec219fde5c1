"""The distributed lock between caches that share one store, as two processes would.

Each test builds two :class:`Cache` objects with their own connections to the same store
(the suite's real Redis, a shared fakeredis server, or one shared memory backend), so the
in-process single-flight of one cannot help the other: only the lock can.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest

from asgi_cache import BackendError, Cache, CacheSettings
from asgi_cache.backends import Backend, MemoryBackend, RedisBackend
from asgi_cache.locking import TOKEN_BYTES, DistributedLock, new_token

from .redis_server import BEHAVIOUR_OP_TIMEOUT
from .test_loading_get_or_load import Counter, until

KEY = "users:42:profile"


@dataclasses.dataclass
class Pair:
    a: Cache
    b: Cache
    store: Backend  # a third connection, for the test's own look at the store

    @property
    def full_key(self) -> str:
        return self.a.keys.data(KEY)

    @property
    def lock_key(self) -> str:
        return self.a.keys.lock(self.full_key)

    def loads(self) -> int:
        return self.a.stats()["loads"] + self.b.stats()["loads"]


def _settings(**changes: Any) -> CacheSettings:
    return CacheSettings(namespace="test", ttl_jitter=0.0, **changes)


async def make_pair(kind: str, request: pytest.FixtureRequest, **changes: Any) -> Pair:
    backends: list[Backend]
    if kind == "memory":
        shared = MemoryBackend()
        backends = [shared, shared, shared]
    elif kind == "fakeredis":
        server = fakeredis.FakeServer()
        backends = [
            RedisBackend(client=fakeredis.FakeAsyncRedis(server=server), owns_client=True)
            for _ in range(3)
        ]
    else:
        url = request.getfixturevalue("redis_url")
        backends = [RedisBackend(url, op_timeout=BEHAVIOUR_OP_TIMEOUT) for _ in range(3)]
    a = Cache(_settings(**changes), backend=backends[0])
    b = Cache(_settings(**changes), backend=backends[1])
    await a.start()
    await b.start()
    return Pair(a, b, backends[2])


@pytest.fixture(params=["memory", "fakeredis", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    p = await make_pair(request.param, request)
    yield p
    for c in (p.a, p.b):
        await c._loading.drain()
        await c.stop()
    for backend in {id(x): x for x in (p.a.backend, p.b.backend, p.store)}.values():
        await backend.aclose()


async def test_waiter_gets_the_holders_value_without_loading(pair: Pair) -> None:
    gate = asyncio.Event()
    holder = Counter({"id": 42}, gate=gate)
    waiter_loader = Counter({"id": -1})
    first = asyncio.ensure_future(pair.a.get_or_load(KEY, holder))
    await holder.started.wait()
    second = asyncio.ensure_future(pair.b.get_or_load(KEY, waiter_loader, lock_timeout=30))
    await until(lambda: pair.b.stats()["lock_waits"] == 1)
    gate.set()
    async with asyncio.timeout(10):  # woken by the notification, not by lock_timeout
        assert await first == {"id": 42}
        assert await second == {"id": 42}
    assert waiter_loader.calls == 0
    assert pair.loads() == 1
    assert await pair.store.get_raw(pair.lock_key) is None  # released


async def test_lock_token_is_fresh_random_and_in_its_own_key_space(pair: Pair) -> None:
    gate = asyncio.Event()
    holder = Counter("v", gate=gate)
    task = asyncio.ensure_future(pair.a.get_or_load(KEY, holder))
    await holder.started.wait()
    assert pair.lock_key == f"test:l:{pair.full_key}"
    if isinstance(pair.store, RedisBackend):
        token = await pair.store.get_raw(pair.lock_key)
        assert token is not None
        assert re.fullmatch(rb"[0-9a-f]{32}", token)
    gate.set()
    await task
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == TOKEN_BYTES * 2 for t in tokens)
    assert TOKEN_BYTES * 8 >= 128


async def test_loader_crash_releases_the_lock_and_the_waiter_takes_over(pair: Pair) -> None:
    gate = asyncio.Event()

    async def crash() -> str:
        crash.started.set()  # type: ignore[attr-defined]
        await gate.wait()
        raise RuntimeError("db gone")

    crash.started = asyncio.Event()  # type: ignore[attr-defined]
    first = asyncio.ensure_future(pair.a.get_or_load(KEY, crash))
    await crash.started.wait()  # type: ignore[attr-defined]
    recovering = Counter("loaded by b")
    second = asyncio.ensure_future(pair.b.get_or_load(KEY, recovering, lock_timeout=30))
    await until(lambda: pair.b.stats()["lock_waits"] == 1)
    gate.set()
    with pytest.raises(RuntimeError, match="db gone"):
        await first
    async with asyncio.timeout(10):  # lock_timeout is 30 s: only the wake-up is this fast
        assert await second == "loaded by b"
    assert recovering.calls == 1
    assert await pair.store.get_raw(pair.lock_key) is None


async def test_holder_that_lost_its_lock_cannot_overwrite_the_next_value(pair: Pair) -> None:
    gate = asyncio.Event()
    stale_holder = Counter("old row", gate=gate)
    first = asyncio.ensure_future(pair.a.get_or_load(KEY, stale_holder))
    await stale_holder.started.wait()
    # A pause longer than the lease (GC, SIGSTOP): the lock expires under the holder.
    await pair.store.delete(pair.lock_key)
    assert await pair.b.get_or_load(KEY, Counter("new row")) == "new row"
    gate.set()
    assert await first == "old row"  # its caller still gets what it loaded...
    assert await pair.a.get(KEY) == "new row"  # ...but the fenced store refused it
    assert await pair.b.get(KEY) == "new row"


async def test_release_never_deletes_the_next_holders_lock(pair: Pair) -> None:
    gate_a, gate_b = asyncio.Event(), asyncio.Event()
    loader_a, loader_b = Counter("a", gate=gate_a), Counter("b", gate=gate_b)
    first = asyncio.ensure_future(pair.a.get_or_load(KEY, loader_a))
    await loader_a.started.wait()
    await pair.store.delete(pair.lock_key)  # A's lease ran out
    second = asyncio.ensure_future(pair.b.get_or_load(KEY, loader_b))
    await loader_b.started.wait()  # B holds the lock now
    token_b = await pair.store.get_raw(pair.lock_key) if pair.store.name == "redis" else None
    gate_a.set()
    assert await first == "a"
    # A's compare-and-delete release left B's lock alone, and A stored nothing.
    assert await pair.store.acquire_lock(pair.lock_key, "intruder", 10) is False
    if token_b is not None:
        assert await pair.store.get_raw(pair.lock_key) == token_b
    assert await pair.a.get(KEY) is None
    gate_b.set()
    assert await second == "b"
    assert await pair.a.get(KEY) == "b"


async def test_bounded_wait_then_load_itself(pair: Pair) -> None:
    # Another process holds the lock and never finishes (it hangs, or died holding it).
    assert await pair.store.acquire_lock(pair.lock_key, "other-process", 30)
    loader = Counter("loaded after waiting")
    assert await pair.b.get_or_load(KEY, loader, lock_timeout=0.05) == "loaded after waiting"
    assert loader.calls == 1
    assert pair.b.stats()["lock_waits"] == 1


async def test_bounded_wait_then_serve_what_landed_unannounced(pair: Pair) -> None:
    assert await pair.store.acquire_lock(pair.lock_key, "other-process", 30)
    loader = Counter("should not load")

    async def land_value_without_notification() -> None:
        await until(lambda: pair.b.stats()["lock_waits"] == 1)
        await pair.a.set(KEY, "landed")

    writer = asyncio.ensure_future(land_value_without_notification())
    assert await pair.b.get_or_load(KEY, loader, lock_timeout=0.3) == "landed"
    await writer
    assert loader.calls == 0


async def test_bounded_wait_then_serve_stale(pair: Pair) -> None:
    assert await pair.store.acquire_lock(pair.lock_key, "other-process", 30)
    loader = Counter("should not load")

    async def land_stale_value() -> None:
        await until(lambda: pair.b.stats()["lock_waits"] == 1)
        entry = pair.a._store.value_entry(KEY, "stale", ttl=1, stale_ttl=60)
        entry = dataclasses.replace(entry, fresh_until=entry.created_at - 1)
        await pair.a._store.write(pair.full_key, entry, await pair.a._tags.snapshot())

    writer = asyncio.ensure_future(land_stale_value())
    assert await pair.b.get_or_load(KEY, loader, lock_timeout=0.3) == "stale"
    await writer
    assert loader.calls == 0
    assert pair.b.stats()["stale"] == 1


async def test_background_refresh_skips_when_another_process_refreshes(pair: Pair) -> None:
    entry = pair.a._store.value_entry(KEY, "stale", ttl=1, stale_ttl=60)
    entry = dataclasses.replace(entry, fresh_until=entry.created_at - 1)
    await pair.a._store.write(pair.full_key, entry, await pair.a._tags.snapshot())
    assert await pair.store.acquire_lock(pair.lock_key, "other-process", 30)
    refresh = Counter("new")
    assert await pair.b.get_or_load(KEY, refresh, stale_ttl=60) == "stale"
    await pair.b._loading.drain()
    assert refresh.calls == 0  # the other process's refresh is enough
    assert pair.b.stats()["lock_waits"] == 0


async def test_distributed_lock_api(pair: Pair) -> None:
    errors: list[str] = []
    one = DistributedLock(pair.store, "test:l:x", lease=5, on_error=lambda w, e: errors.append(w))
    two = DistributedLock(pair.store, "test:l:x", lease=5, on_error=lambda w, e: errors.append(w))
    assert one.token != two.token
    assert await one.acquire() is True
    assert await two.acquire() is False
    assert await two.release() is False
    assert await one.release() is True
    assert await two.acquire() is True
    assert await two.release() is True
    assert errors == []


@pytest.mark.redis
async def test_slow_loader_outlives_its_lease_and_still_runs_once(
    request: pytest.FixtureRequest,
) -> None:
    p = await make_pair("redis", request, lock_lease=0.2)
    try:
        past_lease = asyncio.Event()
        gate = asyncio.Event()

        async def slow() -> str:
            await asyncio.sleep(0.8)  # the loader is slow: four initial leases
            past_lease.set()
            await gate.wait()
            return "slow value"

        first = asyncio.ensure_future(p.a.get_or_load(KEY, slow))
        await past_lease.wait()
        # The watchdog kept the lease alive far beyond its initial 0.2 s.
        assert await p.store.get_raw(p.lock_key) is not None
        other = Counter("second load")
        second = asyncio.ensure_future(p.b.get_or_load(KEY, other, lock_timeout=30))
        await until(lambda: p.b.stats()["lock_waits"] == 1)
        gate.set()
        assert await first == "slow value"
        assert await second == "slow value"
        assert other.calls == 0
        assert p.a.stats()["loads"] == 1
    finally:
        for c in (p.a, p.b):
            await c.stop()
            await c.backend.aclose()
        await p.store.aclose()


class CountingBackend(RedisBackend):
    """Counts round trips to Redis by operation."""

    def __init__(self, url: str) -> None:
        super().__init__(url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
        self.calls: dict[str, int] = {}

    async def _run(self, what: str, coro: Any, **options: Any) -> Any:
        self.calls[what] = self.calls.get(what, 0) + 1
        return await super()._run(what, coro, **options)

    async def _read(self, key: str) -> Any:
        # Entry reads go over the lean read connection, not through _run.
        assert self.reads is not None
        self.calls["GET"] = self.calls.get("GET", 0) + 1
        return await super()._read(key)


@pytest.mark.redis
async def test_waiters_sleep_until_notified_instead_of_polling(redis_url: str) -> None:
    holder_backend, waiter_backend = (
        RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT),
        CountingBackend(redis_url),
    )
    a = Cache(_settings(), backend=holder_backend)
    b = Cache(_settings(), backend=waiter_backend)
    try:
        gate = asyncio.Event()
        holder = Counter("v", gate=gate)
        first = asyncio.ensure_future(a.get_or_load(KEY, holder))
        await holder.started.wait()
        waiter_backend.calls = {}
        waiters = [
            asyncio.ensure_future(b.get_or_load(KEY, Counter("x"), lock_timeout=30))
            for _ in range(20)
        ]
        await until(lambda: b.stats()["lock_waits"] == 1)  # single-flight: one waiter in b
        await asyncio.sleep(0.5)  # a window in which a polling waiter would poll many times
        # Everything process b sent while waiting: one read shared by its 20 callers, one
        # lock attempt, the one-time subscription (command and confirmation), one read after
        # registering as a waiter. No polls.
        assert waiter_backend.calls == {"GET": 2, "lock": 1, "PSUBSCRIBE": 2}
        gate.set()
        assert await first == "v"
        assert await asyncio.gather(*waiters) == ["v"] * 20
        assert a.stats()["loads"] + b.stats()["loads"] == 1
        assert waiter_backend.calls["GET"] == 3  # woken: one read, and it had the value
    finally:
        for backend in (holder_backend, waiter_backend):
            await backend.aclose()


@pytest.mark.redis
async def test_round_trips_of_a_hit_and_a_locked_miss(redis_url: str) -> None:
    backend = CountingBackend(redis_url)
    async with Cache(_settings(), backend=backend) as cache:
        backend.calls = {}  # not the startup checks
        await cache.get_or_load(KEY, Counter("v"), tags=["users:42"])
        miss, backend.calls = backend.calls, {}
        await cache.get_or_load(KEY, Counter("v"), tags=["users:42"])
        hit = backend.calls
    await backend.aclose()
    # read, SET NX, re-read under the lock, tag versions, fenced store, unlock, PUBLISH.
    assert miss == {
        "GET": 2,
        "lock": 1,
        "versions": 1,
        "fenced SET": 1,
        "unlock": 1,
        "PUBLISH": 1,
    }
    assert hit == {"GET": 1}


class Deaf(MemoryBackend):
    """One shared store whose pub/sub subscriptions are refused (pub/sub down)."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribe_calls = 0

    async def subscribe(self, prefix: str, callback: Any) -> None:
        self.subscribe_calls += 1
        raise BackendError("psubscribe refused")


async def test_waiter_without_pubsub_polls_until_the_value_lands() -> None:
    # The same wait policy as the middleware's: no notifications, so the waiter reads again
    # with backoff instead of sleeping until lock_timeout runs out.
    shared = Deaf()
    a, b = (Cache(_settings(), backend=shared) for _ in range(2))
    async with a, b:
        gate = asyncio.Event()
        holder = Counter({"id": 42}, gate=gate)
        waiter_loader = Counter({"id": -1})
        first = asyncio.ensure_future(a.get_or_load(KEY, holder))
        await holder.started.wait()
        second = asyncio.ensure_future(b.get_or_load(KEY, waiter_loader, lock_timeout=60))
        await until(lambda: b.stats()["lock_waits"] == 1)
        gate.set()
        async with asyncio.timeout(10):  # found by a poll, not at the end of lock_timeout
            assert await first == {"id": 42}
            assert await second == {"id": 42}
    assert waiter_loader.calls == 0
    assert a.stats()["loads"] + b.stats()["loads"] == 1
    assert shared.subscribe_calls >= 1  # it did try to listen first
