"""The storage protocol every backend implements.

Backends store opaque bytes under full keys. What they add is one storage guarantee the
[`Cache`][asgi_cache.Cache] builds tag invalidation on: an entry can be stored with
*dependencies*, pairs of (tag key, version) recorded when its value was loaded, and it is
served only while every one of those tag keys still holds that version. Invalidating a tag
deletes its version key, so every entry that depends on it stops being served at once,
wherever it lives, without a scan.

Guarantees every backend gives (and the contract tests check on memory, fakeredis and Redis):

- Nothing is stored without an expiry; ``ttl`` is in seconds and must be > 0.
- [`Backend.get`][asgi_cache.backends.Backend.get] returns the bytes given to
  [`Backend.set`][asgi_cache.backends.Backend.set] only while the key has not expired and every
  dependency is current; otherwise ``None``.
- [`Backend.set`][asgi_cache.backends.Backend.set] stores nothing when a dependency is no longer
  current at write time (the value was loaded before an invalidation), and extends every
  dependency's expiry to at least the entry's, so tag versions outlive the entries that need them
  and no longer.
- [`Backend.versions`][asgi_cache.backends.Backend.versions] returns each tag's current version,
  creating a fresh random one for a tag that has none; a version is never reused.
- [`Backend.set_if_locked`][asgi_cache.backends.Backend.set_if_locked] is
  [`Backend.set`][asgi_cache.backends.Backend.set] fenced by a lock: it stores nothing unless the
  lock key still holds the caller's token, so a loader whose lock expired while it worked cannot
  overwrite the value written by the next holder.
- [`Backend.publish`][asgi_cache.backends.Backend.publish] wakes every
  [`Backend.subscribe`][asgi_cache.backends.Backend.subscribe] callback whose prefix matches the
  channel, in every process sharing the store (memory: this process only). Delivery is best effort:
  callers must bound their waits.
- Every failure is raised as [`BackendError`][asgi_cache.BackendError] (the cache fails open on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, runtime_checkable

from .._exceptions import BackendError

Dependency = tuple[str, str]
"""A (tag key, version) pair an entry depends on."""

SUBSCRIPTION_LOST: Final = "\x00subscription-lost"
"""Passed to every subscribe callback when the subscriber connection was found broken:
publishes are missed from then until `SUBSCRIPTION_RESTORED`. Not a channel (no channel
name reaches a callback unless it starts with the callback's prefix)."""
SUBSCRIPTION_RESTORED: Final = "\x00subscription-restored"
"""Passed to a subscribe callback when its subscription is confirmed again after the
connection was lost or made anew: publishes made in between were missed."""
INVALIDATE_ALL: Final = "\x00invalidate-all"
"""Passed to a `Backend.track` callback when every key may have changed (``FLUSHDB``,
``FLUSHALL``)."""


class TrackingRefused(BackendError):
    """The backend cannot report key changes (`Backend.track`): Redis refused ``CLIENT
    TRACKING``, or the backend has no such thing. The L1 falls back to pub/sub."""


@runtime_checkable
class Backend(Protocol):
    """A place to keep entries: in process memory or Redis."""

    name: str
    """Short name for logs and health output (``memory``, ``redis``)."""

    in_process: bool = False
    """Whether entries live in this process's memory: no network round trip, nothing shared
    with other processes (so an in-process near-cache or gzip-coded bodies would gain
    nothing)."""

    hash_tags: bool = False
    """Whether keys that one operation touches together (an entry and its lock) must share a
    Redis Cluster hash slot: the cache then builds its keys with hash tags
    (`KeySpace`)."""

    async def get(self, key: str) -> bytes | None:
        """Return the value under ``key`` if present, unexpired and all its dependencies current."""
        ...

    async def get_tagged(self, key: str) -> tuple[bytes, tuple[Dependency, ...]] | None:
        """`get`, also naming the dependencies the value recorded, (tag key, version) pairs
        (the L1 near-cache indexes its entries by the tag keys, and in tracking mode keeps
        an entry across a report of a tag key whose version it recorded still holds).

        A backend that cannot tell returns no dependencies (this default): the L1 then
        treats the entry as depending on every tag.
        """
        value = await self.get(key)
        return None if value is None else (value, ())

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        """Store ``value`` for ``ttl`` seconds if every dependency is current; say if stored."""
        ...

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``; return how many existed."""
        ...

    async def get_raw(self, key: str) -> bytes | None:
        """Return bookkeeping bytes stored with [`set_raw`][asgi_cache.backends.Backend.set_raw] (no
        dependency check)."""
        ...

    async def set_raw(self, key: str, value: bytes, ttl: float) -> None:
        """Store bookkeeping bytes for ``ttl`` seconds."""
        ...

    async def versions(self, tag_keys: Sequence[str], ttl: float) -> list[str]:
        """Return the current version of each tag key, creating missing ones.

        Each returned tag key is kept alive for at least ``ttl`` seconds.
        """
        ...

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        """Retire the current version of each tag key; return how many had one.

        ``budget``: a time budget of its own instead of the backend's per-operation one, for
        an invalidation that must land now (an unsafe request's); such a call is tried even
        while a circuit breaker is open. Backends without time budgets ignore it.
        """
        ...

    async def delete_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        """Delete every key starting with ``prefix`` (in batches); return how many.

        ``progress``, when given, is called with the running count after each batch.
        """
        ...

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        """Take the lock ``key`` with ``token`` for ``ttl`` seconds unless someone holds it."""
        ...

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        """Reset the lock's expiry to ``ttl`` if ``token`` still holds it."""
        ...

    async def release_lock(self, key: str, token: str) -> bool:
        """Release the lock if ``token`` still holds it; return whether it did."""
        ...

    async def set_if_locked(
        self,
        key: str,
        value: bytes,
        ttl: float,
        deps: Sequence[Dependency],
        lock_key: str,
        token: str,
    ) -> bool:
        """[`set`][asgi_cache.backends.Backend.set], but only while ``lock_key`` still holds
        ``token`` (a fenced write)."""
        ...

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` (no payload)."""
        ...

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(channel)`` for every later publish on a channel starting with ``prefix``.

        Returns once the subscription is active, so a publish that follows is delivered.
        One subscriber connection serves every subscription of the backend. A backend whose
        subscription can break calls ``callback`` with `SUBSCRIPTION_LOST` when it finds it
        broken and `SUBSCRIPTION_RESTORED` once it is confirmed again (what was published in
        between is missed).
        """
        ...

    async def track(self, prefixes: Sequence[str], callback: Callable[[str], None]) -> None:
        """Call ``callback(key)`` for every later change of a key under one of ``prefixes``,
        by anyone (writes, deletes, expiry, eviction), with `INVALIDATE_ALL` when every key
        may have changed; `SUBSCRIPTION_LOST` and `SUBSCRIPTION_RESTORED` announce a gap, as
        for `subscribe`. Returns once changes are reported (Redis ``CLIENT TRACKING``, see
        ``backends/_tracking.py``).

        Raises:
            TrackingRefused: Changes cannot be reported here (this default).
            BackendError: Not now (Redis unreachable): try again later.
        """
        raise TrackingRefused(f"{self.name} cannot report key changes")

    async def ping(self) -> float:
        """Round-trip to the store; return the latency in seconds."""
        ...

    async def info(self) -> dict[str, Any]:
        """Facts for health output: version, used_memory, maxmemory, maxmemory_policy."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources."""
        ...
