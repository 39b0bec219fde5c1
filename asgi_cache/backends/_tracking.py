"""The ``CLIENT TRACKING`` listener: Redis tells the L1 near-cache which keys changed.

Redis server-assisted client-side caching in broadcast mode (needs **Redis >= 6.0**). Per
primary, one dedicated RESP2 connection of its own (not from the pool) is set up with::

    CLIENT ID                                    -> <id>
    CLIENT TRACKING on REDIRECT <id> BCAST PREFIX <ns>:d: PREFIX <ns>:h: PREFIX <ns>:t:
    SUBSCRIBE __redis__:invalidate

From then on Redis sends on it the name of every key under those prefixes that any client
writes or deletes, that expires or that is evicted, as a message on ``__redis__:invalidate``
whose payload is the list of key names; a ``FLUSHDB``/``FLUSHALL`` sends a null payload,
passed on as `INVALIDATE_ALL`. Only the prefixes the caller names are tracked (the L1 asks
for entry and tag-version keys: not locks, wake-ups or write-behind streams), and tracking is
per server, not per database (a write to the same key name in another database of that
server is reported too: a harmless extra drop).

Gaps are announced as the pub/sub subscriber announces them (`SUBSCRIPTION_LOST` when a
connection breaks or misses a pong, `SUBSCRIPTION_RESTORED` once every primary is tracked
again), so the L1 empties itself across any gap. A connection quiet for ``ping_interval``
is sent a ``PING``; no ``PONG`` within one more interval counts as lost. Each connection is
made again with capped backoff; the set of primaries is asked again every ``refresh_every``
seconds (and after a failure), so a failover or a resharding to new primaries rebuilds the
listeners.

Where ``CLIENT TRACKING`` is refused (an ACL without ``client|tracking``, a managed Redis
that disables it, a renamed command, a server older than 6.0), `TrackingListener.start`
raises `TrackingRefused`, and the caller falls back to pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NamedTuple

import anyio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from .._exceptions import BackendError
from .._tasks import BackgroundTasks
from ._pubsub import _text
from .base import INVALIDATE_ALL, SUBSCRIPTION_LOST, SUBSCRIPTION_RESTORED, TrackingRefused

logger = logging.getLogger("asgi_cache")

INVALIDATE_CHANNEL: Final = "__redis__:invalidate"
"""Where Redis sends invalidations to a RESP2 client that redirects tracking to itself."""
_MAX_BACKOFF = 2.0


class NodeAddress(NamedTuple):
    """``host`` and ``port`` of one Redis server (a Unix socket: its path and 0)."""

    host: str
    port: int


Connect = Callable[[NodeAddress], Any]
"""Makes a redis-py asyncio ``Connection`` (not yet connected, RESP2) to one primary."""
Primaries = Callable[[bool], Awaitable[list[NodeAddress]]]
"""The current primaries; ``True``: something failed, refresh what you know first."""


class TrackingListener:
    """One tracking connection per primary, kept up, reporting invalidated key names.

    Args:
        connect: Makes the connection to one primary.
        primaries: Lists the primaries to track.
        ping_interval: Seconds of silence before a ``PING``; as long again without a
            ``PONG`` counts as a lost connection; 30 s when ``None``.
        setup_budget: Seconds that connecting and setting up tracking on one primary may
            take (and `start` may wait for every primary).
        refresh_every: Seconds between two looks at the set of primaries.
        name: The backend's name, for messages.
    """

    def __init__(
        self,
        *,
        connect: Connect,
        primaries: Primaries,
        ping_interval: float | None,
        setup_budget: float,
        refresh_every: float = 1.0,
        name: str = "redis",
    ) -> None:
        self._connect = connect
        self._primaries = primaries
        self.prefixes: tuple[str, ...] = ()
        self._callback: Callable[[str], None] = _ignore
        self.ping_interval = 30.0 if ping_interval is None else ping_interval
        self.setup_budget = setup_budget
        self.refresh_every = refresh_every
        self.name = name
        self.live = False
        """Whether every current primary is tracked now."""
        self.reconnects = 0
        """Times every primary was tracked again after a loss."""
        self.missed_pongs = 0
        """Times a ping went unanswered for a whole interval (the connection was dropped)."""
        self._scopes: dict[NodeAddress, anyio.CancelScope] = {}
        self._tracked: set[NodeAddress] = set()
        self._ready = asyncio.Event()
        self._refused: Exception | None = None
        self._failed = False  # a listener failed: refresh the primaries on the next look
        self._tasks = BackgroundTasks(f"{name} CLIENT TRACKING listener")

    async def start(self, prefixes: Sequence[str], callback: Callable[[str], None]) -> None:
        """Track every primary, if not yet; return once each one is set up.

        Args:
            prefixes: The key prefixes to track (``BCAST PREFIX`` each).
            callback: Called with each invalidated key name, `INVALIDATE_ALL`,
                `SUBSCRIPTION_LOST` and `SUBSCRIPTION_RESTORED`.

        Raises:
            TrackingRefused: A primary refused tracking (nothing is left running).
            BackendError: Not every primary was tracked within the setup budget (nothing is
                left running; try again later).
        """
        if self.live:
            return
        if not self._tasks:
            self.prefixes, self._callback = tuple(prefixes), callback
            self._ready.clear()
            self._tasks.start_soon(self._supervise)
        try:
            with anyio.fail_after(self.setup_budget):
                await self._ready.wait()
        except TimeoutError:
            await self.aclose()
            raise BackendError(
                f"{self.name} CLIENT TRACKING: not set up on every primary within "
                f"{self.setup_budget:.1f} s"
            ) from None
        refused = self._refused
        if refused is not None:
            await self.aclose()
            raise TrackingRefused(f"{self.name} refused CLIENT TRACKING: {refused}") from refused

    async def _supervise(self) -> None:
        while True:
            refresh, self._failed = self._failed, False
            try:
                with anyio.fail_after(self.setup_budget):
                    wanted = set(await self._primaries(refresh))
            except (TimeoutError, RedisError, OSError, BackendError):
                wanted = set(self._scopes)  # keep what we have, ask again
            for gone in set(self._scopes) - wanted:
                self._scopes.pop(gone).cancel()
                self._tracked.discard(gone)
            for address in wanted - set(self._scopes):
                scope = self._scopes[address] = anyio.CancelScope()
                self._tasks.start_soon(lambda a=address, s=scope: self._run(a, s))  # type: ignore[misc]
            self._update()
            await anyio.sleep(self.refresh_every)

    async def _run(self, address: NodeAddress, scope: anyio.CancelScope) -> None:
        with scope:
            await self._listen(address)

    async def _listen(self, address: NodeAddress) -> None:
        failures = 0
        refused_again = False
        while True:
            conn = self._connect(address)
            try:
                with anyio.fail_after(self.setup_budget):
                    await self._set_up(conn)
                failures = 0
                self._tracked.add(address)
                self._update()
                await self._read(conn)
            except ResponseError as exc:  # a refusal, not a fault
                if not self._ready.is_set():
                    self._refused = exc
                    self._ready.set()
                    return
                if not refused_again:  # once per listener, not once per retry
                    refused_again = True
                    logger.warning(
                        "asgi-cache: %s refused CLIENT TRACKING after a reconnect (%s); "
                        "L1 stays empty until it is accepted again",
                        self.name,
                        exc,
                    )
            except (TimeoutError, RedisError, OSError, _MissedPong):
                pass
            finally:
                with anyio.CancelScope(shield=True), contextlib.suppress(RedisError, OSError):
                    await conn.disconnect(nowait=True)
            self._tracked.discard(address)
            self._failed = True
            self._update()
            failures += 1
            await anyio.sleep(min(_MAX_BACKOFF, 0.05 * 2**failures))

    async def _set_up(self, conn: Any) -> None:
        await conn.connect()
        client_id = await _command(conn, "CLIENT", "ID")
        prefixes = [arg for p in self.prefixes for arg in ("PREFIX", p)]
        await _command(conn, "CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST", *prefixes)
        reply = await _command(conn, "SUBSCRIBE", INVALIDATE_CHANNEL)
        if not isinstance(reply, list) or _text(reply[0]) != "subscribe":
            raise RedisConnectionError(f"unexpected reply to SUBSCRIBE: {reply!r}")

    async def _read(self, conn: Any) -> None:
        pinged = False  # a ping is waiting for its pong
        while True:
            message = await conn.read_response(timeout=self.ping_interval)
            if message is None:  # quiet for a whole ping interval
                if pinged:
                    self.missed_pongs += 1
                    raise _MissedPong
                await conn.send_command("PING")
                pinged = True
                continue
            pinged = False  # anything at all shows the connection alive
            if not isinstance(message, list) or _text(message[0]) != "message":
                continue  # the pong
            payload = message[2]
            if payload is None:
                self._callback(INVALIDATE_ALL)
            else:
                for key in payload:
                    self._callback(_text(key))

    def _update(self) -> None:
        # Live when every wanted primary is tracked; a change either way is announced (the
        # first one only releases start(): the caller empties its L1 itself then).
        live = bool(self._scopes) and self._tracked >= set(self._scopes)
        if live == self.live:
            return
        self.live = live
        if not live:
            self._callback(SUBSCRIPTION_LOST)
        elif self._ready.is_set():
            self.reconnects += 1
            self._callback(SUBSCRIPTION_RESTORED)
        else:
            self._ready.set()

    async def aclose(self) -> None:
        """Stop every listener and close its connection (a later `start` begins again)."""
        await self._tasks.aclose()
        self._scopes.clear()
        self._tracked.clear()
        self.live = False
        self._refused = None
        self._ready.clear()


def _ignore(name: str) -> None:
    """The callback before `TrackingListener.start`."""


class _MissedPong(Exception):
    """No pong came within a ping interval: the connection is treated as lost."""


async def _command(conn: Any, *args: Any) -> Any:
    await conn.send_command(*args)
    return await conn.read_response()


def pool_connection(pool: Any) -> Connect:
    """Connections like ``pool``'s (its class: TLS, a Unix socket, a Sentinel-managed
    primary; its credentials and options), in RESP2 and without a socket timeout (reads
    are bounded by the ping interval), for whatever address is asked."""

    def connect(address: NodeAddress) -> Any:
        options = {**pool.connection_kwargs, "protocol": 2, "socket_timeout": None}
        return pool.connection_class(**options)

    return connect


def node_connection(nodes: Callable[[NodeAddress], Any]) -> Connect:
    """Connections to one cluster node each, like that node's pooled ones (RESP2, no socket
    timeout); ``nodes`` finds redis-py's node for an address."""

    def connect(address: NodeAddress) -> Any:
        node = nodes(address)
        if node is None:  # gone from the slot map since it was listed
            raise RedisConnectionError(f"no cluster node at {address.host}:{address.port}")
        options = {**node.connection_kwargs, "protocol": 2, "socket_timeout": None}
        return node.connection_class(**options)

    return connect
