"""The contract on Redis Cluster: the middleware, get_or_load across processes, the breaker.

The data API, tags and get_or_load tests run on the cluster through the ``cache`` fixture
(tests/conftest.py). Here:

- the middleware tests of the HTTP modules that need nothing but a ``web_cache``, collected
  again in this module with ``web_cache`` on the suite's cluster (same test bodies, so one
  behaviour, not a copy);
- two worker processes, one cold key, ``lock=True``: one load across the cluster;
- the circuit breaker opening on a paused cluster and closing once it answers.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from asgi_cache import Cache, CacheSettings
from asgi_cache.backends import ClusterBackend

from . import test_http_invalidation, test_http_middleware, test_http_semantics
from .faults import wait_until
from .http_support import make_cache
from .redis_cluster import LocalCluster
from .redis_server import BEHAVIOUR_OP_TIMEOUT
from .workers import run_workers


def _web_cache_only(module: Any) -> dict[str, Any]:
    """The async tests of ``module`` whose only argument is ``web_cache``."""
    return {
        name: test
        for name, test in vars(module).items()
        if name.startswith("test_")
        and inspect.iscoroutinefunction(test)
        and list(inspect.signature(test).parameters) == ["web_cache"]
    }


for _module in (test_http_invalidation, test_http_middleware, test_http_semantics):
    globals().update(_web_cache_only(_module))


@pytest.fixture
async def web_cache(redis_cluster: LocalCluster) -> AsyncIterator[Cache]:
    """The HTTP tests' cache, on the suite's Redis Cluster."""
    cache = make_cache(ClusterBackend(redis_cluster.url, op_timeout=BEHAVIOUR_OP_TIMEOUT))
    yield cache
    await cache.backend.aclose()


def test_the_http_tests_run_here_too() -> None:
    collected = [name for name in globals() if name.startswith("test_")]
    assert len(collected) > 20, collected


# -- get_or_load across processes ------------------------------------------------------------

WORKERS = 2
REQUESTS = 20
COUNTER = "{test-loads}:users:7"


def _worker(url: str, seed: str, barrier: Any, results: Any) -> None:
    asyncio.run(_load_in_worker(url, seed, barrier, results))


async def _load_in_worker(url: str, seed: str, barrier: Any, results: Any) -> None:
    settings = CacheSettings(
        url=url, namespace="mp", ttl_jitter=0.0, op_timeout=5.0, connect_timeout=5.0
    )
    cache = Cache(settings)
    counter = RedisCluster.from_url(seed)

    async def load() -> dict[str, Any]:
        await counter.incr(COUNTER)
        await asyncio.sleep(0.3)  # a slow query: the other worker arrives during it
        return {"id": 7}

    async with cache:
        await asyncio.gather(*(cache.get("warm:up") for _ in range(REQUESTS)))
        await asyncio.to_thread(barrier.wait)
        values = await asyncio.gather(
            *(cache.get_or_load("users:7", load, ttl=60, lock=True) for _ in range(REQUESTS))
        )
        waits = cache.stats()["lock_waits"]
    await counter.aclose()
    results.put((values, waits))


async def test_two_processes_load_one_cold_key_once(redis_cluster: LocalCluster) -> None:
    host, port = redis_cluster.startup_nodes[0]
    args = (redis_cluster.url, f"redis://{host}:{port}")
    collected = await run_workers(_worker, [args] * WORKERS)
    values = [v for batch, _ in collected for v in batch]
    assert values == [{"id": 7}] * (WORKERS * REQUESTS)
    assert int(redis_cluster.master_for(COUNTER).client().get(COUNTER) or 0) == 1
    assert sum(waits for _, waits in collected) >= 1  # the cross-process wait happened


# -- the breaker --------------------------------------------------------------------------


async def test_the_breaker_opens_on_a_paused_cluster_and_closes_when_it_answers(
    redis_cluster: LocalCluster,
) -> None:
    cache = Cache.from_url(
        redis_cluster.url,
        namespace="br",
        op_timeout=0.2,
        breaker_threshold=2,
        breaker_cooldown=0.2,
    )
    async with cache:
        assert await cache.set("users:1", {"id": 1})
        breaker = cache.breaker
        assert breaker is not None
        # Paused for 3 s (a paused node delays even the UNPAUSE of a new connection's
        # handshake): the breaker must open meanwhile and close once the pause ends.
        for node in redis_cluster.masters():
            node.client().execute_command("CLIENT", "PAUSE", 3000, "ALL")
        for _ in range(3):
            assert await cache.get("users:1") is None  # fail open, never a raise
        assert breaker.state == "open"
        skipped = breaker.snapshot()["short_circuited"]
        assert await cache.get("users:1") is None
        assert breaker.snapshot()["short_circuited"] == skipped + 1  # no I/O
        await wait_until(lambda: breaker.state == "closed", limit=20)
        assert await cache.get("users:1") == {"id": 1}
