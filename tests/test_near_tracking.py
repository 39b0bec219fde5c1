"""The L1 near-cache in tracking mode (``l1_invalidation="tracking"``, Redis ``CLIENT TRACKING``).

Redis itself reports every change of an entry or tag-version key: writes by a *foreign* raw
client, expiry and ``FLUSHDB`` reach the L1, which pub/sub mode never hears (each case is
checked in pub/sub mode too, where the stale entry stays: the check can fail). Gaps flush
the L1 (the listener connection is killed for real); an ACL user without
``client|tracking`` falls back to pub/sub with one warning. Counts are asserted (drops,
flushes, tag checks, Redis commands), never timings; every wait is bounded only against a
hang.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from asgi_cache import Cache, ConfigurationError
from asgi_cache._near_tracking import TrackedSubscription
from asgi_cache.settings import CacheSettings

from .redis_cluster import LocalCluster
from .redis_sentinel import LocalSentinel
from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Poll ``condition`` until it holds (the deadline only bounds a hang)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.02)


def l1_cache(url: str, mode: str = "tracking", **options: Any) -> Cache:
    # Built by the runtime, as from_url/from_env would: tagged reads, pings, tracking.
    return Cache.from_url(
        url,
        namespace="near",
        ttl_jitter=0.0,
        l1_ttl=30.0,
        l1_invalidation=mode,
        op_timeout=BEHAVIOUR_OP_TIMEOUT,
        **options,
    )


def raw_client(server: RedisServer) -> redis.Redis:
    """A foreign application's client: bytes in, bytes out."""
    return redis.Redis(host="127.0.0.1", port=server.port, protocol=2, socket_timeout=5)


RAW: list[redis.Redis] = []
"""The test's foreign client (set by the `raw` fixture, which every test here uses)."""


@pytest.fixture(autouse=True)
def raw(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    name = request.node.name
    if "redis_cluster_ha" in request.fixturenames:
        server = request.getfixturevalue("redis_cluster_ha").masters()[0]
    elif "cluster" in name:
        server = request.getfixturevalue("redis_cluster").masters()[0]
    elif "sentinel" in name:
        server = request.getfixturevalue("redis_sentinel").primary
    else:
        server = request.getfixturevalue("redis_server")
    client = raw_client(server)
    RAW[:] = [client]
    yield client
    client.close()


def l1(cache: Cache, name: str) -> Any:
    stats = cache.stats()
    assert "l1" in stats
    return stats["l1"][name]  # type: ignore[literal-required]


@pytest.fixture
async def tracked(redis_url: str) -> AsyncIterator[Cache]:
    cache = l1_cache(redis_url)
    yield cache
    await cache.aclose()


@pytest.fixture(params=["tracking", "pubsub"])
async def near(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Cache]:
    cache = l1_cache(redis_url, request.param)
    yield cache
    await cache.aclose()


async def filled(cache: Cache, key: str, value: object, **options: Any) -> None:
    """Store ``key`` and read it once, so L1 holds it (after the reports of the store came
    back: a process's own writes are reported to it too, and drop what it refilled)."""
    await cache.set(key, value, ttl=60, **options)
    assert await cache.get(key) == value  # subscribes (or sets tracking up) first
    await fence(cache, RAW[0])
    await settled(cache)
    assert await cache.get(key) == value
    assert cache.near is not None
    assert f"near:d:{key}" in cache.near


async def settled(cache: Cache) -> None:
    """Wait until the tag reports of the stores so far are checked (a tag whose version
    moved drops its dependants)."""
    subscription = cache.near.subscription if cache.near is not None else None
    if isinstance(subscription, TrackedSubscription):
        await until(lambda: not subscription.checking)


async def fence(cache: Cache, raw: redis.Redis) -> None:
    """Wait until ``cache``'s L1 has applied everything Redis sent it before now.

    A raw client changes the key ``fence`` and publishes its pub/sub invalidation: whichever
    way this L1 listens, Redis delivers that after the reports of earlier writes."""
    near = cache.near
    assert near is not None
    seen = asyncio.Event()
    drop = near.drop

    def spy(*keys: str) -> None:
        drop(*keys)
        if "near:d:fence" in keys:
            seen.set()

    near.drop = spy  # type: ignore[method-assign]
    try:
        raw.set("near:d:fence", b"x")
        raw.publish("near:i:foreign:near:d:fence", b"1")
        await asyncio.wait_for(seen.wait(), timeout=20)  # a bound for a hang
    finally:
        near.drop = drop  # type: ignore[method-assign]


async def test_a_foreign_write_of_the_entry_key_drops_it_in_tracking_mode_only(
    near: Cache, raw: redis.Redis
) -> None:
    await filled(near, "k", "v")
    assert near.near is not None
    drops = l1(near, "drops")
    raw.set("near:d:k", raw.get("near:d:k") or b"")  # another application writes the key
    await fence(near, raw)
    tracking = l1(near, "invalidation") == "tracking"
    assert ("near:d:k" in near.near) is not tracking
    assert l1(near, "drops") == drops + (1 if tracking else 0)


async def test_a_foreign_change_of_a_tag_version_drops_its_dependants_in_tracking_mode_only(
    near: Cache, raw: redis.Redis
) -> None:
    raw.set("near:t:tx", "1")  # a version a foreign client can INCR
    await filled(near, "k", "v", tags=["tx"])
    await filled(near, "unrelated", "u", tags=["ty"])
    assert near.near is not None
    checks = l1(near, "tag_checks")
    raw.incr("near:t:tx")
    await fence(near, raw)
    if l1(near, "invalidation") == "pubsub":
        assert "near:d:k" in near.near  # never heard: served stale until l1_ttl
        return
    await until(lambda: l1(near, "tag_checks") > checks)
    assert "near:d:k" not in near.near
    assert "near:d:unrelated" in near.near  # precise: only the tag's dependants
    assert await near.get("k") is None  # and Redis agrees: the version moved on


async def test_an_extended_tag_expiry_drops_nothing(tracked: Cache, raw: redis.Redis) -> None:
    cache = tracked
    # A report that only extends the expiry (as stores do) keeps what recorded the version.
    await filled(cache, "k", "v", tags=["tx"])
    checks, drops = l1(cache, "tag_checks"), l1(cache, "drops")
    raw.pexpire("near:t:tx", 600_000, gt=True)
    raw.pexpire("near:t:*", 600_000, gt=True)  # the namespace tag every entry depends on
    await until(lambda: l1(cache, "tag_checks") >= checks + 2)
    assert cache.near is not None
    assert "near:d:k" in cache.near
    assert l1(cache, "drops") == drops


async def test_an_entry_that_expires_in_redis_drops_from_l1(
    tracked: Cache, raw: redis.Redis
) -> None:
    cache = tracked
    await filled(cache, "k", "v")
    raw.set("near:d:k", raw.get("near:d:k") or b"", px=300)  # same value, short life in Redis
    await until(lambda: cache.near is not None and "near:d:k" not in cache.near)
    assert await cache.get("k") == "v"  # read again: L1 holds it, Redis for 300 ms more
    drops = l1(cache, "drops")
    await until(lambda: l1(cache, "drops") > drops)  # expired in Redis: reported
    assert cache.near is not None
    assert "near:d:k" not in cache.near
    assert await cache.get("k") is None


async def test_flushdb_empties_l1(tracked: Cache, raw: redis.Redis) -> None:
    cache = tracked
    await filled(cache, "a", 1)
    await filled(cache, "b", 2)  # its store's reports (of the namespace tag) keep "a"
    assert l1(cache, "entries") == 2
    drops = l1(cache, "drops")
    raw.flushdb()
    await until(lambda: l1(cache, "entries") == 0)
    assert l1(cache, "drops") == drops + 2


def listeners(server: RedisServer) -> int:
    """How many connections to ``server`` redirect tracking to themselves."""
    return sum(c.get("redir") == c["id"] for c in server.client().client_list())


def listener_id(server: RedisServer) -> int:
    """The id of the one connection that redirects tracking to itself."""
    clients = server.client().client_list()
    ids = [int(c["id"]) for c in clients if c.get("redir") == c["id"] and "t" in c["flags"]]
    assert len(ids) == 1, ids
    return ids[0]


async def test_a_killed_listener_flushes_l1_and_it_fills_and_hears_again(
    tracked: Cache, raw: redis.Redis, redis_server: RedisServer
) -> None:
    cache = tracked
    await filled(cache, "k", "v")
    assert l1(cache, "flushes") == 1  # the first tracking set up
    raw.client_kill_filter(_id=listener_id(redis_server))
    await until(lambda: l1(cache, "flushes") == 3 and l1(cache, "subscribed"))  # lost, back
    assert l1(cache, "entries") == 0
    await filled(cache, "k", "v")  # fills resume
    drops = l1(cache, "drops")
    raw.set("near:d:k", b"foreign")  # heard on the new connection
    await until(lambda: l1(cache, "drops") > drops)
    assert cache.near is not None
    assert "near:d:k" not in cache.near


async def test_own_writes_keep_read_after_write(redis_url: str) -> None:
    cache = l1_cache(redis_url)
    for n in range(20):
        await cache.set("k", n, ttl=60, tags=["t"])
        assert await cache.get("k") == n  # its own report may drop it again: never older
    await cache.invalidate_tags("t")
    assert await cache.get("k") is None
    await cache.aclose()


async def test_a_user_without_client_tracking_falls_back_to_pubsub_with_one_warning(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = redis_server.client()
    raw.acl_setuser(
        "notrack",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-client|tracking"],
    )
    try:
        url = redis_url.replace("redis://", "redis://notrack:pw@")
        cache = l1_cache(url)
        other = l1_cache(redis_url, "pubsub")
        with caplog.at_level(logging.WARNING, logger="asgi_cache"):
            await filled(cache, "k", "v")
            await filled(cache, "j", "w")
        warnings = [r.getMessage() for r in caplog.records if "CLIENT TRACKING" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "ASGI_CACHE_L1_INVALIDATION" in warnings[0]
        assert l1(cache, "invalidation") == "pubsub"
        assert l1(cache, "subscribed")
        await other.delete("k")  # published: heard over pub/sub
        await until(lambda: cache.near is not None and "near:d:k" not in cache.near)
        await cache.aclose()
        await other.aclose()
    finally:
        raw.acl_deluser("notrack")


async def test_tracking_mode_is_reported_and_costs_no_subscription(
    redis_url: str, redis_server: RedisServer
) -> None:
    cache = l1_cache(redis_url)
    await filled(cache, "k", "v")
    assert l1(cache, "invalidation") == "tracking"
    assert l1(cache, "subscribed")
    raw = redis_server.client()
    subscribed = [c for c in raw.client_list() if int(c.get("psub", 0)) > 0]
    assert subscribed == []  # no PSUBSCRIBE on the namespace's channels
    await cache.aclose()


def test_the_setting_names_variable_value_and_choices() -> None:
    with pytest.raises(ConfigurationError) as caught:
        CacheSettings.from_env({"ASGI_CACHE_L1_INVALIDATION": "push"})
    message = str(caught.value)
    assert "ASGI_CACHE_L1_INVALIDATION" in message
    assert "'push'" in message
    assert "one of: pubsub, tracking" in message
    with pytest.raises(ConfigurationError, match="l1_invalidation"):
        CacheSettings(l1_invalidation="push")  # type: ignore[arg-type]
    assert CacheSettings.from_env({"ASGI_CACHE_L1_INVALIDATION": "Tracking"}).l1_invalidation == (
        "tracking"
    )
    assert CacheSettings().l1_invalidation == "pubsub"


async def test_on_cluster_a_foreign_write_on_every_primary_reaches_l1(
    redis_cluster: LocalCluster,
) -> None:
    cache = l1_cache(redis_cluster.url)
    keys = list(itertools.islice(redis_cluster.key_per_master(), 3))
    for key in keys:
        await cache.set(key, key, ttl=60)
        assert await cache.get(key) == key
    assert l1(cache, "invalidation") == "tracking"
    assert [listeners(m) for m in redis_cluster.masters()] == [1, 1, 1]  # one per primary
    deadline = time.monotonic() + 20
    while l1(cache, "entries") < len(keys):  # own reports came back
        assert time.monotonic() < deadline
        await settled(cache)
        for key in keys:
            assert await cache.get(key) == key
        await asyncio.sleep(0.05)
    drops = l1(cache, "drops")
    for key in keys:
        full = f"near:d:{{{key}}}"
        client = raw_client(redis_cluster.master_for(key))
        client.set(full, client.get(full) or b"")
    await until(lambda: l1(cache, "entries") == 0)
    assert l1(cache, "drops") == drops + len(keys)
    await cache.aclose()


async def test_on_cluster_the_listeners_follow_a_failover(redis_cluster_ha: LocalCluster) -> None:
    cache = l1_cache(redis_cluster_ha.url)
    key = next(redis_cluster_ha.key_per_master())
    await cache.set(key, key, ttl=60)
    assert await cache.get(key) == key
    assert l1(cache, "invalidation") == "tracking"
    flushes = l1(cache, "flushes")
    promotion = redis_cluster_ha.kill_master(key)
    # The killed primary's listener fails (a gap: L1 emptied), the slot map is asked again,
    # and a listener on the promoted replica joins the others.
    await until(lambda: listeners(promotion.promoted) == 1 and l1(cache, "subscribed"), within=30)
    assert l1(cache, "flushes") >= flushes + 2  # lost, then every primary tracked again
    assert [listeners(m) for m in redis_cluster_ha.masters()] == [1, 1, 1]
    full = f"near:d:{{{key}}}"
    deadline = time.monotonic() + 20
    while full not in cache.near:  # type: ignore[operator]
        assert time.monotonic() < deadline  # reads fail open while the client's map catches up
        await cache.get(key)
        await asyncio.sleep(0.05)
    drops = l1(cache, "drops")
    raw_client(promotion.promoted).set(full, b"foreign")
    await until(lambda: l1(cache, "drops") > drops)
    assert full not in cache.near  # type: ignore[operator]
    await cache.aclose()


async def test_on_sentinel_the_listener_follows_the_primary(redis_sentinel: LocalSentinel) -> None:
    cache = l1_cache(redis_sentinel.url)
    await filled(cache, "k", "v")
    assert l1(cache, "invalidation") == "tracking"
    assert listeners(redis_sentinel.primary) == 1
    flushes = l1(cache, "flushes")
    failover = redis_sentinel.failover()
    # The move is a gap (L1 emptied), and the listener is rebuilt on the new primary.
    await until(lambda: listeners(failover.new) == 1 and l1(cache, "subscribed"), within=30)
    assert l1(cache, "flushes") >= flushes + 1
    assert l1(cache, "entries") == 0
    RAW[:] = [raw_client(failover.new)]
    await filled(cache, "k", "v")
    drops = l1(cache, "drops")
    RAW[0].set("near:d:k", b"foreign")  # a write on the new primary reaches L1
    await until(lambda: l1(cache, "drops") > drops)
    assert cache.near is not None
    assert "near:d:k" not in cache.near
    await cache.aclose()


async def test_a_missed_pong_flushes_l1_and_fills_stop_until_tracked_again(
    own_redis: RedisServer,
) -> None:
    RAW[:] = [raw_client(own_redis)]
    cache = Cache.from_url(
        own_redis.url,
        namespace="near",
        l1_ttl=1.0,  # a ping after 0.5 s of silence
        l1_invalidation="tracking",
        op_timeout=BEHAVIOUR_OP_TIMEOUT,
    )
    await filled(cache, "k", "v")
    own_redis.pause()  # frozen: the socket stays open, nothing answers
    try:
        await until(lambda: not l1(cache, "subscribed"))
        assert l1(cache, "entries") == 0
    finally:
        own_redis.resume()
    await until(lambda: l1(cache, "subscribed"))
    assert l1(cache, "flushes") == 3  # first set up, lost, tracked again
    await filled(cache, "k", "v")
    inner = cache.backend.inner  # type: ignore[attr-defined]
    assert inner.tracking.missed_pongs == 1
    assert inner.tracking.reconnects == 1
    await cache.aclose()


@pytest.mark.parametrize("topology", ["redis_cluster", "redis_sentinel"])
async def test_cluster_and_sentinel_reads_name_their_tags(
    topology: str, request: pytest.FixtureRequest
) -> None:
    # Built from the URL, their L1 reads are tagged (as on one node): a tag invalidation in
    # another process drops only that tag's dependants.
    url = request.getfixturevalue(topology).url
    cache, other = l1_cache(url, "pubsub"), l1_cache(url, "pubsub")
    await cache.set("k", "v", ttl=60, tags=["t1"])
    await cache.set("j", "w", ttl=60, tags=["t2"])
    assert await cache.get("k") == "v"
    assert await cache.get("j") == "w"
    found = await cache.backend.get_tagged(cache.keys.data("k"))
    assert found is not None
    assert {tag for tag, _ in found[1]} == {"near:t:t1", "near:t:*"}
    assert cache.near is not None
    near = cache.near
    dropped = l1(cache, "drops")
    await other.invalidate_tags("t1")
    await until(lambda: l1(cache, "drops") > dropped)
    assert cache.keys.data("k") not in near
    assert cache.keys.data("j") in near  # precise, not every entry
    assert l1(cache, "drops") == dropped + 1
    await cache.aclose()
    await other.aclose()
