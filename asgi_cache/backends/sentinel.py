"""``redis+sentinel://``, ``rediss+sentinel://``: a primary found and followed through Sentinel.

The single-node backend ([`RedisBackend`][asgi_cache.backends.RedisBackend]: same scripts,
same read batching, same costs) on a connection pool that asks the Sentinels for the
primary's address whenever it opens a connection (redis-py's ``SentinelConnectionPool``).
What this backend adds, because a pooled connection outlives a failover:

- **Following the primary.** One background task per backend asks the Sentinels for the
  primary every ``check_interval`` seconds (1 s). When it moved, every connection of the pool
  is closed, the in-use ones included, so the next command connects to the new primary (an
  operation failing on a connection error asks at once instead of waiting its turn): a
  demoted primary stays writable for a while after ``SENTINEL FAILOVER`` (until Sentinel
  reconfigures it), and a write sent there would be lost. A connection that meets
  ``READONLY`` (the old primary, now a replica) reconnects at once (redis-py).
- **Invalidations a failover cannot lose.** Replication is asynchronous: a primary that dies
  right after acknowledging a write loses it if its replica had not received it yet. An
  entry so lost is a miss; an invalidation so lost would let the promoted replica serve what
  the write replaced. So `SentinelBackend.invalidate` sends ``WAIT 1`` after its
  ``UNLINK``\\ s on the same connection (while the primary has replicas): unacknowledged within
  the budget, it fails, and the cache queues it for retry (deleting a tag again is
  harmless), rather than counting it done.
- **Bounded connections.** redis-py's Sentinel pool raises at once when full; an
  `Admission` in front bounds the operations in
  flight to ``max_connections`` and makes a saturated process busy
  ([`BackendBusyError`][asgi_cache.BackendBusyError]), as the single-node pool does.
- **Replica reads (optional, ``?replica_reads=true``).** Entry reads (`get`) go to a
  replica, checked client-side there (the read script would write to a replica); everything
  else stays on the primary. A replica lags its primary: for that lag (sub-millisecond on a
  healthy LAN, unbounded while its link is down: Redis replicas serve stale data by default)
  a read may return an entry that an invalidation on the primary has already retired, so an
  unsafe request's read-after-write freshness no longer holds. Off by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .._exceptions import BackendBusyError, BackendError, BackendReplyError, ConfigurationError
from .._tasks import BackgroundTasks
from .._urls import UrlKind, parse_url
from ._admission import Admission
from ._cluster_io import read_entries
from ._connect import check_budgets, connection_options
from ._tracking import NodeAddress
from .redis import RedisBackend

logger = logging.getLogger("asgi_cache")

_PUBSUB_CONNECTIONS = 2
"""Connections beyond ``max_connections``: the subscriber's and the kept read connection."""


class SentinelBackend(RedisBackend):
    """Entries on the primary a set of Sentinels names, followed across failovers.

    Args:
        url: ``redis+sentinel://`` or ``rediss+sentinel://`` URL (the Sentinels, the service,
            the database).
        op_timeout: Budget in seconds of one operation.
        connect_timeout: Budget in seconds for opening a connection (to a Sentinel too).
        max_connections: Operations in flight at once in this process (and the pool size).
        pool_timeout: Longest wait in seconds for a place among them.
        batch_reads: Send concurrent `get` calls together (see the single-node backend).
        check_interval: Seconds between two checks of which server is the primary.
        tagged_reads: As for the single-node backend (the L1 near-cache's precise reads).
        ping_interval: As for the single-node backend (pub/sub and ``CLIENT TRACKING``
            connections).

    Raises:
        ConfigurationError: ``url`` is not a Sentinel URL, or an option is out of range.
    """

    name = "redis-sentinel"

    def __init__(
        self,
        url: str,
        *,
        op_timeout: float = 0.25,
        connect_timeout: float = 0.5,
        max_connections: int = 64,
        pool_timeout: float = 0.05,
        batch_reads: bool = True,
        check_interval: float = 1.0,
        tagged_reads: bool = False,
        ping_interval: float | None = None,
    ) -> None:
        check_budgets(
            op_timeout=op_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            max_connections=max_connections,
        )
        parsed = parse_url(url, name="url")
        if parsed.kind is not UrlKind.SENTINEL or parsed.service is None:
            raise ConfigurationError(
                f"url={parsed.masked!r} is not allowed: expected a redis+sentinel:// or "
                "rediss+sentinel:// URL"
            )
        self.service = parsed.service
        self.check_interval = check_interval
        options = connection_options(parsed, op_timeout=op_timeout, connect_timeout=connect_timeout)
        self._connection_options = {**options, "db": parsed.db}
        # The Sentinels take the same transport options, with their own credentials.
        sentinel_options = {k: v for k, v in options.items() if k not in ("username", "password")}
        sentinel_options["username"] = parsed.options.sentinel_username
        sentinel_options["password"] = parsed.options.sentinel_password
        self.sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts), sentinel_kwargs=sentinel_options, **self._connection_options
        )
        pool_options: dict[str, Any] = {
            "max_connections": max_connections + _PUBSUB_CONNECTIONS,
            # One immediate retry on a fresh connection (to the primary Sentinel names now)
            # when a pooled one is dead, as the single-node backend does.
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        }
        client = self.sentinel.master_for(self.service, **pool_options)
        super().__init__(
            url,
            client=client,
            owns_client=True,
            op_timeout=op_timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            batch_reads=batch_reads,
            tagged_reads=tagged_reads,
            ping_interval=ping_interval,
        )
        self.replica: aioredis.Redis | None = None
        """The client of entry reads when ``replica_reads`` is on, else ``None``."""
        if parsed.options.replica_reads:
            self.replica = self.sentinel.slave_for(self.service, **pool_options)
        self._admission = Admission(self.name, limit=max_connections, wait=pool_timeout)
        self._watch = BackgroundTasks("redis sentinel primary check")
        self._check_now = asyncio.Event()  # a failed operation cuts the wait short
        self._replicas = 0  # connected to the primary, as it last said
        self.failovers = 0
        """How many times this backend saw the primary move (and closed its connections)."""

    # -- the boundary: admission, and the primary followed --------------------------------------

    async def _run(
        self, what: str, coro: Any, *, bounded: bool = True, budget: float | None = None
    ) -> Any:
        if not self._watch:
            self._watch.start_soon(self._follow_primary)
        admitted = self._admission.run(coro)
        try:
            return await super()._run(what, admitted, bounded=bounded, budget=budget)
        except (BackendBusyError, BackendReplyError):
            raise
        except BackendError:
            self._check_now.set()  # the primary may have moved: ask the Sentinels at once
            raise

    async def _follow_primary(self) -> None:
        pool: Any = self.client.connection_pool  # a SentinelConnectionPool
        while True:
            try:
                async with asyncio.timeout(max(self.op_timeout, 1.0)):
                    address = await self.sentinel.discover_master(self.service)
            except (TimeoutError, RedisError, OSError):
                address = None  # no Sentinel answered: keep what we have, ask again
            if address is not None:
                await self._leave_others(pool, address)
            try:  # the replicas the primary itself has connected: those WAIT can count
                async with asyncio.timeout(max(self.op_timeout, 1.0)):
                    replication = await self.client.info("replication")
                self._replicas = int(replication.get("connected_slaves", 0))
            except (TimeoutError, RedisError, OSError):
                pass
            self._check_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.check_interval):
                    await self._check_now.wait()

    async def _leave_others(self, pool: Any, address: tuple[str, int]) -> None:
        # Every connection to another server than the one the Sentinels name is closed (it
        # reconnects to the primary on its next use), not only when the pool's own record
        # of the primary changed: during a failover a lagging Sentinel may still name the
        # old primary to a connection that opens meanwhile, and that connection would
        # write there until it fails.
        connections = [*pool._available_connections, *pool._get_in_use_connections()]
        stale = [c for c in connections if c.is_connected and (c.host, c.port) != address]
        moved = pool.master_address not in (None, address)
        if not stale and not moved:
            return
        if moved:
            logger.warning(
                "asgi-cache: redis-sentinel primary of %s moved from %s to %s; reconnecting",
                self.service,
                _hostport(pool.master_address),
                _hostport(address),
            )
            self._replicas = 0  # until the new primary says how many follow it
        pool.master_address = address
        for connection in stale:
            with contextlib.suppress(RedisError, OSError):
                await connection.disconnect()
        if moved:
            # Counted once the old primary's connections are closed, as documented: a caller
            # that sees the count move knows its next write goes to the new primary.
            self.failovers += 1

    # -- what differs from one node --------------------------------------------------------------

    async def _read_one(self, key: str) -> Any:
        # No connection kept for lone reads, as the single-node backend keeps one: a kept
        # connection reconnects to the address it had (redis-py asks the Sentinels only when
        # the pool hands a connection out), so after a failover it would knock on the dead
        # primary forever. Through the pool, every read gets a connection to the primary.
        return await self._evalsha_get(key)

    async def get(self, key: str) -> bytes | None:
        if self.replica is None:
            return await super().get(key)
        (raw,) = await self._run("GET", read_entries(self.replica, [key]))
        if isinstance(raw, BaseException):
            raise BackendError(f"{self.name} GET failed on a replica: {raw}") from raw
        return raw or None

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        if not tag_keys:
            return 0
        budget = self.op_timeout if budget is None else budget
        replicas = self._replicas

        async def run() -> int:
            async with self.client.pipeline(transaction=False) as pipe:
                for tag_key in tag_keys:
                    pipe.unlink(tag_key)
                if replicas:  # on the same connection: WAIT counts this connection's writes
                    pipe.execute_command("WAIT", 1, max(1, int(budget * 500)))
                replies = await pipe.execute()
            if replicas and int(replies[-1]) < 1:
                raise BackendError(
                    f"{self.name} invalidate: no replica acknowledged it within "
                    f"{budget * 500:.0f} ms (a failover now would lose it): retried"
                )
            return sum(int(n) for n in replies[: len(tag_keys)])

        return int(await self._run("invalidate", run(), budget=budget))

    async def info(self) -> dict[str, Any]:
        facts = await super().info()
        pool: Any = self.client.connection_pool
        facts.update(topology="sentinel", primary=_hostport(pool.master_address))
        return facts

    def primaries(self) -> list[NodeAddress]:
        """The primary's address as this backend last learned it (empty before the first
        operation); with `connection_options`, what a feature needing a connection of
        its own to the primary connects with (as
        [`ClusterBackend.primaries`][asgi_cache.backends.ClusterBackend.primaries])."""
        address = self.client.connection_pool.master_address
        return [] if address is None else [NodeAddress(str(address[0]), int(address[1]))]

    async def _primaries(self, refresh: bool) -> list[NodeAddress]:
        # The tracking listener follows the primary the Sentinels name: its connection is
        # made like the pool's (it asks the Sentinels on connect), and a move rebuilds it.
        if refresh:
            self._check_now.set()
        if not self._watch:
            self._watch.start_soon(self._follow_primary)
        known = self.primaries()
        if known:
            return known
        host, port = await self.sentinel.discover_master(self.service)
        return [NodeAddress(str(host), int(port))]

    @property
    def connection_options(self) -> dict[str, Any]:
        """The redis-py connection keyword arguments of the data servers, from the URL."""
        return dict(self._connection_options)

    async def aclose(self) -> None:
        await self._watch.aclose()
        await super().aclose()
        if self.replica is not None:
            await self.replica.aclose(close_connection_pool=True)
        await self.sentinel.aclose()


def _hostport(address: Any) -> str:
    return "none" if address is None else f"{address[0]}:{address[1]}"
