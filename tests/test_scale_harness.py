"""The Cluster and Sentinel harness, and the redis-py facts the scale-out backend relies on.

These tests drive real redis-py (this machine's version) against the suite's own Redis
Cluster and Sentinel deployment (``tests/redis_cluster.py``, ``tests/redis_sentinel.py``):
if a fact stops holding after a redis-py upgrade, a test here fails and names it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from .redis_cluster import SLOTS, LocalCluster
from .redis_sentinel import SERVICE, LocalSentinel

pytestmark = pytest.mark.redis

# Explicit, as the backend will pass them: redis-py 8 defaults to RESP3 and a 5 s timeout.
CLIENT_OPTIONS: dict[str, Any] = {"protocol": 3, "socket_timeout": 2.0}
READ_SCRIPT = "return redis.call('GET', KEYS[1])"


def cluster_client(cluster: LocalCluster, **options: Any) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in cluster.startup_nodes]
    return RedisCluster(startup_nodes=nodes, **{**CLIENT_OPTIONS, **options})


MakeClient = Callable[[LocalCluster], Awaitable[RedisCluster]]


@pytest.fixture
async def cluster_of() -> AsyncIterator[MakeClient]:
    """Makes initialized asyncio ``RedisCluster`` clients, closed after the test.

    Initialized: until its first command a client has no slot map (``pubsub().ssubscribe``
    then raises ``SlotNotCoveredError``) and no command table (a cross-slot ``MGET`` then
    reaches the server, which answers ``CROSSSLOT``, instead of being refused locally).
    """
    made: list[RedisCluster] = []

    async def make(cluster: LocalCluster) -> RedisCluster:
        made.append(cluster_client(cluster))
        await made[-1].initialize()
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


async def until_ok(call: Callable[[], Awaitable[Any]], attempts: int = 50) -> tuple[Any, int]:
    """Run ``call`` until it succeeds; return its result and how many attempts failed with a
    connection-level error (anything else propagates)."""
    failures = 0
    for _ in range(attempts):
        try:
            return await call(), failures
        except (redis.ConnectionError, redis.TimeoutError):
            failures += 1
            await asyncio.sleep(0.05)
    raise AssertionError(f"still failing after {attempts} attempts")


# -- the harness itself ------------------------------------------------------------------


def test_cluster_is_built_as_asked(redis_cluster: LocalCluster) -> None:
    masters = redis_cluster.masters()
    assert len(masters) == 3
    assert {m.port for m in masters} == {p for _, p in redis_cluster.startup_nodes}
    c = masters[0].client()
    ranges = sorted((first, last) for first, last, *_ in c.execute_command("CLUSTER", "SLOTS"))
    assert ranges[0][0] == 0
    assert ranges[-1][1] == SLOTS - 1
    assert sum(last - first + 1 for first, last in ranges) == SLOTS
    assert redis_cluster.url.startswith("redis+cluster://127.0.0.1:")
    assert redis_cluster.url.count(",") == 2
    assert redis_cluster.startup_seconds > 0


def test_ha_cluster_has_a_synced_replica_per_master(redis_cluster_ha: LocalCluster) -> None:
    masters = redis_cluster_ha.masters()
    assert len(masters) == 3
    for master in masters:
        (replica,) = redis_cluster_ha.replicas_of(master)
        repl = replica.client().info("replication")
        assert repl["master_port"] == master.port
        assert repl["master_link_status"] == "up"


def test_sentinel_deployment_is_built_as_asked(redis_sentinel: LocalSentinel) -> None:
    primary = redis_sentinel.primary
    (replica,) = redis_sentinel.replicas()
    assert primary.client().info("replication")["role"] == "master"
    assert replica.client().info("replication")["master_port"] == primary.port
    for s in redis_sentinel.sentinels:
        assert s.client().sentinel_get_master_addr_by_name(SERVICE) == primary.address
    assert redis_sentinel.url.endswith(f"/{SERVICE}/0")
    assert redis_sentinel.url.count(",") == 2


def test_flush_empties_every_node(
    redis_cluster: LocalCluster, redis_sentinel: LocalSentinel
) -> None:
    for key in redis_cluster.key_per_master("flush"):
        redis_cluster.master_for(key).client().set(key, "1")
    redis_sentinel.primary.client().set("flush", "1")
    redis_cluster.flush()
    redis_sentinel.flush()
    assert [m.client().dbsize() for m in redis_cluster.masters()] == [0, 0, 0]
    assert [s.client().dbsize() for s in redis_sentinel.servers] == [0, 0]


# -- Redis Cluster facts ------------------------------------------------------------------


async def test_set_get_spreads_over_every_master(
    redis_cluster: LocalCluster, cluster_of: MakeClient
) -> None:
    rc = await cluster_of(redis_cluster)
    keys = [f"users:{i}:profile" for i in range(60)]
    for key in keys:
        assert await rc.set(key, key.upper())
    assert [await rc.get(k) for k in keys] == [k.upper().encode() for k in keys]
    counts = [m.client().dbsize() for m in redis_cluster.masters()]
    assert sum(counts) == len(keys)
    assert all(counts), counts  # every master holds some
    # The client speaks RESP3 as asked.
    info = await rc.execute_command("CLIENT", "INFO", target_nodes=rc.get_random_node())
    assert "resp=3" in info.decode().split()


async def test_cross_slot_commands_and_undeclared_script_keys_are_refused(
    redis_cluster: LocalCluster, cluster_of: MakeClient
) -> None:
    rc = await cluster_of(redis_cluster)
    a, b, _ = redis_cluster.key_per_master()
    with pytest.raises(redis.RedisClusterException, match="same key slot"):
        await rc.execute_command("MGET", a, b)
    # A script may only touch keys it declares, and only on its own node: the reason every
    # script of the cluster backend declares all its keys and stays within one slot.
    with pytest.raises(redis.ResponseError, match="non local key"):
        await rc.eval("return redis.call('GET', ARGV[1])", 1, a, b)
    # Hash tags put keys together: one slot, so multi-key commands and scripts work.
    tagged = [f"{{users:1}}:{part}" for part in ("profile", "meta", "tags")]
    for k in tagged:
        await rc.set(k, k)
    assert await rc.execute_command("MGET", *tagged) == [k.encode() for k in tagged]
    script = "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}"
    assert await rc.eval(script, 2, *tagged[:2]) == [tagged[0].encode(), tagged[1].encode()]


async def test_cluster_pipeline_runs_evalsha_across_nodes_in_one_call(
    redis_cluster: LocalCluster, cluster_of: MakeClient
) -> None:
    rc = await cluster_of(redis_cluster)
    keys = list(redis_cluster.key_per_master())
    for k in keys:
        await rc.set(k, f"v-{k}")
    sha = await rc.script_load(READ_SCRIPT)  # loaded on every master
    pipe = rc.pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("EVALSHA", sha, 1, k)
    assert await pipe.execute() == [f"v-{k}".encode() for k in keys]
    # The convenience method is refused in a cluster pipeline; execute_command is the way.
    with pytest.raises(redis.RedisClusterException, match="evalsha is blocked"):
        rc.pipeline(transaction=False).evalsha(sha, 1, keys[0])
    # A script unknown to a node answers NOSCRIPT through the pipeline (no implicit load).
    for node in redis_cluster.masters():
        node.client().script_flush()
    pipe = rc.pipeline(transaction=False)
    pipe.execute_command("EVALSHA", sha, 1, keys[0])
    with pytest.raises(redis.exceptions.NoScriptError):
        await pipe.execute()


async def test_sharded_pubsub_delivers_on_every_node(
    redis_cluster: LocalCluster, cluster_of: MakeClient
) -> None:
    rc = await cluster_of(redis_cluster)
    channels = list(redis_cluster.key_per_master("asgi-cache:inv:"))
    pubsub = rc.pubsub()
    try:
        await pubsub.ssubscribe(*channels)
        for ch in channels:
            assert await rc.spublish(ch, f"m-{ch}") == 1  # one subscriber, on the owning node
        got = await collect_messages(pubsub, len(channels))
        assert sorted(got) == sorted((ch, f"m-{ch}") for ch in channels)
        assert len({redis_cluster.master_for(ch).port for ch in channels}) == 3
    finally:
        await pubsub.aclose()


async def collect_messages(pubsub: Any, count: int, rounds: int = 200) -> list[tuple[str, str]]:
    """Read ``count`` sharded messages, tolerating connection errors from a dead node."""
    got: list[tuple[str, str]] = []
    for _ in range(rounds):
        try:
            message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.05)
        except (redis.ConnectionError, redis.TimeoutError):
            continue
        if message is not None:
            got.append((message["channel"].decode(), message["data"].decode()))
            if len(got) == count:
                return got
    raise AssertionError(f"got {got}, expected {count} messages")


async def test_cluster_pool_raises_at_once_when_full(redis_cluster: LocalCluster) -> None:
    rc = cluster_client(redis_cluster, max_connections=1)
    key = next(redis_cluster.key_per_master("pool"))
    try:
        blocked = asyncio.create_task(rc.execute_command("BLPOP", key, 30))
        # The BLPOP holds the node's only connection once the server sees it waiting.
        for _ in range(200):
            if redis_cluster.master_for(key).client().info("clients")["blocked_clients"]:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(redis.exceptions.MaxConnectionsError):
            await rc.get(key)
    finally:
        redis_cluster.master_for(key).client().lpush(key, "x")
        assert await blocked == [key.encode(), b"x"]
        await rc.aclose()


async def test_master_kill_promotes_its_replica_and_the_client_recovers(
    redis_cluster_ha: LocalCluster, cluster_of: MakeClient
) -> None:
    rc = await cluster_of(redis_cluster_ha)
    keys = list(redis_cluster_ha.key_per_master("kill"))
    for k in keys:
        await rc.set(k, f"before-{k}")
    victim_key = keys[0]
    victim = redis_cluster_ha.master_for(victim_key)
    sha = await rc.script_load(READ_SCRIPT)
    assert await rc.evalsha(sha, 1, victim_key) == f"before-{victim_key}".encode()
    assert victim.client().execute_command("WAIT", 1, 5000) == 1  # the replica has the writes
    pubsub = rc.pubsub()
    channel = f"asgi-cache:inv:{{{victim_key}}}"  # a hash tag: the victim's slot
    try:
        await pubsub.ssubscribe(channel)
        await collect_subscribed(pubsub)
        promotion = redis_cluster_ha.kill_master(victim_key)
        assert promotion.killed is victim
        assert redis_cluster_ha.role(promotion.promoted) == "master"
        assert redis_cluster_ha.master_for(victim_key) is promotion.promoted

        # The same client, built before the kill, reads and writes the moved slots.
        value, failures = await until_ok(lambda: rc.get(victim_key))
        assert value == f"before-{victim_key}".encode()  # the replica had it
        assert failures == 0  # redis-py refreshed the slot map and retried by itself
        await rc.set(victim_key, "after")
        assert promotion.promoted.client().get(victim_key) == "after"
        # SCRIPT LOAD is not replicated: the promoted replica answers NOSCRIPT, so a backend
        # must fall back to loading the script again.
        with pytest.raises(redis.exceptions.NoScriptError):
            await rc.evalsha(sha, 1, victim_key)
        for k in keys[1:]:
            assert await rc.get(k) == f"before-{k}".encode()

        # Sharded pub/sub follows the slot to its new owner.
        delivered = 0
        for _ in range(50):
            delivered = await rc.spublish(channel, "after-failover")
            if delivered:
                break
            await collect_messages_or_none(pubsub)
        assert delivered == 1
        assert await collect_messages(pubsub, 1) == [(channel, "after-failover")]
    finally:
        await pubsub.aclose()


async def collect_subscribed(pubsub: Any) -> None:
    for _ in range(100):
        message = await pubsub.get_sharded_message(timeout=0.05)
        if message is not None and message["type"] == "ssubscribe":
            return
    raise AssertionError("no ssubscribe confirmation")


async def collect_messages_or_none(pubsub: Any) -> None:
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
        await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.05)


def test_heal_restores_the_full_topology(redis_cluster_ha: LocalCluster) -> None:
    promotion = redis_cluster_ha.kill_master()
    assert not promotion.killed.running
    redis_cluster_ha.heal()
    assert promotion.killed.running
    # The old master came back as a replica of the node that took its slots.
    assert redis_cluster_ha.role(promotion.killed) == "slave"
    assert redis_cluster_ha.replicas_of(promotion.promoted) == [promotion.killed]
    assert len(redis_cluster_ha.masters()) == 3


# -- Sentinel facts -----------------------------------------------------------------------


@pytest.fixture
async def sentinel(redis_sentinel: LocalSentinel) -> AsyncIterator[Sentinel]:
    """A redis-py ``Sentinel`` on the suite's deployment; its Sentinel connections are closed
    after the test (clients from ``master_for`` are the caller's to close)."""
    async with Sentinel(
        redis_sentinel.sentinel_addresses, sentinel_kwargs=dict(CLIENT_OPTIONS), **CLIENT_OPTIONS
    ) as manager:
        yield manager


async def test_master_for_discovers_the_primary(
    redis_sentinel: LocalSentinel, sentinel: Sentinel
) -> None:
    primary = sentinel.master_for(SERVICE)
    replica = sentinel.slave_for(SERVICE)
    try:
        assert await sentinel.discover_master(SERVICE) == redis_sentinel.primary.address
        await primary.set("users:1:profile", "ada")
        assert redis_sentinel.primary.client().get("users:1:profile") == "ada"
        assert redis_sentinel.primary.client().execute_command("WAIT", 1, 5000) == 1
        assert await replica.get("users:1:profile") == b"ada"
        # No blocking pool: master_for's pool is a plain ConnectionPool subclass.
        pool = primary.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert not hasattr(pool, "timeout")  # BlockingConnectionPool's wait setting
    finally:
        await primary.aclose()
        await replica.aclose()


@pytest.fixture
async def primary_client(sentinel: Sentinel) -> AsyncIterator[Any]:
    """``master_for`` the deployment's service, closed after the test."""
    client = sentinel.master_for(SERVICE)
    yield client
    await client.aclose()


async def test_kill_primary_fails_over_and_master_for_reconnects(
    redis_sentinel: LocalSentinel, primary_client: Any
) -> None:
    await primary_client.set("k", "before")
    sha = await primary_client.script_load(READ_SCRIPT)
    assert redis_sentinel.primary.client().execute_command("WAIT", 1, 5000) == 1
    failover = redis_sentinel.kill_primary()
    assert redis_sentinel.primary is failover.new
    assert failover.new is not failover.old
    # The client built before the failover asks the Sentinels again on reconnect.
    value, failures = await until_ok(lambda: primary_client.get("k"))
    assert value == b"before"
    assert failures <= 1  # the pooled connection to the dead primary fails once
    await primary_client.set("k", "after")
    assert failover.new.client().get("k") == "after"
    with pytest.raises(redis.exceptions.NoScriptError):  # scripts are not replicated
        await primary_client.evalsha(sha, 1, "k")


async def test_sentinel_failover_leaves_the_old_primary_writable_for_a_while(
    redis_sentinel: LocalSentinel, sentinel: Sentinel, primary_client: Any
) -> None:
    await primary_client.set("k", "before")
    failover = redis_sentinel.failover()
    assert await sentinel.discover_master(SERVICE) == failover.new.address
    # SENTINEL FAILOVER promotes the replica but the old primary stays role:master until
    # Sentinel converts it (about 8 s later): a pooled connection still writes there and
    # the write is lost when the old primary resyncs. A backend must re-check the primary
    # (discover_master) rather than trust its pooled connections.
    assert failover.old.client().info("replication")["role"] == "master"
    await primary_client.set("k", "to-the-old-primary")
    assert failover.old.client().get("k") == "to-the-old-primary"
    assert failover.new.client().get("k") == "before"
    # A fresh connection goes to the new primary.
    await primary_client.connection_pool.disconnect()
    await primary_client.set("k", "after")
    assert failover.new.client().get("k") == "after"
