"""Read-after-write: an unsafe request's invalidation has a budget of its own.

The cause of a stale read seen once under load: the invalidation a PUT makes before its
response starts shared the 0.25 s per-operation budget (and the circuit breaker) with every
read. When the writer's event loop is starved (CPU contention) or its Redis path is slow, the
invalidation timed out, or was skipped by a breaker that slow reads had opened, and went to
the retry queue, while the other worker, whose Redis path was fine, kept serving the entry
the PUT replaced. Now it gets ``invalidation_timeout`` (default 1 s), is tried even while the
breaker is open, and an attempt that timed out is repeated within that budget.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_cache import BackendError, BackendTimeoutError, Cache, CacheSettings, ConfigurationError
from asgi_cache.backends import CircuitBreakerBackend, MemoryBackend

from .http_support import uvicorn_worker, worker_environment
from .redis_server import RedisServer
from .tcp_proxy import TcpProxy


class Slow(MemoryBackend):
    """A memory backend whose invalidations fail as told, recording the budget given."""

    def __init__(self, failures: Sequence[BaseException]) -> None:
        super().__init__()
        self.failures = list(failures)
        self.budgets: list[float | None] = []

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        self.budgets.append(budget)
        if self.failures:
            raise self.failures.pop(0)
        return await super().invalidate(tag_keys, budget=budget)


async def test_an_urgent_invalidation_retries_timeouts_within_its_budget() -> None:
    slow = Slow([BackendTimeoutError("slow"), BackendTimeoutError("slow")])
    cache = Cache(CacheSettings(namespace="raw"), backend=slow)
    async with cache:
        await cache.set("users:1", "old", tags=["users:1"])
        await cache._store.tags.invalidate("users:1", budget=5.0)
        value = await cache.get("users:1")
        stats = cache.stats()
    assert value is None  # it landed on the third attempt
    assert len(slow.budgets) == 3
    assert all(b is not None and 0 < b <= 5.0 for b in slow.budgets)
    assert (stats["errors"], stats["pending_invalidations"]) == (0, 0)


async def test_a_down_backend_is_not_retried_within_the_budget() -> None:
    # Refused, not slow: one attempt, then the retry queue (a write does not wait the budget).
    slow = Slow([BackendError("refused")] * 50)
    cache = Cache(CacheSettings(namespace="raw"), backend=slow)
    async with cache:
        await cache._store.tags.invalidate("users:1", budget=5.0)
        stats = cache.stats()
        slow.failures.clear()
        assert await cache._store.tags.drain()
    assert len(slow.budgets) >= 2  # the urgent attempt, then the queue's retry
    assert slow.budgets[0] is not None
    assert (stats["errors"], stats["pending_invalidations"]) == (1, 1)


async def test_an_urgent_invalidation_goes_through_an_open_breaker() -> None:
    inner = Slow([])
    breaker = CircuitBreakerBackend(inner, threshold=1, cooldown=60)
    breaker._failure(BackendError("reads timed out"), breaker._epoch)  # opened by reads
    assert breaker.snapshot()["state"] == "open"
    with pytest.raises(BackendError, match="circuit breaker open"):
        await breaker.invalidate(["t:a"])
    assert await breaker.invalidate(["t:a"], budget=1.0) == 0
    assert inner.budgets == [1.0]
    await breaker.aclose()


def test_the_budget_is_a_validated_setting() -> None:
    assert (
        CacheSettings.from_env({"ASGI_CACHE_INVALIDATION_TIMEOUT": "2.5"}).invalidation_timeout
        == 2.5
    )
    with pytest.raises(ConfigurationError, match="ASGI_CACHE_INVALIDATION_TIMEOUT") as raised:
        CacheSettings.from_env({"ASGI_CACHE_INVALIDATION_TIMEOUT": "0"})
    assert "'0'" in str(raised.value)
    with pytest.raises(ConfigurationError, match="invalidation_timeout"):
        CacheSettings(invalidation_timeout=float("nan"))


async def test_read_after_write_holds_with_two_workers_under_cpu_contention(
    redis_url: str,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two uvicorn workers on one Redis, a process burning a core. Worker "slow" reaches
    # Redis through a proxy that holds every reply 50 ms, over its 20 ms per-operation
    # budget: the state a starved or distant writer is in (its reads all time out and its
    # breaker opens). It takes every PUT; GETs go to both. Before invalidations had a budget
    # of their own, every PUT's invalidation was queued and the other worker served the old
    # name until the queue got through (never, here): 2 stale reads per round.
    worker_env = worker_environment(redis_url, tmp_path, monkeypatch)
    proxy = TcpProxy(redis_server.port)
    await proxy.start()
    proxy.latency = 0.05
    slow_env = {**worker_env, "ASGI_CACHE_URL": proxy.url, "ASGI_CACHE_OP_TIMEOUT": "0.02"}
    burner = await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
    stale: list[tuple[int, str, str]] = []
    hits = 0
    rounds = 12
    try:
        with ExitStack() as stack:
            # Started from a thread: the proxy serves the slow worker's start-up meanwhile.
            slow = await asyncio.to_thread(stack.enter_context, uvicorn_worker(slow_env))
            fast = await asyncio.to_thread(stack.enter_context, uvicorn_worker(worker_env))
            async with httpx.AsyncClient(headers={"host": "shop.test"}, timeout=60) as client:

                async def read(base: str, round_: int) -> Any:
                    response = await client.get(f"{base}/users/1")
                    name = response.json()["name"]
                    if name != f"v{round_}":
                        stale.append((round_, base, name))
                    return response

                await client.get(f"{fast}/users/1")
                for i in range(1, rounds + 1):
                    put = await client.put(f"{slow}/users/1", params={"name": f"v{i}"})
                    assert put.status_code == 200
                    answers = [await read(fast, i), await read(fast, i), await read(slow, i)]
                    hits += sum(r.headers["x-cache"] == "HIT" for r in answers)
    finally:
        burner.kill()
        await burner.wait()
        await proxy.close()
    assert stale == []
    assert hits >= rounds  # the fast worker served from its cache between the writes
