"""Callers cancelled during Redis calls (a client disconnecting mid-request) leak nothing.

Replies are delayed by the proxy so that cancellations land while commands are in flight: the
command was sent, its reply not yet read. A connection in that state must be dropped, never
handed to the next caller, or that caller would read someone else's reply. So after many
rounds of cancellations every read returns its own key's value, and the number of
connections the server holds stays within the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgi_cache import Cache, CacheSettings

from .faults import FAULT_SETTINGS, HANG_DETECTOR, wait_until
from .redis_server import RedisServer
from .tcp_proxy import TcpProxy
from .test_faults_load import clients

pytestmark = pytest.mark.redis

KEYS = 40
POOL = 16


@pytest.fixture
async def slow_cache(own_redis: RedisServer) -> AsyncIterator[tuple[Cache, TcpProxy]]:
    proxy = TcpProxy(own_redis.port)
    await proxy.start()
    settings = CacheSettings(
        url=proxy.url,
        **{
            **FAULT_SETTINGS,
            "op_timeout": 2.0,
            "pool_timeout": 2.0,
            "connect_timeout": 2.0,
            "max_connections": POOL,
        },
    )
    cache = Cache(settings)
    async with cache:
        for i in range(KEYS):
            assert await cache.set(f"items:{i}:v", {"i": i})
        yield cache, proxy
    await proxy.close()


def expected(i: int) -> dict[str, Any]:
    return {"i": i % KEYS}


async def test_cancelled_reads_leak_no_connection_and_mix_no_reply(
    own_redis: RedisServer, slow_cache: tuple[Cache, TcpProxy]
) -> None:
    cache, proxy = slow_cache
    proxy.latency = 0.02
    held: list[int] = []
    for _ in range(6):
        sent = proxy.commands
        tasks = [asyncio.create_task(cache.get(f"items:{i % KEYS}:v")) for i in range(POOL)]
        # Wait until every command reached the proxy (in flight, reply held back), then cancel
        # half of the callers.
        await wait_until(lambda sent=sent: proxy.commands >= sent + POOL)  # type: ignore[misc]
        # With batch_reads, reads queued behind the one in flight are sent together once it
        # returns, so its caller may have finished by now: a finished task ignores cancel().
        done = [task.done() for task in tasks]
        for task in tasks[::2]:
            task.cancel()
        async with asyncio.timeout(HANG_DETECTOR):
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, result in enumerate(results):
            if i % 2 == 0 and not done[i]:
                assert isinstance(result, asyncio.CancelledError)
            else:
                assert result == expected(i)
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) >= POOL // 2 - 1
        held.append(clients(own_redis))
    assert max(held) <= POOL + 1  # the pool's connections (plus none leaked)
    proxy.latency = 0.0
    await wait_until(lambda: clients(own_redis) <= POOL)
    results = await asyncio.gather(*(cache.get(f"items:{i % KEYS}:v") for i in range(KEYS)))
    assert results == [expected(i) for i in range(KEYS)]
    assert cache.stats()["errors"] == 0  # a cancellation is not a backend failure
    assert cache.stats()["breaker"]["consecutive_failures"] == 0


async def test_caller_timeouts_during_writes_and_reads_keep_replies_in_order(
    own_redis: RedisServer, slow_cache: tuple[Cache, TcpProxy]
) -> None:
    cache, proxy = slow_cache
    proxy.latency = 0.03

    async def impatient(i: int) -> None:
        # Shorter than the proxy's delay: the caller gives up mid-command, as an ASGI server
        # does when the client disconnects.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await cache.set(f"items:{i}:v", {"i": -1})

    for _ in range(3):
        await asyncio.gather(*(impatient(i) for i in range(POOL)))
    proxy.latency = 0.0
    # Each impatient write may or may not have landed (it was cancelled after sending), but
    # every later read returns a value written under its own key, never another key's.
    results = await asyncio.gather(*(cache.get(f"items:{i}:v") for i in range(KEYS)))
    for i, result in enumerate(results):
        assert result in ({"i": i}, {"i": -1}), (i, result)
    await wait_until(lambda: clients(own_redis) <= POOL)
    assert cache.stats()["errors"] == 0
