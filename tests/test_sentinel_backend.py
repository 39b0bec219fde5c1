"""The Sentinel backend on the suite's real deployment (a primary, a replica, 3 Sentinels).

The shared contract and the data API tests run on it through the ``backend`` and ``cache``
fixtures (tests/conftest.py); the middleware tests that need only a ``web_cache`` run here on
it. This module checks what only Sentinel has: discovery, following the primary after a kill
and after ``SENTINEL FAILOVER`` (whose old primary stays writable for a while), invalidations
acknowledged by the replica (or retried), replica reads, the bounded pool, and settings.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from asgi_cache import BackendBusyError, BackendError, Cache
from asgi_cache.backends import CircuitBreakerBackend, NodeAddress, SentinelBackend

from . import test_http_invalidation, test_http_middleware
from .faults import wait_until
from .http_support import make_cache
from .redis_sentinel import LocalSentinel
from .redis_server import BEHAVIOUR_OP_TIMEOUT
from .test_cluster_contract import _web_cache_only

for _module in (test_http_invalidation, test_http_middleware):
    globals().update(_web_cache_only(_module))


@pytest.fixture
async def web_cache(redis_sentinel: LocalSentinel) -> AsyncIterator[Cache]:
    """The HTTP tests' cache, on the suite's Sentinel deployment."""
    cache = make_cache(SentinelBackend(redis_sentinel.url, op_timeout=BEHAVIOUR_OP_TIMEOUT))
    yield cache
    await cache.backend.aclose()


@pytest.fixture
async def backend(redis_sentinel: LocalSentinel) -> AsyncIterator[SentinelBackend]:
    b = SentinelBackend(redis_sentinel.url, op_timeout=BEHAVIOUR_OP_TIMEOUT, check_interval=0.1)
    yield b
    await b.aclose()


async def test_a_cache_on_a_sentinel_url_finds_the_primary(redis_sentinel: LocalSentinel) -> None:
    cache = Cache.from_url(redis_sentinel.url, namespace="shop", op_timeout=BEHAVIOUR_OP_TIMEOUT)
    async with cache:
        assert isinstance(cache.backend, CircuitBreakerBackend)
        inner = cache.backend.inner
        assert isinstance(inner, SentinelBackend)
        assert not cache.keys.hash_tags  # one primary: no slots to share
        assert await cache.set("users:1:profile", {"id": 1}, tags=["users:1"])
        assert redis_sentinel.primary.client().exists("shop:d:users:1:profile") == 1
        assert await cache.get("users:1:profile") == {"id": 1}
        assert inner.primaries() == [NodeAddress(*redis_sentinel.primary.address)]
        assert inner.connection_options["protocol"] == 3
        health = await cache.health()
        assert health["status"] == "healthy", health


async def test_a_killed_primary_is_followed_to_the_promoted_replica(
    backend: SentinelBackend, redis_sentinel: LocalSentinel
) -> None:
    (v,) = await backend.versions(["ns:t:a"], 60)
    assert await backend.set("ns:d:e", b"before", 60, [("ns:t:a", v)])
    assert redis_sentinel.primary.client().execute_command("WAIT", 1, 5000) == 1
    failover = redis_sentinel.kill_primary()
    # The first calls may fail open while the pool reconnects; none raises anything else.
    value = None
    for _ in range(100):
        try:
            value = await backend.get("ns:d:e")
            break
        except BackendError:
            await asyncio.sleep(0.05)
    assert value == b"before"  # the replica had it, scripts are loaded again
    assert await backend.invalidate(["ns:t:a"]) == 1
    assert await backend.get("ns:d:e") is None
    assert failover.new.client().exists("ns:t:a") == 0
    assert backend.primaries() == [NodeAddress(*failover.new.address)]


async def test_after_sentinel_failover_writes_leave_the_old_primary(
    backend: SentinelBackend, redis_sentinel: LocalSentinel
) -> None:
    await backend.set_raw("ns:v:e", b"before", 60)
    failover = redis_sentinel.failover()
    # The old primary stays role:master for a while; the backend's check notices the move
    # and drops every pooled connection, so the next write lands on the new primary.
    await wait_until(lambda: backend.primaries() == [NodeAddress(*failover.new.address)], limit=20)
    # Within a check or two of the Sentinels agreeing, no connection is left on the old one.
    await wait_until(lambda: backend.failovers >= 1, limit=20)
    await asyncio.sleep(3 * backend.check_interval)  # every check is one interval apart
    await backend.set_raw("ns:v:e", b"after", 60)
    assert failover.new.client().get("ns:v:e") == "after"
    assert failover.old.client().get("ns:v:e") != "after"


async def test_an_invalidation_no_replica_acknowledged_fails_and_is_queued(
    redis_sentinel: LocalSentinel,
) -> None:
    cache = Cache.from_url(redis_sentinel.url, namespace="inv", op_timeout=0.5)
    async with cache:
        assert await cache.set("users:1", {"id": 1}, tags=["users:1"])
        backend = cache.backend.inner  # type: ignore[attr-defined]
        await wait_until(lambda: backend._replicas == 1, limit=10)
        (replica,) = redis_sentinel.replicas()
        assert replica.proc is not None
        os.kill(replica.proc.pid, signal.SIGSTOP)  # the replica stops acknowledging
        try:
            await cache.invalidate_tags("users:1")
            assert cache.stats()["errors"] >= 1
            # Applied on the primary all the same (never served again), and queued.
            assert await cache.get("users:1") is None
            assert len(cache._tags.queue) >= 1  # type: ignore[attr-defined]
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)


async def test_replica_reads_serve_entries_from_the_replica(
    redis_sentinel: LocalSentinel,
) -> None:
    backend = SentinelBackend(
        redis_sentinel.url + "?replica_reads=true", op_timeout=BEHAVIOUR_OP_TIMEOUT
    )
    try:
        (v,) = await backend.versions(["ns:t:a"], 60)
        assert await backend.set("ns:d:e", b"x", 60, [("ns:t:a", v)])
        primary = redis_sentinel.primary.client()
        assert primary.execute_command("WAIT", 1, 5000) == 1
        (replica,) = redis_sentinel.replicas()
        replica.client().config_resetstat()
        assert await backend.get("ns:d:e") == b"x"
        assert int(replica.client().info("commandstats")["cmdstat_get"]["calls"]) == 2
        await backend.invalidate(["ns:t:a"])
        assert await backend.get("ns:d:e") is None  # the replica had the invalidation
    finally:
        await backend.aclose()


async def test_a_full_process_is_busy_not_a_failure(redis_sentinel: LocalSentinel) -> None:
    backend = SentinelBackend(
        redis_sentinel.url, op_timeout=BEHAVIOUR_OP_TIMEOUT, max_connections=1, pool_timeout=0.01
    )
    try:
        await backend.set("ns:d:a", b"x", 30)
        redis_sentinel.primary.client().execute_command("CLIENT", "PAUSE", 1500, "ALL")
        first = asyncio.create_task(backend.get("ns:d:a"))
        await asyncio.sleep(0.05)
        with pytest.raises(BackendBusyError, match="in flight"):
            await backend.get("ns:d:b")
        assert await first == b"x"
    finally:
        await backend.aclose()


def test_the_url_must_name_sentinels() -> None:
    with pytest.raises(ValueError, match="redis\\+sentinel://"):
        SentinelBackend("redis://h:6379/0")
