"""One cache, several event loops (issue 12, item 5).

A cache object often outlives the loop it was first used on: two ``asyncio.run`` calls, a
task runner with a loop per job, pytest's loops per test. These tests use the cache from
plain synchronous test functions that start loops themselves, on the suite's real Redis,
and check that it keeps working (values, tag invalidation, get_or_load, the L1) with no
raw ``RuntimeError`` and no unclosed-connection warning (warnings are errors in this suite),
and that two loops running at once get the clear :class:`EventLoopError`.
"""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
import redis

from asgi_cache import Cache, CacheError, EventLoopError

pytestmark = pytest.mark.redis


def _clients(url: str) -> int:
    """How many client connections the test's Redis has (the test's own one included)."""
    with redis.Redis.from_url(url) as client:
        return len(client.client_list())


@pytest.fixture
def url(redis_url: str) -> str:
    return redis_url


def test_asyncio_run_twice_keeps_working_and_closes_on_each_loop(url: str) -> None:
    cache = Cache.from_url(url, op_timeout=5.0, namespace="loops1")
    before = _clients(url)
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    async def first() -> None:
        assert await cache.set("users:1", {"n": 1}, tags=["users"])
        assert await cache.get("users:1") == {"n": 1}
        assert await cache.get_or_load("users:2", load, tags=["users"]) == 1

    async def second() -> None:
        # A new loop: the connections of the first were closed when it shut down; these
        # calls reconnect instead of failing with "attached to a different loop".
        assert await cache.get("users:1") == {"n": 1}
        assert await cache.get_or_load("users:2", load, tags=["users"]) == 1  # a hit
        await cache.invalidate_tags("users")
        assert await cache.get("users:1") is None
        assert await cache.get_or_load("users:2", load, tags=["users"]) == 2

    asyncio.run(first())
    # The guard closed the cache on the loop's shutdown: no connection of ours is left open.
    assert _clients(url) == before
    asyncio.run(second())
    assert _clients(url) == before
    assert loads == [1, 1]
    assert cache.stats()["errors"] == 0


def test_a_loop_closed_without_cancelling_its_tasks_is_abandoned(url: str) -> None:
    cache = Cache.from_url(url, op_timeout=5.0, namespace="loops2")
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(cache.set("k", 1))
    # Closed by hand without cancelling the pending guard: nothing closed the connections.
    loop.close()

    async def again() -> object:
        return await cache.get("k")

    # The abandoned connection is dropped unclosed (its loop is gone): redis-py says so
    # when it is collected. The cache itself reconnects and answers.
    with pytest.warns(ResourceWarning):
        answers = asyncio.run(again()), gc.collect()
    assert answers[0] == 1
    assert cache.stats()["errors"] == 0


def test_two_running_loops_get_a_clear_error(url: str) -> None:
    cache = Cache.from_url(url, op_timeout=5.0, namespace="loops3")
    started, finish = threading.Event(), threading.Event()

    async def hold() -> None:
        await cache.set("k", 1)
        started.set()
        # The loop keeps running (a thread's loop serving requests) until the test is done.
        await asyncio.to_thread(finish.wait)
        await cache.aclose()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert started.wait(10)

        async def other() -> object:
            return await cache.get("k")

        with pytest.raises(EventLoopError, match="one Cache per event loop") as info:
            asyncio.run(other())
        assert isinstance(info.value, CacheError)
    finally:
        finish.set()
        thread.join(10)
    # Once the first loop is done with it, the cache works on a new one.
    assert asyncio.run(other()) == 1


def test_the_l1_starts_empty_on_a_new_loop(url: str) -> None:
    writer = Cache.from_url(url, op_timeout=5.0, namespace="loops4")
    reader = Cache.from_url(url, op_timeout=5.0, namespace="loops4", l1_ttl=60.0)

    async def read() -> object:
        return await reader.get("k")

    async def write(value: int) -> None:
        await writer.set("k", value)
        await writer.aclose()

    asyncio.run(write(1))
    assert asyncio.run(read()) == 1
    # While no loop runs, the reader hears no invalidation: its L1 must not answer from
    # before (the guard cleared it on the loop's shutdown).
    asyncio.run(write(2))
    assert asyncio.run(read()) == 2


async def test_pytest_loops_one_cache_per_module_is_fine_across_tests(url: str) -> None:
    # Here inside pytest-asyncio's loop: the same cache object as a plain test would hold.
    cache = Cache.from_url(url, op_timeout=5.0, namespace="loops5")
    assert await cache.set("k", 1)
    assert await cache.get("k") == 1
    await cache.aclose()
    # aclose() unbinds; the next use binds again on the same loop.
    assert await cache.get("k") == 1
    await cache.aclose()
