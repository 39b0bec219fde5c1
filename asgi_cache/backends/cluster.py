"""``redis+cluster://``, ``rediss+cluster://``: the Redis Cluster backend (redis-py asyncio).

Same [`Backend`][asgi_cache.backends.Backend] contract as one Redis node, on a cluster whose
slots are spread over several masters. Redis Cluster refuses a script that touches a key it
does not declare, or keys in two slots, so this backend only runs single-slot scripts
(`_scripts`) and the cache builds its keys with hash tags
(`KeySpace` with ``hash_tags``): an entry, its lock, its wake-up
channel and its hit-for-pass marker share one slot; each tag key is a slot of its own.

Cost per operation (a pipeline sends to every node it touches at once, one round trip):

- ``get``: ``GET`` of the entry, then one pipeline reading every tag version it records
  (grouped by node by redis-py), checked here; concurrent gets share both round trips
  (``batch_reads``). Two round trips where one node needs one.
- ``set``: one pipeline of `CHECK_TAG_SCRIPT` (one per
  tag: still current? then extended), then the ``SET`` (fenced: the lock script).
- ``versions``: one pipeline, one script per tag; ``invalidate``: one pipeline, one
  ``UNLINK`` per tag: O(tags), whatever the cluster's size.
- ``delete_prefix``: ``SCAN`` on every primary, ``UNLINK`` per slot.
- ``publish``: one ``SPUBLISH`` on one of 16 sharded bus channels; ``subscribe``: one
  connection per master holding bus channels, following them across failovers
  (`_sharded`).

Race freedom (DESIGN.md, "Invalidation") rests on the read, as on one node: an entry is
served only if every tag it records still holds the recorded version *when the read checks
it*, and a version is never reused, so an entry loaded before an invalidation is never served
after it. What differs from one node, precisely:

- the read sees the entry and its tags a round trip apart, not at one instant: an
  invalidation landing in between makes it a miss (as if it came just before the read);
- a store checks its tags, then writes: an invalidation landing in between lets the store
  write an entry that no read will serve (its tag moved on); the first read that finds it
  unlinks it (`UNLINK_IF_SAME_SCRIPT`, which leaves a
  value written meanwhile alone), otherwise it expires. On one node the store refuses it.

A semaphore bounds the operations in flight in this process to ``max_connections`` (each
holds at most one connection per node): redis-py's per-node pool raises at once when full,
so without it a burst would fail instead of waiting; with it, an operation that finds no
slot free within ``pool_timeout`` fails with [`BackendBusyError`][asgi_cache.BackendBusyError] (fail
open, not counted by the circuit breaker), as on one node. ``MOVED``/``ASK`` redirections and slot
map refreshes after a failover are redis-py's: an operation caught in a failover fails open
within ``op_timeout``, never with a 5xx. Errors are mapped at one boundary,
`_errors.run_mapped`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster

from .._exceptions import ConfigurationError
from .._urls import UrlKind, parse_url
from ._admission import Admission
from ._cluster_io import (
    CHECK_TAG,
    EXTEND,
    FENCED_SET,
    RELEASE,
    VERSIONS,
    pipeline,
    read_entries,
    run_script,
    run_scripts,
)
from ._commands import PlainCommands, decode_versions
from ._connect import check_budgets, connection_options
from ._errors import RoundTripSpan, ms, run_mapped
from ._pubsub import glob_escape
from ._redis_streams import ClusterStreams
from ._sharded import ShardedSubscriber
from ._tracking import NodeAddress, TrackingListener, node_connection
from ._wire import encode_deps_header
from .base import Backend, Dependency
from .batching import ReadBatcher

_PUBSUB_CONNECTIONS = 2
"""Connections per node beyond ``max_connections``: the pub/sub connections borrow from the
node's pool, and must not take an operation's place."""


class ClusterBackend(PlainCommands, Backend):
    """Entries in a Redis Cluster, through redis-py's ``RedisCluster`` (one pool per node).

    Args:
        url: ``redis+cluster://`` or ``rediss+cluster://`` URL (any nodes as seeds).
        client: An existing ``RedisCluster`` to use instead of building one from ``url``;
            closed by `aclose` only if ``owns_client``.
        op_timeout: Budget in seconds of one operation, waiting for a slot included.
        connect_timeout: Budget in seconds for opening a connection.
        max_connections: Operations in flight at once in this process (and the pool size
            of each node).
        pool_timeout: Longest wait in seconds for an operation slot.
        batch_reads: Send concurrent `get` calls together (two pipelines for all).
        tagged_reads: Make `get_tagged` name the dependencies of each entry (read from the
            dependency header the read decodes anyway; the L1 near-cache indexes by them).
        ping_interval: Ping the ``CLIENT TRACKING`` connections after this many quiet
            seconds (a pong missing as long again counts as lost); 30 s when ``None``.

    Raises:
        ConfigurationError: ``url`` is not a cluster URL, a timeout is not finite seconds > 0
            (``pool_timeout``: >= 0) or ``max_connections`` is not a whole number > 0.
    """

    name = "redis-cluster"
    in_process = False
    hash_tags = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: RedisCluster | None = None,
        owns_client: bool | None = None,
        op_timeout: float = 0.25,
        connect_timeout: float = 0.5,
        max_connections: int = 64,
        pool_timeout: float = 0.05,
        batch_reads: bool = True,
        tagged_reads: bool = False,
        ping_interval: float | None = None,
    ) -> None:
        check_budgets(
            op_timeout=op_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            max_connections=max_connections,
        )
        self.op_timeout = op_timeout
        self.round_trip_span: RoundTripSpan | None = None
        """Wraps each round trip in a tracing span (``cache.instrument(spans=True)``)."""
        self.pool_timeout = pool_timeout
        self._connection_options: dict[str, Any] = {}
        if client is None:
            parsed = parse_url(url, name="url")
            if parsed.kind is not UrlKind.CLUSTER:
                raise ConfigurationError(
                    f"url={parsed.masked!r} is not allowed: expected a redis+cluster:// or "
                    "rediss+cluster:// URL"
                )
            self._connection_options = connection_options(
                parsed, op_timeout=op_timeout, connect_timeout=connect_timeout
            )
            client = RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in parsed.hosts],
                max_connections=max_connections + _PUBSUB_CONNECTIONS,
                # Serve the slots that have a master while another master fails over,
                # instead of refusing the whole slot map.
                require_full_coverage=False,
                **self._connection_options,
            )
            owns_client = True if owns_client is None else owns_client
        self.url = url
        self.client = client
        self._owns_client = bool(owns_client)
        self._admission = Admission(self.name, limit=max_connections, wait=pool_timeout)
        self.read_batcher: ReadBatcher | None = None
        """Batches concurrent `get` calls (``None`` when ``batch_reads`` is off)."""
        if batch_reads:
            self.read_batcher = ReadBatcher(self._read_one, self._read_many, timeout=op_timeout)
        self._subscriber = ShardedSubscriber(client, self._run)
        self._tagged = tagged_reads
        self.tracking = TrackingListener(
            connect=node_connection(lambda a: client.get_node(a.host, a.port)),
            primaries=self._tracked_primaries,
            ping_interval=ping_interval,
            setup_budget=connect_timeout + 2 * op_timeout,
            name=self.name,
        )
        """The ``CLIENT TRACKING`` listeners (one per primary), started by `track`."""
        self.streams = ClusterStreams(client, self._run, op_timeout=op_timeout)
        """Write-behind's streams on this cluster (`asgi_cache.write_behind`)."""

    # -- the boundary --------------------------------------------------------------------------

    async def _run(
        self, what: str, coro: Any, *, bounded: bool = True, budget: float | None = None
    ) -> Any:
        budget = self.op_timeout if budget is None else budget
        admitted = self._admission.run(coro)
        return await run_mapped(
            self.name, what, admitted, budget=budget, bounded=bounded, span=self.round_trip_span
        )

    # -- reads ---------------------------------------------------------------------------------

    async def _read_one(self, key: str) -> Any:
        (result,) = await read_entries(self.client, [key], tagged=self._tagged)
        if isinstance(result, BaseException):
            raise result
        return result

    async def _read_many(self, keys: Sequence[str]) -> list[Any]:
        return await read_entries(self.client, keys, tagged=self._tagged)

    async def _read(self, key: str) -> Any:
        batcher = self.read_batcher
        if batcher is not None:
            return await self._run("GET", batcher.read(key), bounded=False)
        return await self._run("GET", self._read_one(key))

    async def get(self, key: str) -> bytes | None:
        raw = await self._read(key)
        if isinstance(raw, tuple):  # tagged: (entry, tag keys)
            raw = raw[0]
        return raw or None

    async def get_tagged(self, key: str) -> tuple[bytes, tuple[Dependency, ...]] | None:
        raw = await self._read(key)
        if not raw:
            return None
        return raw if isinstance(raw, tuple) else (raw, ())

    # -- writes --------------------------------------------------------------------------------

    async def _tags_current(self, deps: Sequence[Dependency], ttl: float) -> bool:
        if not deps:
            return True
        checks = await run_scripts(self.client, CHECK_TAG, [(t, v, ms(ttl)) for t, v in deps])
        return all(int(c) == 1 for c in checks)

    async def _store(
        self,
        key: str,
        value: bytes,
        ttl: float,
        deps: Sequence[Dependency],
        lock: tuple[str, str] | None = None,
    ) -> bool:
        if not await self._tags_current(deps, ttl):
            return False
        payload = encode_deps_header(deps) + value
        if lock is None:
            return bool(await self.client.set(key, payload, px=ms(ttl)))
        lock_key, token = lock
        fenced = run_script(self.client, FENCED_SET, [key, lock_key], [payload, ms(ttl), token])
        return bool(await fenced)

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        return bool(await self._run("SET", self._store(key, value, ttl, deps)))

    async def set_if_locked(
        self,
        key: str,
        value: bytes,
        ttl: float,
        deps: Sequence[Dependency],
        lock_key: str,
        token: str,
    ) -> bool:
        call = self._store(key, value, ttl, deps, (lock_key, token))
        return bool(await self._run("fenced SET", call))

    async def versions(self, tag_keys: Sequence[str], ttl: float) -> list[str]:
        if not tag_keys:
            return []
        calls = [(t, ms(ttl), os.urandom(8).hex()) for t in tag_keys]
        out = await self._run("versions", run_scripts(self.client, VERSIONS, calls))
        return decode_versions([v[0] for v in out])  # one reply (a list of one) per tag

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        if not tag_keys:
            return 0

        async def run() -> int:
            results = await pipeline(self.client, [("UNLINK", t) for t in tag_keys])
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            return sum(int(n) for n in results)

        return int(await self._run("invalidate", run(), budget=budget))

    async def delete_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        pattern = glob_escape(prefix) + "*"
        count = 0
        for node in self.primaries_nodes():
            cursor: int = 0
            while True:
                scan = self.client.execute_command(
                    "SCAN", cursor, "MATCH", pattern, "COUNT", batch, target_nodes=node
                )
                cursors, keys = await self._run("SCAN", scan)
                # redis-py's cluster SCAN reply names each node's cursor: {node: cursor}.
                cursor = next(iter(cursors.values())) if isinstance(cursors, dict) else cursors
                if keys:
                    count += int(await self._run("UNLINK", self.client.unlink(*keys)))
                if progress is not None:
                    progress(count)
                if int(cursor) == 0:
                    break
        return count

    # -- locks ---------------------------------------------------------------------------------

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        call = run_script(self.client, EXTEND, [key], [token, ms(ttl)])
        return bool(await self._run("lock extend", call))

    async def release_lock(self, key: str, token: str) -> bool:
        return bool(await self._run("unlock", run_script(self.client, RELEASE, [key], [token])))

    # -- pub/sub, health -----------------------------------------------------------------------

    async def publish(self, channel: str) -> None:
        await self._subscriber.publish(channel)

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        await self._subscriber.subscribe(prefix, callback)

    async def track(self, prefixes: Sequence[str], callback: Callable[[str], None]) -> None:
        await self.tracking.start(prefixes, callback)

    async def _tracked_primaries(self, refresh: bool) -> list[NodeAddress]:
        # A listener sends no data commands, so nothing else refreshes the slot map after a
        # failover it noticed first: ask the cluster again.
        if refresh or not self.client.get_primaries():
            await self.client.nodes_manager.initialize()
        return self.primaries()

    async def ping(self) -> float:
        start = time.perf_counter()
        await self._run("PING", self.client.ping(target_nodes=RedisCluster.PRIMARIES))
        return time.perf_counter() - start

    async def info(self) -> dict[str, Any]:
        every = RedisCluster.PRIMARIES
        server = await self._run("INFO", self.client.info("server", target_nodes=every))
        memory = await self._run("INFO", self.client.info("memory", target_nodes=every))
        servers = list(_per_node(server).values())
        memories = list(_per_node(memory).values())
        policies = sorted({str(m.get("maxmemory_policy")) for m in memories})
        return {
            "backend": "redis",
            "topology": "cluster",
            "primaries": len(servers),
            # The oldest version, the whole memory, the smallest limit: what bounds the cache.
            "version": min((str(s.get("redis_version")) for s in servers), default=None),
            "used_memory": sum(int(m.get("used_memory", 0)) for m in memories),
            "maxmemory": min((int(m.get("maxmemory", 0)) for m in memories), default=0),
            "maxmemory_policy": policies[0] if len(policies) == 1 else ",".join(policies),
        }

    # -- the nodes -----------------------------------------------------------------------------

    def primaries_nodes(self) -> list[ClusterNode]:
        """redis-py's nodes of the current primaries (the client's slot map)."""
        return list(self.client.get_primaries())

    def primaries(self) -> list[NodeAddress]:
        """The address of every primary, as this client's slot map has it now (refreshed by
        redis-py on ``MOVED`` and after a failover); empty before the first operation.

        With [`connection_options`][asgi_cache.backends.ClusterBackend.connection_options], what a
        feature that needs a connection of its own per primary (a ``CLIENT TRACKING`` listener)
        connects with."""
        return [NodeAddress(n.host, int(n.port)) for n in self.client.get_primaries()]

    @property
    def connection_options(self) -> dict[str, Any]:
        """The redis-py connection keyword arguments of every node (credentials, TLS,
        ``protocol``, timeouts), as built from the URL; empty for a client passed in."""
        return dict(self._connection_options)

    async def aclose(self) -> None:
        await self._subscriber.aclose()
        await self.tracking.aclose()
        if self.read_batcher is not None:
            await self.read_batcher.aclose()
        if self._owns_client:
            await self.client.aclose()


def _per_node(reply: Any) -> dict[str, dict[str, Any]]:
    """A reply of every primary, by node name (one primary answers with a bare reply)."""
    if isinstance(reply, dict) and all(isinstance(v, dict) for v in reply.values()):
        return reply
    return {"": reply}
