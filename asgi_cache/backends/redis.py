"""``redis://``, ``rediss://``, ``unix://``: the Redis backend (redis-py asyncio, hiredis).

Every operation runs under a time budget (``op_timeout``) and a bounded wait for a pooled
connection (``pool_timeout``); any redis-py error, socket error or timeout is raised as
[`BackendError`][asgi_cache.BackendError], so the cache above can fail open.

Needs Redis >= 7.0 (`MIN_REDIS_VERSION`): the scripts (`_scripts`) extend tag keys with
``PEXPIRE ... GT``. The bytes of an entry are laid out by `_wire` (a dependency header, then
the entry), so one script checks the tag versions in the same round trip as the read.

Cost per operation on one Redis node: ``get`` one EVALSHA (reads the entry and its tag
versions; with ``batch_reads``, pipelined on one lean connection, `_read_conn`, or with TLS
the gets of concurrent requests share one pipeline, `asgi_cache.backends.batching`), ``set``
one EVALSHA, ``versions`` one EVALSHA,
``invalidate`` one DEL/UNLINK.
``publish`` is one PUBLISH; every ``subscribe`` of a backend shares one pub/sub connection
(one PSUBSCRIBE per prefix) read by one task, which reconnects and resubscribes after a fault
(`_pubsub`).
The scripts read tag keys named inside the entry, which a single Redis node allows; Redis
Cluster refuses keys a script does not declare, so `cluster` checks tag versions client-side
instead.

Errors are mapped at one boundary, `RedisBackend._run` (`_errors.run_mapped`, shared with the
cluster backend), to [`BackendError`][asgi_cache.BackendError] and its subclasses, raised ``from``
the redis-py error (or the timeout) so the cause stays in the traceback.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from ._commands import PlainCommands, decode_versions
from ._connect import check_budgets
from ._errors import MAPPED, RoundTripSpan, mapped, ms, run_mapped
from ._pubsub import Subscriber, glob_escape
from ._read_conn import ReadConnection, lean_target
from ._redis_streams import RedisStreams
from ._scripts import (
    EXTEND_LOCK_SCRIPT,
    FENCED_SET_SCRIPT,
    GET_SCRIPT,
    GET_TAGGED_SCRIPT,
    RELEASE_LOCK_SCRIPT,
    SET_SCRIPT,
    VERSIONS_SCRIPT,
)
from ._tracking import NodeAddress, TrackingListener, pool_connection
from ._wire import decode_deps_header, encode_deps_header
from .base import Backend, Dependency
from .batching import ReadBatcher

MIN_REDIS_VERSION: Final = (7, 0)
"""The oldest Redis the scripts run on: they extend tag keys with ``PEXPIRE ... GT`` (7.0)."""


def version_problem(version: object) -> str | None:
    """Why the Redis ``version`` (``INFO server``'s ``redis_version``) cannot serve, if it cannot.

    Returns ``None`` for 7.0 and later, and for a version that does not parse (a fork that
    reports its own numbering is given the benefit of the doubt).
    """
    try:
        parts = tuple(int(p) for p in str(version).split(".")[:2])
    except ValueError:
        return None
    if len(parts) < 2 or parts >= MIN_REDIS_VERSION:
        return None
    return (
        f"Redis {version} is older than 7.0, which the cache's scripts need (PEXPIRE ... GT): "
        "every store will fail and nothing will be cached"
    )


class RedisBackend(PlainCommands, Backend):
    """Entries in Redis, through a bounded redis-py connection pool.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        client: An existing ``redis.asyncio.Redis`` (for example fakeredis) to use instead of
            building one from ``url``; it is not closed by `aclose` unless ``owns_client``.
        op_timeout: Budget in seconds of one operation, waiting for a connection included.
        connect_timeout: Budget in seconds for opening a connection.
        max_connections: Pool size.
        pool_timeout: Longest wait in seconds for a free connection.
        batch_reads: Send concurrent `get` calls together as one pipeline, on a
            connection kept for reads (see `asgi_cache.backends.batching`).
        tagged_reads: Read with `GET_TAGGED_SCRIPT`, so `get_tagged` names the dependencies of
            each entry (the L1 near-cache indexes its entries by them); a few bytes more per
            reply.
        ping_interval: Ping the pub/sub connection after this many quiet seconds and treat
            a pong missing for as long again as a lost connection (the L1 near-cache asks
            for ``l1_ttl / 2``); ``None``: only a socket error is noticed.

    Raises:
        ConfigurationError: A timeout is not finite seconds > 0 (``pool_timeout``: >= 0) or
            ``max_connections`` is not a whole number > 0.
    """

    name = "redis"
    in_process = False

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: aioredis.Redis | None = None,
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
        self.url = url
        self.op_timeout = op_timeout
        self.round_trip_span: RoundTripSpan | None = None
        """Wraps each round trip in a tracing span (``cache.instrument(spans=True)``)."""
        built = client is None  # from the URL: not a Sentinel's, nor one handed in
        if client is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=pool_timeout,
                # Every call already runs under asyncio.timeout(op_timeout) in _run. redis-py
                # turns socket_timeout into asyncio.wait_for around each send, which on Python
                # 3.11 can swallow a cancellation (the caller's, or our own timeout) that lands
                # as the send completes: the call then runs on, unbounded by the caller.
                socket_timeout=op_timeout if sys.version_info >= (3, 12) else None,
                socket_connect_timeout=connect_timeout,
                # One immediate retry on a fresh connection when a pooled one turns out dead
                # (Redis restarted, an idle timeout closed it): otherwise every stale pooled
                # connection costs one failed operation, enough to open the breaker. Timeouts
                # are not retried; the whole operation stays inside op_timeout.
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            client = aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool
            owns_client = True if owns_client is None else owns_client
        self.client = client
        self._owns_client = bool(owns_client)
        self._tagged = tagged_reads
        self._get_script = GET_TAGGED_SCRIPT if tagged_reads else GET_SCRIPT
        self._get = client.register_script(self._get_script)
        # Reads skip redis-py's Script wrapper (it re-hashes and re-checks on every call):
        # EVALSHA with the digest computed once, and a NOSCRIPT fallback.
        self._get_sha: str = self._get.sha
        self.read_batcher: ReadBatcher | None = None
        """Batches concurrent `get` calls (``None`` when ``batch_reads`` is off); its
        ``round_trips`` and ``batches`` count what it sent."""
        self._reads_conn: Any = None
        self.reads: ReadConnection | None = None
        """The lean connection entry reads are pipelined on (``batch_reads`` on a plain
        ``redis://`` or ``unix://`` URL, see `_read_conn`), else ``None``."""
        lean = lean_target(url) if batch_reads and built else None
        if lean is not None:
            self.reads = ReadConnection(
                lean,
                script=self._get_script,
                sha=self._get_sha,
                op_timeout=op_timeout,
                connect_timeout=connect_timeout,
            )
        elif batch_reads:
            self.read_batcher = ReadBatcher(self._read_one, self._read_many, timeout=op_timeout)
        self._set = client.register_script(SET_SCRIPT)
        self._versions = client.register_script(VERSIONS_SCRIPT)
        self._extend = client.register_script(EXTEND_LOCK_SCRIPT)
        self._release = client.register_script(RELEASE_LOCK_SCRIPT)
        self._fenced_set = client.register_script(FENCED_SET_SCRIPT)
        self._subscriber = Subscriber(client, self._run, ping_interval=ping_interval)
        self.tracking = TrackingListener(
            connect=pool_connection(client.connection_pool),
            primaries=self._primaries,
            ping_interval=ping_interval,
            setup_budget=connect_timeout + 2 * op_timeout,
            name=self.name,
        )
        """The ``CLIENT TRACKING`` listener, started by `track` (`_tracking`)."""
        self.streams = RedisStreams(client, self._run, op_timeout=op_timeout)
        """Write-behind's streams on this Redis (`asgi_cache.write_behind`)."""

    async def _run(
        self, what: str, coro: Any, *, bounded: bool = True, budget: float | None = None
    ) -> Any:
        # ``bounded=False``: ``coro`` enforces op_timeout itself (the read batcher). ``budget``:
        # a budget of this call's own instead of op_timeout (an unsafe request's invalidation).
        budget = self.op_timeout if budget is None else budget
        return await run_mapped(
            self.name, what, coro, budget=budget, bounded=bounded, span=self.round_trip_span
        )

    # -- reads ---------------------------------------------------------------------------------
    # With batch_reads, a lone read goes over one connection this backend keeps for reads: a
    # pool checkout and redis-py's per-command wrapper cost more than the command itself. The
    # batcher never has two reads in flight, so the connection needs no lock. Reads that
    # queue up meanwhile go out as one redis-py pipeline.

    async def _read_one(self, key: str) -> Any:
        conn = self._reads_conn
        if conn is None:
            pool: Any = self.client.connection_pool  # get_connection is untyped in redis-py
            conn = self._reads_conn = await pool.get_connection()
        was_connected = conn.is_connected
        try:
            return await self._evalsha_on(conn, key)
        except RedisConnectionError:
            if not was_connected:
                raise
            # The kept connection had gone stale (Redis restarted, an idle timeout): redis-py
            # dropped it; one more try reconnects.
            return await self._evalsha_on(conn, key)

    async def _evalsha_on(self, conn: Any, key: str) -> Any:
        await conn.send_command("EVALSHA", self._get_sha, 1, key)
        try:
            return await conn.read_response()
        except NoScriptError:  # Redis restarted or flushed its scripts: EVAL loads it again
            await conn.send_command("EVAL", self._get_script, 1, key)
            return await conn.read_response()

    async def _read_many(self, keys: Sequence[str]) -> list[Any]:
        results = await self._pipeline_gets(keys)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            await self.client.script_load(self._get_script)
            again = await self._pipeline_gets([keys[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _pipeline_gets(self, keys: Sequence[str]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.execute_command("EVALSHA", self._get_sha, 1, key)
            return list(await pipe.execute(raise_on_error=False))

    async def _evalsha_get(self, key: str) -> Any:
        run: Any = self.client.execute_command  # untyped in redis-py
        try:
            return await run("EVALSHA", self._get_sha, 1, key)
        except NoScriptError:
            return await run("EVAL", self._get_script, 1, key)

    async def _read(self, key: str) -> Any:
        reads = self.reads
        if reads is not None:
            if self.round_trip_span is not None:
                return await self._run("GET", reads.read(key), bounded=False)
            # The hit path: the read bounds itself (one timer per connection), and its errors
            # are mapped here, as _run would, without _run's two coroutine frames.
            try:
                return await reads.read(key)
            except MAPPED as exc:
                raise mapped(self.name, "GET", exc, self.op_timeout) from exc
        batcher = self.read_batcher
        if batcher is not None:
            return await self._run("GET", batcher.read(key), bounded=False)
        return await self._run("GET", self._evalsha_get(key))

    async def get(self, key: str) -> bytes | None:
        raw = await self._read(key)
        # An entry comes back as [header length, stored bytes] (the script does not copy it
        # to strip its header); anything else (a foreign value) whole, failing to decode as an
        # entry.
        if raw.__class__ is list:
            raw = raw[1][raw[0] :] if len(raw) > 1 else raw[0]
        return raw or None

    async def get_tagged(self, key: str) -> tuple[bytes, tuple[Dependency, ...]] | None:
        raw = await self._read(key)
        if not raw:
            return None
        if raw.__class__ is not list:
            return raw, ()
        if len(raw) == 1:  # a foreign value, whole
            return (raw[0], ()) if raw[0] else None
        entry = raw[1][raw[0] :]
        if not entry:
            return None
        if len(raw) == 2:  # no tags asked for, or none recorded
            return entry, ()
        # The checked header holds each tag's recorded version; total (undecodable: none).
        header = decode_deps_header(raw[1])
        return entry, tuple(header[0]) if header is not None else ()

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        payload = encode_deps_header(deps) + value
        keys = [key, *(d[0] for d in deps)]
        args: list[bytes | int | str] = [payload, ms(ttl), *(d[1] for d in deps)]
        return bool(await self._run("SET", self._set(keys=keys, args=args)))

    async def versions(self, tag_keys: Sequence[str], ttl: float) -> list[str]:
        if not tag_keys:
            return []
        fresh = [os.urandom(8).hex() for _ in tag_keys]
        out = await self._run(
            "versions", self._versions(keys=list(tag_keys), args=[ms(ttl), *fresh])
        )
        return decode_versions(out)

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        if not tag_keys:
            return 0

        # One single-key command per tag (pipelined), so tags may live on different nodes.
        async def run() -> int:
            async with self.client.pipeline(transaction=False) as pipe:
                for tag_key in tag_keys:
                    pipe.unlink(tag_key)
                return sum(int(n) for n in await pipe.execute())

        return int(await self._run("invalidate", run(), budget=budget))

    async def delete_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        pattern = glob_escape(prefix) + "*"
        count = 0
        cursor: int = 0
        while True:
            cursor, keys = await self._run(
                "SCAN", self.client.scan(cursor=cursor, match=pattern, count=batch)
            )
            if keys:  # as bytes: a foreign key name need not be UTF-8
                count += int(await self._run("UNLINK", self.client.unlink(*keys)))
            if progress is not None:
                progress(count)
            if int(cursor) == 0:
                return count

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        return bool(await self._run("lock extend", self._extend(keys=[key], args=[token, ms(ttl)])))

    async def release_lock(self, key: str, token: str) -> bool:
        return bool(await self._run("unlock", self._release(keys=[key], args=[token])))

    async def set_if_locked(
        self,
        key: str,
        value: bytes,
        ttl: float,
        deps: Sequence[Dependency],
        lock_key: str,
        token: str,
    ) -> bool:
        payload = encode_deps_header(deps) + value
        keys = [key, lock_key, *(d[0] for d in deps)]
        args: list[bytes | int | str] = [payload, ms(ttl), token, *(d[1] for d in deps)]
        return bool(await self._run("fenced SET", self._fenced_set(keys=keys, args=args)))

    async def publish(self, channel: str) -> None:
        await self._run("PUBLISH", self.client.publish(channel, b"1"))

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        await self._subscriber.subscribe(prefix, callback)

    async def track(self, prefixes: Sequence[str], callback: Callable[[str], None]) -> None:
        await self.tracking.start(prefixes, callback)

    async def _primaries(self, refresh: bool) -> list[NodeAddress]:
        return self.primaries()

    def primaries(self) -> list[NodeAddress]:
        """The server this backend writes to (one node: the URL's; a Unix socket: its path)."""
        kwargs = self.client.connection_pool.connection_kwargs
        return [
            NodeAddress(str(kwargs.get("host", kwargs.get("path"))), int(kwargs.get("port", 0)))
        ]

    async def ping(self) -> float:
        start = time.perf_counter()
        await self._run("PING", self.client.ping())
        return time.perf_counter() - start

    async def info(self) -> dict[str, Any]:
        server = await self._run("INFO", self.client.info("server"))
        memory = await self._run("INFO", self.client.info("memory"))
        counters = await self._run("INFO", self.client.info("stats"))
        return {
            "backend": self.name,
            "version": server.get("redis_version"),
            "used_memory": memory.get("used_memory"),
            "maxmemory": memory.get("maxmemory"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
            # Server-wide, like the memory figures: the metrics' eviction counter.
            "evictions": counters.get("evicted_keys"),
        }

    async def aclose(self) -> None:
        await self._subscriber.aclose()
        await self.tracking.aclose()
        if self.read_batcher is not None:
            await self.read_batcher.aclose()
        if self.reads is not None:
            await self.reads.aclose()
        conn, self._reads_conn = self._reads_conn, None
        if conn is not None:  # back to the pool (closed with it below, if the pool is ours)
            await self.client.connection_pool.release(conn)
        if self._owns_client:
            # A client built on an explicit pool leaves the pool open on a plain aclose().
            await self.client.aclose(close_connection_pool=True)
