"""The parts of stampede protection on their own: single-flight, watchdog, notifier."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest

from asgi_cache import BackendError, Cache, CacheSettings
from asgi_cache._flights import SingleFlight
from asgi_cache._notify import Notifier
from asgi_cache.backends import MemoryBackend, RedisBackend
from asgi_cache.locking import DistributedLock

from .redis_server import BEHAVIOUR_OP_TIMEOUT
from .test_loading_get_or_load import Counter, until


async def test_single_flight_survives_a_cancelled_caller() -> None:
    flights = SingleFlight()
    gate = asyncio.Event()
    loader = Counter("v", gate=gate)
    first = asyncio.ensure_future(flights.run("k", loader))
    second = asyncio.ensure_future(flights.run("k", loader))
    await loader.started.wait()
    first.cancel()  # the client that started the load went away
    gate.set()
    assert await second == "v"
    assert loader.calls == 1
    assert not flights.in_flight("k")


async def test_single_flight_exception_without_callers_is_not_left_unretrieved() -> None:
    flights = SingleFlight()

    async def boom() -> None:
        raise RuntimeError("x")

    task = flights.start("k", boom)
    await asyncio.gather(task, return_exceptions=True)
    assert not flights.in_flight("k")


async def test_watchdog_extends_the_lease_and_notices_a_lost_lock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend()
    errors: list[str] = []
    lock = DistributedLock(backend, "ns:l:k", lease=0.3, on_error=lambda w, e: errors.append(w))
    assert await lock.acquire()
    async with lock.held():  # the watchdog runs while the block does
        await asyncio.sleep(1.0)  # more than three leases pass (time passing, not ordering)
        assert await backend.acquire_lock("ns:l:k", "other", 1) is False  # still held
        await backend.delete("ns:l:k")  # the lock is taken away (expired under a pause)
        with caplog.at_level(logging.WARNING, logger="asgi_cache"):
            await until(lambda: lock.lost)
    assert "lost the lock" in caplog.text
    assert await lock.release() is False
    assert errors == []


class FlakyLocks(MemoryBackend):
    """Lock extension and subscription fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.extend_failures = 0
        self.subscribe_calls = 0
        self.subscribe_down = True

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        if self.extend_failures:
            self.extend_failures -= 1
            raise BackendError("extend timed out")
        return await super().extend_lock(key, token, ttl)

    async def release_lock(self, key: str, token: str) -> bool:
        raise BackendError("unlock timed out")

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        self.subscribe_calls += 1
        if self.subscribe_down:
            raise BackendError("psubscribe refused")
        await super().subscribe(prefix, callback)


async def test_watchdog_keeps_trying_through_backend_errors() -> None:
    backend = FlakyLocks()
    backend.extend_failures = 2
    errors: list[str] = []
    lock = DistributedLock(backend, "ns:l:k", lease=0.06, on_error=lambda w, e: errors.append(w))
    assert await lock.acquire()
    async with lock.held():
        await until(lambda: backend.extend_failures == 0 and len(errors) == 2)
        assert errors == ["lock extend", "lock extend"]
        assert not lock.lost
    assert errors[-1] == "unlock"  # released at the end: the unlock failed, reported
    assert await lock.release() is False  # the unlock failed: reported, not raised
    assert errors[-1] == "unlock"


async def test_notifier_retries_a_failed_subscription_after_a_pause() -> None:
    backend = FlakyLocks()
    patient = Notifier("ns:n:", retry_after=3600)
    assert await patient.subscribe(backend) is False
    assert await patient.subscribe(backend) is False  # inside the back-off: not asked again
    assert backend.subscribe_calls == 1
    notifier = Notifier("ns:n:", retry_after=0)
    assert await notifier.subscribe(backend) is False
    backend.subscribe_down = False
    assert await notifier.subscribe(backend) is True  # the back-off passed: asked again
    assert await notifier.subscribe(backend) is True  # already subscribed: no call
    assert backend.subscribe_calls == 3
    with notifier.waiter("ns:n:a") as woken:
        await backend.publish("ns:n:b")  # another key: not woken
        assert not woken.done()
        await backend.publish("ns:n:a")
        assert woken.done()


async def test_failing_unlock_is_counted_and_the_value_still_served() -> None:
    backend = FlakyLocks()
    async with Cache(CacheSettings(ttl_jitter=0), backend=backend) as cache:
        assert await cache.get_or_load("k:1:x", Counter("v")) == "v"
        assert cache.stats()["errors"] == 1  # the unlock; the lease expires on its own
        assert await cache.get("k:1:x") == "v"


async def test_closing_the_cache_cancels_background_refreshes() -> None:
    cache = Cache(CacheSettings(ttl_jitter=0))
    gate = asyncio.Event()
    refresh = Counter("new", gate=gate)
    async with cache:
        await cache.get_or_load("k:1:x", Counter("old"), ttl=60)
        assert await cache.get_or_load("k:1:x", refresh, early_refresh=1e12) == "old"
        await refresh.started.wait()
    assert not cache._loading._background


@pytest.mark.redis
async def test_redis_subscription_recovers_after_a_restart(own_redis: Any) -> None:
    listener = RedisBackend(own_redis.url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    publisher = RedisBackend(own_redis.url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    got: list[str] = []
    try:
        await listener.subscribe("ns:n:", got.append)
        await listener.subscribe("ns:n:", got.append)  # a second caller: no second PSUBSCRIBE
        await publisher.publish("ns:n:a")
        await until(lambda: got == ["ns:n:a"])
        own_redis.stop()
        own_redis.start()
        # The reader reconnects and resubscribes by itself; publish until it hears again.
        async with asyncio.timeout(10):
            while "ns:n:b" not in got:
                with contextlib.suppress(BackendError):
                    await publisher.publish("ns:n:b")
                await asyncio.sleep(0.05)
        await publisher.publish("other:n:c")  # outside the prefix: not delivered
        await publisher.publish("ns:n:d")
        await until(lambda: "ns:n:d" in got)
        assert "other:n:c" not in got
    finally:
        await listener.aclose()
        await publisher.aclose()


async def test_fakeredis_backend_delivers_notifications() -> None:
    server = fakeredis.FakeServer()
    listener = RedisBackend(client=fakeredis.FakeAsyncRedis(server=server), owns_client=True)
    publisher = RedisBackend(client=fakeredis.FakeAsyncRedis(server=server), owns_client=True)
    got: list[str] = []
    try:
        await listener.subscribe("ns:n:", got.append)
        await publisher.publish("ns:n:x")
        await until(lambda: got == ["ns:n:x"])
    finally:
        await listener.aclose()
        await publisher.aclose()


async def test_released_lock_wakes_waiters_even_when_unlock_fails() -> None:
    cache = Cache(CacheSettings(namespace="lk"), backend=MemoryBackend())
    woke: list[str] = []
    await cache.backend.subscribe(cache.keys.notify(""), woke.append)
    lock = cache._store.locks.lock("lk:d:k")
    assert lock.key == "lk:l:lk:d:k"
    assert await lock.acquire()
    assert await lock.release() is True
    assert woke == ["lk:n:lk:d:k"]

    class Broken(MemoryBackend):
        async def release_lock(self, key: str, token: str) -> bool:
            raise BackendError("unlock failed")

        async def publish(self, channel: str) -> None:
            raise BackendError("publish failed")

    errors: list[str] = []
    broken = DistributedLock(
        Broken(), "k", lease=1, on_error=lambda what, exc: errors.append(what), notify="n"
    )
    assert await broken.release() is False
    assert errors == ["unlock", "notify"]
