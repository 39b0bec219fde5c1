"""The cluster backend on the suite's real 3-master Redis Cluster: what differs from one node.

The shared contract (tests/test_backend_contract.py and the data API tests) runs on the
cluster through the ``backend`` and ``cache`` fixtures; this module checks what only a
cluster has: keys spread over every master with the entry and its lock in one slot, the read
that checks tag versions client-side in two round trips, stores that race an invalidation,
``invalidate`` as one UNLINK per tag, ``delete_prefix`` on every primary, scripts lost by a
node, the semaphore that makes a full process busy, and the settings path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from asgi_cache import BackendBusyError, Cache
from asgi_cache.backends import CircuitBreakerBackend, ClusterBackend, NodeAddress, _cluster_io
from asgi_cache.backends._wire import encode_deps_header

from .redis_cluster import LocalCluster
from .redis_server import BEHAVIOUR_OP_TIMEOUT

OP_TIMEOUT = BEHAVIOUR_OP_TIMEOUT


@pytest.fixture
async def backend(redis_cluster: LocalCluster) -> AsyncIterator[ClusterBackend]:
    b = ClusterBackend(redis_cluster.url, op_timeout=OP_TIMEOUT)
    yield b
    await b.aclose()


def commands(cluster: LocalCluster) -> dict[int, dict[str, int]]:
    """Per master port: command -> calls (``INFO commandstats``), the INFO itself excluded."""
    out: dict[int, dict[str, int]] = {}
    for node in cluster.masters():
        stats = node.client().info("commandstats")
        out[node.port] = {
            name.removeprefix("cmdstat_"): int(v["calls"])
            for name, v in stats.items()
            if name not in ("cmdstat_info", "cmdstat_config|resetstat")
        }
    return out


def reset_stats(cluster: LocalCluster) -> None:
    for node in cluster.masters():
        node.client().config_resetstat()


def total(stats: dict[int, dict[str, int]], command: str) -> int:
    return sum(s.get(command, 0) for s in stats.values())


async def test_a_cache_on_a_cluster_url_spreads_entries_and_keeps_each_lock_in_its_slot(
    redis_cluster: LocalCluster,
) -> None:
    cache = Cache.from_url(redis_cluster.url, namespace="shop", op_timeout=OP_TIMEOUT)
    async with cache:
        assert isinstance(cache.backend, CircuitBreakerBackend)
        assert isinstance(cache.backend.inner, ClusterBackend)
        assert cache.keys.hash_tags
        for i in range(30):
            assert await cache.set(f"users:{i}:profile", {"id": i}, tags=[f"users:{i}"])
        assert await cache.get("users:7:profile") == {"id": 7}
        # The caller's key appears verbatim, inside a hash tag.
        full = cache.keys.data("users:7:profile")
        assert full == "shop:d:{users:7:profile}"
        assert cache.keys.user_key(full) == "users:7:profile"
        lock = cache.keys.lock(full)
        owner = redis_cluster.master_for(full)
        assert owner.client().exists(full) == 1
        assert redis_cluster.master_for(lock) is owner
        assert redis_cluster.master_for(cache.keys.notify(full)) is owner
        # Entries spread over every master (tag keys have slots of their own).
        assert all(m.client().dbsize() for m in redis_cluster.masters())
        loaded = await cache.get_or_load(
            "users:99:profile", lambda: asyncio.sleep(0, {"id": 99}), lock=True
        )
        assert loaded == {"id": 99}
        assert await cache.get("users:99:profile") == {"id": 99}  # the fenced store landed
        health = await cache.health()
        assert health["status"] == "healthy", health


async def test_a_read_checks_every_tag_in_one_more_round_trip(
    backend: ClusterBackend, redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    tags = [f"ns:t:{k}" for k in redis_cluster.key_per_master("tag")]
    assert len({redis_cluster.master_for(t).port for t in tags}) == 3  # one per master
    versions = await backend.versions(tags, 30)
    assert await backend.set("ns:d:{e}", b"payload", 30, list(zip(tags, versions, strict=True)))
    sent: list[list[str]] = []
    real = _cluster_io.pipeline

    async def counting(client: RedisCluster, cmds: Any) -> list[Any]:
        sent.append([c[0] for c in cmds])
        return await real(client, cmds)

    monkeypatch.setattr(_cluster_io, "pipeline", counting)
    reset_stats(redis_cluster)
    assert await backend.get("ns:d:{e}") == b"payload"
    # Two pipelines: the entry, then its three tags (one per master, sent at once).
    assert sent == [["GET"], ["GET", "GET", "GET"]]
    stats = commands(redis_cluster)
    assert total(stats, "get") == 4
    assert all(s.get("get", 0) >= 1 for s in stats.values())
    assert total(stats, "evalsha") == 0  # no script on the read path


async def test_a_read_after_an_invalidation_is_a_miss_and_unlinks_the_entry(
    backend: ClusterBackend, redis_cluster: LocalCluster
) -> None:
    (v,) = await backend.versions(["ns:t:a"], 30)
    assert await backend.set("ns:d:{e}", b"x", 30, [("ns:t:a", v)])
    assert await backend.invalidate(["ns:t:a"]) == 1
    assert await backend.get("ns:d:{e}") is None
    assert redis_cluster.master_for("ns:d:{e}").client().exists("ns:d:{e}") == 0


async def test_a_store_racing_an_invalidation_leaves_nothing_that_is_served(
    backend: ClusterBackend, redis_cluster: LocalCluster
) -> None:
    # The race a cluster allows: the store checked its tag, then the invalidation landed,
    # then the store wrote. Written here by hand: an entry recording a version now gone.
    (v,) = await backend.versions(["ns:t:a"], 30)
    await backend.invalidate(["ns:t:a"])
    stale = encode_deps_header([("ns:t:a", v)]) + b"loaded-before"
    node = redis_cluster.master_for("ns:d:{e}").client()
    node.set("ns:d:{e}", stale, px=30_000)
    assert await backend.get("ns:d:{e}") is None  # never served
    assert node.exists("ns:d:{e}") == 0  # and dropped by the read that found it
    # A value written after the read found it stale stays (the unlink compares the bytes).
    node.set("ns:d:{e}", stale, px=30_000)
    result = await _cluster_io.pipeline(
        backend.client,
        [("EVAL", _cluster_io.UNLINK_IF_SAME.text, 1, "ns:d:{e}", b"other bytes")],
    )
    assert result == [0]
    assert node.exists("ns:d:{e}") == 1


async def test_invalidate_is_one_unlink_per_tag_and_prefix_deletes_scan_every_primary(
    backend: ClusterBackend, redis_cluster: LocalCluster
) -> None:
    tags = [f"ns:t:users:{i}" for i in range(12)]
    await backend.versions(tags, 30)
    for i in range(40):
        await backend.set(f"ns:d:{{users:{i}}}", b"x", 30)
    await backend.set("ns:d:{orders:1}", b"x", 30)
    reset_stats(redis_cluster)
    assert await backend.invalidate(tags) == 12
    stats = commands(redis_cluster)
    assert total(stats, "unlink") == 12
    assert total(stats, "scan") == 0
    reset_stats(redis_cluster)
    assert await backend.delete_prefix("ns:d:{users:", batch=7) == 40
    stats = commands(redis_cluster)
    assert all(s.get("scan", 0) >= 1 for s in stats.values())  # every primary scanned
    assert await backend.get("ns:d:{orders:1}") == b"x"
    assert await backend.delete("ns:d:{orders:1}", "ns:d:{missing}", "ns:d:{x}") == 1


async def test_scripts_lost_by_the_nodes_are_loaded_again(
    backend: ClusterBackend, redis_cluster: LocalCluster
) -> None:
    (v,) = await backend.versions(["ns:t:a"], 30)
    for node in redis_cluster.masters():
        node.client().script_flush()
    both = await backend.versions(["ns:t:a", "ns:t:b"], 30)
    assert both[0] == v
    assert await backend.versions(["ns:t:b"], 30) == both[1:]
    for node in redis_cluster.masters():
        node.client().script_flush()
    assert await backend.set("ns:d:{e}", b"x", 30, [("ns:t:a", v)])
    assert await backend.acquire_lock("ns:l:ns:d:{e}", "tok", 30)
    for node in redis_cluster.masters():
        node.client().script_flush()
    assert await backend.extend_lock("ns:l:ns:d:{e}", "tok", 30)
    assert await backend.set_if_locked("ns:d:{e}", b"y", 30, [], "ns:l:ns:d:{e}", "tok")
    assert await backend.set_if_locked("ns:d:{e}", b"z", 30, [], "ns:l:ns:d:{e}", "other") is False
    assert await backend.get("ns:d:{e}") == b"y"
    assert await backend.release_lock("ns:l:ns:d:{e}", "tok")


async def test_a_full_process_is_busy_at_once_not_a_failure(redis_cluster: LocalCluster) -> None:
    backend = ClusterBackend(
        redis_cluster.url, op_timeout=OP_TIMEOUT, max_connections=1, pool_timeout=0.01
    )
    try:
        await backend.set("ns:d:{a}", b"x", 30)
        owner = redis_cluster.master_for("ns:d:{a}").client()
        owner.execute_command("CLIENT", "PAUSE", 1500, "ALL")  # the first read hangs
        first = asyncio.create_task(backend.get("ns:d:{a}"))
        await asyncio.sleep(0.05)
        with pytest.raises(BackendBusyError, match="in flight"):
            await backend.get("ns:d:{b}")
        owner.execute_command("CLIENT", "UNPAUSE")
        assert await first == b"x"
        assert await backend.get("ns:d:{a}") == b"x"  # the slot came back
    finally:
        await backend.aclose()


async def test_publish_reaches_a_subscriber_and_the_primaries_are_listed(
    backend: ClusterBackend, redis_cluster: LocalCluster
) -> None:
    got: list[str] = []
    await backend.subscribe("ns:n:", got.append)
    await backend.publish("ns:n:ns:d:{users:1}")
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == ["ns:n:ns:d:{users:1}"]
    assert sorted(backend.primaries()) == sorted(
        NodeAddress(*m.address) for m in redis_cluster.masters()
    )
    options = backend.connection_options
    assert options["protocol"] == 3
    assert "socket_timeout" in options
    info = await backend.info()
    assert info["topology"] == "cluster"
    assert info["primaries"] == 3
    assert info["used_memory"] > 0
