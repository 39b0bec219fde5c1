"""The circuit breaker on its own: what counts as a failure, opening, probing, closing.

A scripted backend (memory underneath) fails on demand and counts every call that reaches
it, so "no I/O while open" is a count, not a timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from asgi_cache import (
    BackendBusyError,
    BackendError,
    BackendReplyError,
    BackendTimeoutError,
    Cache,
    CacheSettings,
    ConfigurationError,
)
from asgi_cache.backends import Backend, CircuitBreakerBackend, Dependency, MemoryBackend

from .faults import wait_until
from .redis_server import free_port


class Scripted(Backend):
    """A memory backend that raises ``error`` on demand and counts the calls it receives."""

    name = "scripted"

    def __init__(self) -> None:
        self.store = MemoryBackend()
        self.error: BaseException | None = None
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        """When set, calls wait for it before answering (to hold operations in flight)."""
        self.closed = False

    async def _enter(self, what: str) -> None:
        self.calls.append(what)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error

    async def get(self, key: str) -> bytes | None:
        await self._enter("get")
        return await self.store.get(key)

    async def get_tagged(self, key: str) -> tuple[bytes, tuple[Dependency, ...]] | None:
        await self._enter("get_tagged")
        return await self.store.get_tagged(key)

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        await self._enter("set")
        return await self.store.set(key, value, ttl, deps)

    async def delete(self, *keys: str) -> int:
        await self._enter("delete")
        return await self.store.delete(*keys)

    async def get_raw(self, key: str) -> bytes | None:
        await self._enter("get_raw")
        return await self.store.get_raw(key)

    async def set_raw(self, key: str, value: bytes, ttl: float) -> None:
        await self._enter("set_raw")
        await self.store.set_raw(key, value, ttl)

    async def versions(self, tag_keys: Sequence[str], ttl: float) -> list[str]:
        await self._enter("versions")
        return await self.store.versions(tag_keys, ttl)

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        await self._enter("invalidate")
        return await self.store.invalidate(tag_keys)

    async def delete_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        await self._enter("delete_prefix")
        return await self.store.delete_prefix(prefix, batch=batch, progress=progress)

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        await self._enter("acquire_lock")
        return await self.store.acquire_lock(key, token, ttl)

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        await self._enter("extend_lock")
        return await self.store.extend_lock(key, token, ttl)

    async def release_lock(self, key: str, token: str) -> bool:
        await self._enter("release_lock")
        return await self.store.release_lock(key, token)

    async def set_if_locked(
        self,
        key: str,
        value: bytes,
        ttl: float,
        deps: Sequence[Dependency],
        lock_key: str,
        token: str,
    ) -> bool:
        await self._enter("set_if_locked")
        return await self.store.set_if_locked(key, value, ttl, deps, lock_key, token)

    async def publish(self, channel: str) -> None:
        await self._enter("publish")
        await self.store.publish(channel)

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        await self._enter("subscribe")
        await self.store.subscribe(prefix, callback)

    async def track(self, prefixes: Sequence[str], callback: Callable[[str], None]) -> None:
        await self._enter("track")

    async def ping(self) -> float:
        await self._enter("ping")
        return 0.0

    async def info(self) -> dict[str, Any]:
        await self._enter("info")
        return await self.store.info()

    async def aclose(self) -> None:
        self.closed = True


Op = Callable[[Backend], Awaitable[Any]]
OPS: dict[str, Op] = {
    "get": lambda b: b.get("k"),
    "get_tagged": lambda b: b.get_tagged("k"),
    "set": lambda b: b.set("k", b"v", 10.0),
    "delete": lambda b: b.delete("k"),
    "get_raw": lambda b: b.get_raw("k"),
    "set_raw": lambda b: b.set_raw("k", b"v", 10.0),
    "versions": lambda b: b.versions(["t"], 10.0),
    "invalidate": lambda b: b.invalidate(["t"]),
    "delete_prefix": lambda b: b.delete_prefix("k", progress=lambda n: None),
    "acquire_lock": lambda b: b.acquire_lock("l", "me", 10.0),
    "extend_lock": lambda b: b.extend_lock("l", "me", 10.0),
    "release_lock": lambda b: b.release_lock("l", "me"),
    "set_if_locked": lambda b: b.set_if_locked("k", b"v", 10.0, [], "l", "me"),
    "publish": lambda b: b.publish("c"),
    "subscribe": lambda b: b.subscribe("c", lambda channel: None),
    "track": lambda b: b.track(["k"], lambda key: None),
    "ping": lambda b: b.ping(),
    "info": lambda b: b.info(),
}


async def trip(breaker: CircuitBreakerBackend, inner: Scripted) -> None:
    """Open ``breaker`` with ``threshold`` sequential failures."""
    inner.error = BackendError("down")
    for _ in range(breaker.threshold):
        with pytest.raises(BackendError):
            await breaker.get("k")
    assert breaker.state == "open"


def test_the_breaker_wraps_every_backend_method() -> None:
    # A method added to Backend but not wrapped here would be inherited from the protocol as
    # a stub returning None: every call would silently do nothing.
    methods = {n for n, v in vars(Backend).items() if callable(v) and not n.startswith("_")}
    missing = sorted(n for n in methods if n not in vars(CircuitBreakerBackend))
    assert not missing, f"CircuitBreakerBackend must wrap {missing} (and OPS here test them)"
    assert methods - {"aclose"} == set(OPS)


@pytest.mark.parametrize("op", OPS, ids=list(OPS))
async def test_every_operation_passes_through_closed_and_fails_fast_open(op: str) -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=2, cooldown=60)
    await OPS[op](breaker)
    assert inner.calls == [op]

    await trip(breaker, inner)
    reached = len(inner.calls)
    with pytest.raises(BackendError, match="circuit breaker open"):
        await OPS[op](breaker)
    assert len(inner.calls) == reached  # refused without touching the backend
    assert breaker.snapshot()["short_circuited"] == 1
    await breaker.aclose()


async def test_opens_after_threshold_consecutive_failures_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=3, cooldown=60)
    inner.error = BackendTimeoutError("redis GET timed out after 250 ms")
    with caplog.at_level(logging.DEBUG, logger="asgi_cache"):
        for _ in range(2):
            with pytest.raises(BackendError):
                await breaker.get("k")
        inner.error = None
        assert await breaker.get("k") is None  # a success resets the count
        inner.error = BackendTimeoutError("redis GET timed out after 250 ms")
        for _ in range(2):
            with pytest.raises(BackendError):
                await breaker.get("k")
        assert breaker.state == "closed"
        assert breaker.snapshot()["consecutive_failures"] == 2
        with pytest.raises(BackendError):
            await breaker.get("k")
    snap = breaker.snapshot()
    assert snap["state"] == "open"
    assert snap["opened"] == 1
    assert snap["transitions"] == 1
    assert snap["last_error"] == "redis GET timed out after 250 ms"
    lines = [r for r in caplog.records if "circuit breaker" in r.message]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert "closed -> open after 3 consecutive" in lines[0].message
    await breaker.aclose()


async def test_answers_that_say_no_are_not_failures() -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=2, cooldown=60)
    assert await breaker.acquire_lock("l", "a", 10.0)
    for _ in range(5):
        assert not await breaker.acquire_lock("l", "b", 10.0)  # contention
        assert not await breaker.release_lock("l", "b")  # not the holder
        assert not await breaker.set("k", b"v", 10.0, [("t", "gone")])  # a tag moved on
        assert await breaker.get("missing") is None
    assert breaker.snapshot()["consecutive_failures"] == 0
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    "error",
    [BackendReplyError("READONLY"), BackendBusyError("no pooled connection free")],
    ids=["reply-error", "pool-busy"],
)
async def test_error_replies_and_pool_waits_do_not_open_it(error: BackendError) -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=2, cooldown=60)
    inner.error = error
    for _ in range(10):
        with pytest.raises(type(error)):
            await breaker.set("k", b"v", 10.0)
    assert breaker.state == "closed"
    assert breaker.snapshot()["consecutive_failures"] == 0
    assert len(inner.calls) == 10  # every call still reached the backend


async def test_cancelled_calls_are_neither_success_nor_failure() -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=2, cooldown=60)
    inner.error = BackendError("down")
    with pytest.raises(BackendError):
        await breaker.get("k")
    inner.error = None
    inner.gate = asyncio.Event()
    task = asyncio.create_task(breaker.get("k"))
    await wait_until(lambda: len(inner.calls) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.snapshot()["consecutive_failures"] == 1  # not reset by the cancelled call


async def test_operations_failing_together_count_once() -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=3, cooldown=60)
    inner.gate = asyncio.Event()
    inner.error = BackendTimeoutError("stall")
    tasks = [asyncio.create_task(breaker.get(f"k{i}")) for i in range(50)]
    await wait_until(lambda: len(inner.calls) == 50)
    inner.gate.set()  # all 50 in-flight calls fail at once: one stall, one failure
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, BackendTimeoutError) for r in results)
    assert breaker.state == "closed"
    assert breaker.snapshot()["consecutive_failures"] == 1
    # Calls started after that failure count again: a real outage still opens it.
    for _ in range(2):
        with pytest.raises(BackendError):
            await breaker.get("k")
    assert breaker.state == "open"
    await breaker.aclose()


async def test_one_probe_per_cooldown_then_closes_when_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=1, cooldown=0.01)
    with caplog.at_level(logging.DEBUG, logger="asgi_cache"):
        await trip(breaker, inner)
        inner.gate = asyncio.Event()  # hold the probe's ping in flight
        await wait_until(lambda: breaker.state == "half_open")
        for _ in range(100):  # traffic while probing: refused, and no extra probes
            with pytest.raises(BackendError, match="circuit breaker half_open"):
                await breaker.get("k")
        assert inner.calls.count("ping") == 1
        inner.error = None
        inner.gate.set()
        await wait_until(lambda: breaker.state == "closed")
    assert await breaker.get("k") is None
    snap = breaker.snapshot()
    assert snap["transitions"] == 3  # closed -> open -> half_open -> closed
    assert snap["consecutive_failures"] == 0
    assert snap["short_circuited"] == 100
    messages = [r.message for r in caplog.records if "circuit breaker" in r.message]
    assert len(messages) == 3
    assert "half_open -> closed" in messages[-1]


async def test_a_failed_probe_reopens_and_probes_again() -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=1, cooldown=0.01)
    await trip(breaker, inner)
    inner.error = BackendError("still down")
    await wait_until(lambda: inner.calls.count("ping") >= 2)
    assert breaker.state in ("open", "half_open")
    assert breaker.snapshot()["last_error"] == "still down"
    assert breaker.snapshot()["opened"] == 1  # re-opening after a probe is not a new outage
    inner.error = None
    await wait_until(lambda: breaker.state == "closed")
    await breaker.aclose()


async def test_aclose_stops_the_probe_and_closes_the_backend() -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=1, cooldown=60)
    await trip(breaker, inner)
    probes = breaker._probes
    assert len(probes) == 1  # the probe is running
    await breaker.aclose()
    assert not probes  # cancelled
    assert inner.closed
    assert "ping" not in inner.calls


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("threshold", 0),
        ("threshold", -1),
        ("threshold", True),
        ("threshold", 2.5),
        ("cooldown", 0),
        ("cooldown", -1.0),
        ("cooldown", float("inf")),
        ("cooldown", "2"),
    ],
)
def test_bad_options_are_configuration_errors(option: str, value: Any) -> None:
    kwargs: dict[str, Any] = {option: value}
    with pytest.raises(ConfigurationError, match=f"{option}="):
        CircuitBreakerBackend(MemoryBackend(), **kwargs)


def test_settings_from_env() -> None:
    settings = CacheSettings.from_env(
        {"ASGI_CACHE_BREAKER_THRESHOLD": "7", "ASGI_CACHE_BREAKER_COOLDOWN": "0.5"}
    )
    assert settings.breaker_threshold == 7
    assert settings.breaker_cooldown == 0.5
    assert CacheSettings.from_env({"ASGI_CACHE_BREAKER_THRESHOLD": "0"}).breaker_threshold == 0


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("ASGI_CACHE_BREAKER_THRESHOLD", "-1"),
        ("ASGI_CACHE_BREAKER_THRESHOLD", "five"),
        ("ASGI_CACHE_BREAKER_COOLDOWN", "0"),
        ("ASGI_CACHE_BREAKER_COOLDOWN", "soon"),
    ],
)
def test_bad_env_values_name_the_variable(var: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{var}='{raw}' is not allowed"):
        CacheSettings.from_env({var: raw})


async def test_cache_wraps_redis_in_a_breaker_by_default() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # never connected to in this test
    cache = Cache.from_url(url, breaker_threshold=4, breaker_cooldown=1.5)
    breaker = cache.breaker
    assert breaker is not None
    assert (breaker.threshold, breaker.cooldown, breaker.name) == (4, 1.5, "redis")
    stats = cache.stats()
    assert stats["backend"] == "redis"
    assert stats["breaker"]["state"] == "closed"
    assert stats["breaker"]["transitions"] == 0
    await cache.aclose()

    assert Cache.from_url(url, breaker_threshold=0).breaker is None
    memory = Cache.from_url("memory://")
    assert memory.breaker is None
    assert "breaker" not in memory.stats()
    assert "breaker" not in await memory.health()


async def test_cache_fails_open_through_an_open_breaker() -> None:
    inner = Scripted()
    breaker = CircuitBreakerBackend(inner, threshold=2, cooldown=60)
    cache = Cache(CacheSettings(namespace="b", ttl_jitter=0.0), backend=breaker)
    async with cache:
        assert await cache.set("users:1:profile", {"n": 1})
        inner.error = BackendError("down")
        for _ in range(5):
            assert await cache.get("users:1:profile") is None
            assert await cache.set("users:1:profile", {"n": 2}) is False
        reached = len(inner.calls)
        for _ in range(20):
            assert await cache.get("users:1:profile") is None
        assert len(inner.calls) == reached
        health = await cache.health()
        assert health["status"] == "down"
        assert health["breaker"] == "open"
        assert cache.stats()["breaker"]["short_circuited"] >= 20
    await breaker.aclose()
