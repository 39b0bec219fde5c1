"""The L1 near-cache stays coherent when its subscription breaks.

L1 is emptied when the subscription is first made, when the subscriber connection is found
lost (a socket error, or a pong missing for a ping interval of ``l1_ttl / 2``) and when it
is confirmed again after a reconnect; it is not filled while invalidations are not heard.
The faults are real: the suite's own Redis kills the subscriber connection (``CLIENT KILL
TYPE pubsub``) or is frozen (``SIGSTOP``) so a ping goes unanswered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from asgi_cache import Cache
from asgi_cache.backends.base import SUBSCRIPTION_LOST, SUBSCRIPTION_RESTORED

from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer
from .test_near_cache import l1_cache, message_seen
from .test_near_precise import entry, near_cache


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Poll ``condition`` until it holds (the deadline only bounds a hang)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.02)


def coherent(url: str, l1_ttl: float = 30.0) -> Cache:
    # Built by the runtime, as from_url/from_env would: tagged reads and subscriber pings.
    return Cache.from_url(
        url, namespace="near", ttl_jitter=0.0, l1_ttl=l1_ttl, op_timeout=BEHAVIOUR_OP_TIMEOUT
    )


@pytest.fixture
async def near(redis_url: str) -> AsyncIterator[Cache]:
    cache = coherent(redis_url)
    yield cache
    await cache.aclose()


def l1_count(cache: Cache, name: str) -> int:
    stats = cache.stats()
    assert "l1" in stats
    return int(stats["l1"][name])  # type: ignore[literal-required]


async def test_the_first_subscription_flushes_what_l1_held(near: Cache) -> None:
    assert near.near is not None
    near.near.put("near:d:k", entry(b"forged"), (), near.near.generation)  # heard by nobody
    await near.set("k", "real", ttl=60)
    assert await near.get("k") == "real"  # subscribed first, which emptied L1
    assert l1_count(near, "flushes") == 1
    assert l1_count(near, "subscribed") == 1


async def test_a_killed_subscriber_flushes_l1_and_hears_again_after_reconnect(
    near: Cache, redis_url: str, redis_server: RedisServer
) -> None:
    other = l1_cache(redis_url)
    await near.set("a", "old", ttl=60, tags=["ta"])
    await near.set("unrelated", 1, ttl=60)
    assert await near.get("a") == "old"
    assert await near.get("unrelated") == 1
    assert near.near is not None
    assert len(near.near) == 2
    flushes = l1_count(near, "flushes")
    killed = redis_server.client().client_kill_filter(_type="pubsub")
    assert killed == 1  # the subscriber of `near` (other has not subscribed yet)
    # Whatever was published while the connection was down is gone: the publish below may or
    # may not reach `near`, and either way it must not serve "old" once it hears again.
    await other.invalidate_tags("ta")
    l1 = near.near
    await until(lambda: l1_count(near, "flushes") > flushes and l1.subscription.live)
    assert "near:d:unrelated" not in near.near  # emptied, not only the invalidated key
    assert await near.get("a") is None
    # Heard again: fills resume and a later invalidation reaches this L1.
    assert await near.get("unrelated") == 1
    assert len(near.near) == 1
    seen = message_seen(near, "near:t:tu")
    await near.set("u", 2, ttl=60, tags=["tu"])
    assert await near.get("u") == 2
    await other.invalidate_tags("tu")
    await asyncio.wait_for(seen.wait(), timeout=10)  # a bound for a hang, not a timing assert
    assert "near:d:u" not in near.near
    assert "near:d:unrelated" in near.near
    await other.aclose()
    await other.backend.aclose()


async def test_a_missed_pong_flushes_l1_and_stops_fills_until_confirmed_again(
    redis_url: str, redis_server: RedisServer
) -> None:
    cache = coherent(redis_url, l1_ttl=1.0)  # a ping after 0.5 s of silence
    await cache.set("k", 1, ttl=60)
    assert await cache.get("k") == 1
    assert cache.near is not None
    assert len(cache.near) == 1
    redis_server.pause()  # frozen: the socket stays open, nothing answers
    try:
        await until(lambda: l1_count(cache, "subscribed") == 0)
        assert len(cache.near) == 0
    finally:
        redis_server.resume()
    await until(lambda: l1_count(cache, "subscribed") == 1)
    assert await cache.get("k") == 1
    assert len(cache.near) == 1  # filled again once heard again
    assert l1_count(cache, "flushes") == 3  # first subscription, lost, confirmed again
    await cache.aclose()


def test_a_read_in_flight_across_a_lost_subscription_is_not_admitted() -> None:
    near = near_cache()
    subscription = near.subscription
    subscription.live = True
    started = near.generation
    subscription._deliver(SUBSCRIPTION_LOST)
    assert subscription.live is False
    assert not near.put("ns:d:k", entry(), ("ns:t:*",), started)
    started = near.generation
    subscription._deliver(SUBSCRIPTION_RESTORED)
    assert subscription.live is True
    assert not near.put("ns:d:k", entry(), ("ns:t:*",), started)  # raced the flush too
    assert near.put("ns:d:k", entry(), ("ns:t:*",), near.generation)
    assert subscription.flushes == 2
