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

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict

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

    atomic: bool
    """Whether `write` can set the cache entry in the same step (one node, or memory);
    on a cluster the entry lives in another slot, and the caller uses `append`."""

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

    async def append(
        self,
        keys: StreamKeys,
        key: str,
        payload: bytes,
        *,
        deleted: bool,
        change_id: str,
        limit: int,
        budget: float | None = None,
    ) -> int:
        """Append a change (the durable step alone); return its version (0: backlog full)."""
        ...

    async def latest_version(self, keys: StreamKeys, key: str) -> int:
        """``key``'s latest version (0: none)."""
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


def id_time(entry_id: str) -> float:
    """The time (seconds since the epoch) in a stream entry id ``<ms>-<seq>``."""
    return int(entry_id.partition("-")[0]) / 1000


def streams_of(backend: object) -> Streams | None:
    """The `Streams` of ``backend`` (looking through a circuit breaker), or ``None``
    for a backend without them (a custom one)."""
    while backend is not None:
        streams: Streams | None = getattr(backend, "streams", None)
        if streams is not None:
            return streams
        backend = getattr(backend, "inner", None)
    return None
