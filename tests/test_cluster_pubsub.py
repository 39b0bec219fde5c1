"""L1 invalidation and lock wake-ups over sharded pub/sub on the suite's Redis Cluster.

Two caches on two cluster backends stand for two processes (each backend has its own
subscriber connections). The messages go on the bus channels of
``asgi_cache/backends/_sharded.py``: one ``SPUBLISH`` each, on one master, never a classic
``PUBLISH`` (which Redis Cluster broadcasts to every node); and after a master fails over,
the subscriptions follow its slots to the promoted replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgi_cache import Cache, CacheSettings
from asgi_cache.backends import ClusterBackend
from asgi_cache.backends._sharded import BUS, bus_channel

from .redis_cluster import LocalCluster
from .redis_server import BEHAVIOUR_OP_TIMEOUT
from .test_lock_distributed import Pair, test_waiter_gets_the_holders_value_without_loading
from .test_near_cache import message_seen

__all__ = ["test_waiter_gets_the_holders_value_without_loading"]  # collected here on cluster


def l1_cache(cluster: LocalCluster) -> Cache:
    settings = CacheSettings(namespace="near", ttl_jitter=0.0, l1_ttl=30.0)
    return Cache(settings, backend=ClusterBackend(cluster.url, op_timeout=BEHAVIOUR_OP_TIMEOUT))


@pytest.fixture
async def pair(redis_cluster: LocalCluster) -> AsyncIterator[Pair]:
    """Two caches and a third backend on the cluster, for the lock tests."""
    backends = [ClusterBackend(redis_cluster.url, op_timeout=BEHAVIOUR_OP_TIMEOUT) for _ in "abc"]
    settings = CacheSettings(namespace="test", ttl_jitter=0.0)
    a, b = Cache(settings, backend=backends[0]), Cache(settings, backend=backends[1])
    await a.start()
    await b.start()
    yield Pair(a, b, backends[2])
    for c in (a, b):
        await c._loading.drain()
        await c.stop()
    for backend in backends:
        await backend.aclose()


def publishes(cluster: LocalCluster, nodes: list[Any] | None = None) -> dict[str, int]:
    """``PUBLISH`` and ``SPUBLISH`` calls over the masters (``INFO commandstats``)."""
    out = {"publish": 0, "spublish": 0}
    for node in nodes or cluster.masters():
        stats = node.client().info("commandstats")
        for command in out:
            out[command] += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    return out


async def test_bus_channels_spread_over_every_master(redis_cluster: LocalCluster) -> None:
    owners = {redis_cluster.master_for(channel).port for channel in BUS}
    assert len(owners) == 3
    assert bus_channel("near:i:") in BUS


async def test_another_process_drops_its_l1_over_sharded_pubsub(
    redis_cluster: LocalCluster,
) -> None:
    near, other = l1_cache(redis_cluster), l1_cache(redis_cluster)
    try:
        await other.set("k", "old", ttl=60, tags=["t"])
        assert await near.get("k") == "old"  # near subscribes, then fills its L1
        assert near.near is not None
        assert len(near.near) == 1
        for node in redis_cluster.masters():
            node.client().config_resetstat()
        seen = message_seen(near, near.keys.tag("t"))  # the L1 drops what the tag covers
        await other.invalidate_tags("t")
        await asyncio.wait_for(seen.wait(), timeout=20)  # a bound for a hang, not a timing
        assert len(near.near) == 0
        assert await near.get("k") is None
        counts = publishes(redis_cluster)
        assert counts["publish"] == 0
        assert counts["spublish"] >= 1
    finally:
        for cache in (near, other):
            await cache.aclose()
            await cache.backend.aclose()


async def test_subscriptions_follow_a_failover(redis_cluster_ha: LocalCluster) -> None:
    near, other = l1_cache(redis_cluster_ha), l1_cache(redis_cluster_ha)
    try:
        sent: list[str] = []
        publish = other.backend.publish

        async def spy(channel: str) -> None:
            sent.append(channel)
            await publish(channel)

        other.backend.publish = spy  # type: ignore[method-assign]
        await other.set("k", "old", ttl=60)
        assert await near.get("k") == "old"  # subscribed
        (channel,) = sent  # the key's L1 drop
        promotion = redis_cluster_ha.kill_master(bus_channel(channel))
        # After the promotion a message for that bus channel reaches near again: the other
        # cache repeats its store (each store publishes the key's L1 drop) until one lands.
        seen = message_seen(near, near.keys.data("k"))
        async with asyncio.timeout(30):
            while not seen.is_set():
                await other.set("k", "new", ttl=60)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(seen.wait()), timeout=0.5)
        assert await near.get("k") == "new"
        assert near.near is not None
        assert near.near.subscription.flushes >= 1  # it heard the loss: its L1 was emptied
        assert publishes(redis_cluster_ha, [promotion.promoted])["spublish"] >= 1
    finally:
        for cache in (near, other):
            await cache.aclose()
            await cache.backend.aclose()
