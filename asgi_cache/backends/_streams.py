"""The streams part of the backend protocol: what write-behind needs of its store.

Write-behind (`asgi_cache.write_behind`) keeps the changes the database has not seen yet
in a durable log with consumer groups: a Redis Stream on Redis (`RedisStreams`), an
in-process log with the same semantics on ``memory://``
(`MemoryStreams`). The feature layer talks to this
protocol only, never to redis-py.

Guarantees every implementation gives (the write-behind tests check them on memory and on a
real Redis):

- `Streams.write` bumps the key's version, appends the change and sets (or deletes) the
  cache entry in one atomic step; it returns once all of it is stored, or appends nothing
  when the backlog is at its limit (it returns 0).
- A read hands each entry to one consumer of the group; the entry stays *pending* (owned by
  that consumer, with a delivery count) until it is acknowledged. An entry leaves the log
  only when acknowledged (`Streams.ack`) or moved to the dead letter: nothing is
  trimmed by length.
- `Streams.claim_idle` hands the entries pending longer than a lease with another
  consumer (a dead or stalled one) to the caller, counting one more delivery;
  `Streams.renew` resets the idle time of the entries the caller still owns.
- Every failure is raised as [`BackendError`][asgi_cache.BackendError].
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict

from redis.exceptions import ResponseError

from ._stream_scripts import (
    ACK_SCRIPT,
    DEAD_LETTER_SCRIPT,
    DELIVERIES_SCRIPT,
    NEXT_VERSION_SCRIPT,
    RENEW_SCRIPT,
    REPLAY_SCRIPT,
    WRITE_SCRIPT,
)
from ._wire import encode_deps_header
from .base import Dependency

Fields = dict[str, bytes]
"""The fields of one stream entry, by name (values as stored)."""

Runner = Callable[..., Awaitable[Any]]
"""The Redis backend's one error boundary (``RedisBackend._run``)."""


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """The keys of one write-behind name; one hash tag, so one slot on Redis Cluster."""

    stream: str
    """The stream of changes not yet handled."""
    dead: str
    """The dead-letter stream."""
    versions: str
    """The hash of each key's latest version."""
    group: str = "asgi-cache"
    """The consumer group every worker of the name reads with."""

    @classmethod
    def of(cls, base: str) -> StreamKeys:
        """The keys under ``base`` (``<ns>:w:{<name>}``, see `KeySpace`)."""
        return cls(stream=f"{base}:s", dead=f"{base}:dead", versions=f"{base}:v")


class Record(NamedTuple):
    """One entry read from a stream."""

    id: str
    """The entry's id in the stream (``<ms>-<seq>``)."""
    fields: Fields | None
    """Its fields; ``None`` for a pending entry that is gone from the stream."""


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """The cache side of a change: the entry to store (or the key to delete)."""

    full_key: str
    """The entry's full key."""
    payload: bytes
    """The entry's bytes (empty for a delete)."""
    ttl: float
    """Its lifetime in seconds (ignored for a delete)."""
    deps: tuple[Dependency, ...] = ()
    """The tag versions it was built under."""


class StreamInfo(TypedDict):
    """The state of one write-behind log, as the backend sees it."""

    backlog: int
    """Entries not yet acknowledged (pending or not yet delivered)."""
    pending: int
    """Entries delivered to a worker and not yet acknowledged."""
    dead_letters: int
    """Entries in the dead letter."""
    lag_seconds: float
    """Age of the oldest entry not yet acknowledged (0.0 when there is none)."""
    consumers: int
    """Workers known to the group."""


class Streams(Protocol):
    """Durable logs with consumer groups (Redis Streams, or the in-process equivalent)."""

    async def write(
        self,
        keys: StreamKeys,
        key: str,
        entry: EntryWrite,
        *,
        deleted: bool,
        change_id: str,
        limit: int,
        budget: float | None = None,
    ) -> int:
        """Append a change and apply ``entry`` atomically; return its version (0: backlog full).

        ``budget``: a time budget of its own instead of the per-operation one."""
        ...

    async def next_version(self, keys: StreamKeys, key: str) -> int:
        """Bump and return ``key``'s version without appending (a change written inline)."""
        ...

    async def ensure_group(self, keys: StreamKeys) -> None:
        """Create the stream and its consumer group if they do not exist."""
        ...

    async def read(
        self, keys: StreamKeys, consumer: str, count: int, *, pending: bool, block: float
    ) -> list[Record]:
        """New entries for ``consumer`` (waiting up to ``block`` s), or its own pending ones."""
        ...

    async def claim_idle(
        self, keys: StreamKeys, consumer: str, min_idle: float, count: int
    ) -> list[Record]:
        """Take over entries pending longer than ``min_idle`` seconds with any consumer."""
        ...

    async def deliveries(self, keys: StreamKeys, ids: Sequence[str]) -> list[int]:
        """How often each entry was delivered (0: no longer pending)."""
        ...

    async def renew(self, keys: StreamKeys, consumer: str, ids: Sequence[str]) -> int:
        """Reset the idle time of the entries ``consumer`` still owns; return how many."""
        ...

    async def ack(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        """Acknowledge and remove entries; return how many were still pending."""
        ...

    async def dead_letter(
        self, keys: StreamKeys, entry_id: str, reason: str, deliveries: int
    ) -> bool:
        """Move an entry to the dead letter with ``reason``; return whether it was there."""
        ...

    async def dead_letters(self, keys: StreamKeys, count: int) -> list[Record]:
        """The oldest ``count`` dead letters."""
        ...

    async def replay(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        """Move dead letters back into the stream; return how many."""
        ...

    async def info(self, keys: StreamKeys) -> StreamInfo:
        """The log's backlog, pending entries, dead letters and lag."""
        ...


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: Any) -> Fields | None:
    # redis-py parses an entry's fields into a dict; a pending entry that is gone from the
    # stream comes back with none.
    if not flat:
        return None
    return {_text(k): v if isinstance(v, bytes) else str(v).encode() for k, v in flat.items()}


def _records(entries: Any) -> list[Record]:
    return [Record(_text(entry_id), _fields(flat)) for entry_id, flat in entries or ()]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def id_time(entry_id: str) -> float:
    """The time (seconds since the epoch) in a stream entry id ``<ms>-<seq>``."""
    return int(entry_id.partition("-")[0]) / 1000


class RedisStreams:
    """`Streams` on Redis Streams, through the Redis backend's client and error boundary.

    Args:
        client: The backend's ``redis.asyncio.Redis``.
        run: The backend's error boundary: ``run(what, coro, budget=...)`` maps every
            redis-py error and timeout to [`BackendError`][asgi_cache.BackendError].
        op_timeout: The backend's per-operation budget; a blocking read waits at most half
            of it (the connection's socket timeout is bounded by it).
    """

    def __init__(self, client: Any, run: Runner, *, op_timeout: float) -> None:
        self._client = client
        self._run = run
        self._op_timeout = op_timeout
        scripts = (WRITE_SCRIPT, ACK_SCRIPT, DEAD_LETTER_SCRIPT, REPLAY_SCRIPT, RENEW_SCRIPT)
        self._write, self._ack, self._dead, self._replay, self._renew = (
            client.register_script(s) for s in scripts
        )
        self._deliveries = client.register_script(DELIVERIES_SCRIPT)
        self._next_version = client.register_script(NEXT_VERSION_SCRIPT)

    async def write(
        self,
        keys: StreamKeys,
        key: str,
        entry: EntryWrite,
        *,
        deleted: bool,
        change_id: str,
        limit: int,
        budget: float | None = None,
    ) -> int:
        """See `Streams.write`; ``budget`` replaces the per-operation one."""
        deps = entry.deps
        argv: list[Any] = [
            limit,
            key,
            "d" if deleted else "s",
            encode_deps_header(deps),
            entry.payload,
            _ms(entry.ttl),
            change_id,
            int(time.time() * 1000),
            *(d[1] for d in deps),
        ]
        names = [keys.stream, keys.versions, entry.full_key, *(d[0] for d in deps)]
        call = self._write(keys=names, args=argv)
        return int(await self._run("write-behind write", call, budget=budget))

    async def next_version(self, keys: StreamKeys, key: str) -> int:
        call = self._next_version(keys=[keys.versions], args=[key])
        return int(await self._run("write-behind version", call))

    async def ensure_group(self, keys: StreamKeys) -> None:
        async def create() -> None:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self._client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)

        await self._run("XGROUP CREATE", create())

    async def read(
        self, keys: StreamKeys, consumer: str, count: int, *, pending: bool, block: float
    ) -> list[Record]:
        wait = None if pending or block <= 0 else _ms(min(block, self._op_timeout / 2))
        call = self._client.xreadgroup(
            keys.group, consumer, {keys.stream: "0" if pending else ">"}, count=count, block=wait
        )
        reply = await self._run("XREADGROUP", call)
        if not reply:
            return []
        return _records(reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0])

    async def claim_idle(
        self, keys: StreamKeys, consumer: str, min_idle: float, count: int
    ) -> list[Record]:
        call = self._client.xautoclaim(
            keys.stream, keys.group, consumer, _ms(min_idle), start_id="0-0", count=count
        )
        reply = await self._run("XAUTOCLAIM", call)
        records = _records(reply[1])
        # Entries deleted while pending come back in the third part (Redis 7): acknowledge them.
        gone = [_text(i) for i in (reply[2] if len(reply) > 2 else ())]
        return records + [Record(i, None) for i in gone]

    async def deliveries(self, keys: StreamKeys, ids: Sequence[str]) -> list[int]:
        if not ids:
            return []
        call = self._deliveries(keys=[keys.stream], args=[keys.group, *ids])
        return [int(n) for n in await self._run("XPENDING", call)]

    async def renew(self, keys: StreamKeys, consumer: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        call = self._renew(keys=[keys.stream], args=[keys.group, consumer, *ids])
        return int(await self._run("lease renewal", call))

    async def ack(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        call = self._ack(keys=[keys.stream], args=[keys.group, *ids])
        return int(await self._run("XACK", call))

    async def dead_letter(
        self, keys: StreamKeys, entry_id: str, reason: str, deliveries: int
    ) -> bool:
        call = self._dead(
            keys=[keys.stream, keys.dead], args=[keys.group, entry_id, reason, deliveries]
        )
        return bool(await self._run("dead letter", call))

    async def dead_letters(self, keys: StreamKeys, count: int) -> list[Record]:
        return _records(await self._run("XRANGE", self._client.xrange(keys.dead, count=count)))

    async def replay(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        call = self._replay(keys=[keys.stream, keys.dead], args=list(ids))
        return int(await self._run("replay", call))

    async def info(self, keys: StreamKeys) -> StreamInfo:
        async def gather() -> StreamInfo:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xlen(keys.stream)
                pipe.xlen(keys.dead)
                pipe.xrange(keys.stream, count=1)
                pipe.time()
                backlog, dead, first, now = await pipe.execute()
            pending = consumers = 0
            with contextlib.suppress(ResponseError):  # NOGROUP: no worker ran yet
                summary = await self._client.xpending(keys.stream, keys.group)
                pending = int(summary["pending"])
                consumers = len(summary.get("consumers") or ())
            lag = 0.0
            if first:
                lag = max(0.0, now[0] + now[1] / 1e6 - id_time(_text(first[0][0])))
            return StreamInfo(
                backlog=int(backlog),
                pending=pending,
                dead_letters=int(dead),
                lag_seconds=round(lag, 3),
                consumers=consumers,
            )

        result: StreamInfo = await self._run("write-behind info", gather())
        return result


def streams_of(backend: object) -> Streams | None:
    """The `Streams` of ``backend`` (looking through a circuit breaker), or ``None``
    for a backend without them (a custom one)."""
    while backend is not None:
        streams: Streams | None = getattr(backend, "streams", None)
        if streams is not None:
            return streams
        backend = getattr(backend, "inner", None)
    return None
