"""Tags: the versions entries depend on, invalidation, and keeping every L1 in line.

An entry records the versions of its tags when its value was loaded (a `TagSnapshot`)
and is served only while they are current (see `asgi_cache.backends.base`).
Invalidating a tag retires its version: one command per tag, never a scan. Deleting keys and
clearing the namespace are invalidations too, and all of them are durable: one that fails
because the backend is unreachable waits in the retry queue (`asgi_cache._retry`) until
it lands, never dropped.

After every change this module brings the L1 near-caches in line, in one place
(`Tags.apply`): this process's at once, the other processes' by a publish.

Queued invalidations land before this process reads from or stores to the backend again
(`Tags.settle`): when Redis comes back with its old data (a restart from its RDB, a
failover), a read or a store first delivers the queue; while it cannot, the read is a miss
and the store fails open. Other
processes do not know this process's queue: they may serve the old entries until it lands
(``docs/invalidation.md``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from ._exceptions import BackendBusyError, BackendError, BackendTimeoutError
from ._flights import SingleFlight
from ._retry import InvalidationQueue
from ._runtime import Runtime
from .backends.base import Dependency
from .keys import URL_TAG_PREFIX, validate_tag

T = TypeVar("T")

_BROADCAST_KEYS: Final = 16
"""Most keys announced one by one; more are announced as one "empty every L1" message."""
_LAST_TRY: Final = 0.01
"""Seconds of an invalidation's own budget below which no further attempt is made."""
_REMEMBERED_MOVES: Final = 4096
"""Most tag keys whose last local invalidation is remembered (see `Tags.moved_since`);
beyond it the memory is reset and every earlier mark counts as moved (safe: never stale)."""


@dataclass(frozen=True, slots=True)
class TagSnapshot:
    """The versions of a set of tags, read before a value is loaded.

    Storing the loaded value with this snapshot makes the store race-free: if any of the tags
    is invalidated while the loader runs, the entry is not stored (or, if it lands, is never
    served), because it records versions that are no longer current. An empty snapshot means
    the versions could not be read (the backend failed): nothing is stored with it.
    """

    deps: tuple[Dependency, ...]


NO_SNAPSHOT: Final = TagSnapshot(())
"""The snapshot of a failed (or skipped) tag read: storing with it is a failure."""


class Tags:
    """Tag versions and every invalidation of one cache.

    Args:
        runtime: The cache's shared state; the retry queue closes with it.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self._keys = runtime.keys
        self._stats = runtime.stats
        self.queue = InvalidationQueue(
            invalidate=self._retry_invalidate,
            delete=self._retry_delete,
            all_tag=runtime.keys.all_tag,
        )
        """Invalidations waiting for the backend to come back."""
        self._settling = SingleFlight()
        # This process's own invalidations, by tag key: the generation of the last one.
        self._generation = 0
        self._moved: dict[str, int] = {}
        self._moved_floor = 0  # marks below it count as moved (the memory was reset)
        runtime.on_close(self.queue.aclose)

    # -- this process's invalidations ----------------------------------------------------------

    def mark(self) -> int:
        """A mark to ask `moved_since` about later (taken before a value is loaded)."""
        return self._generation

    def moved_since(self, mark: int, tags: Iterable[str]) -> bool:
        """Whether this process invalidated one of ``tags`` (or cleared) after ``mark``,
        whether or not that invalidation has landed in the backend yet.

        A loaded value handed to other callers needs it: a store that was refused proves a
        write landed while the loader ran, but a store that failed (or one made before a
        queued invalidation lands) proves nothing, and a caller that asked after this
        process's write must not take a value read before it (read-after-write).
        """
        if mark < self._moved_floor:
            return True
        moved, keys = self._moved, self._keys
        if moved.get(keys.all_tag, -1) > mark:
            return True
        return any(moved.get(keys.tag(t), -1) > mark for t in tags)

    def _record(self, tag_keys: Iterable[str]) -> None:
        self._generation += 1
        if len(self._moved) >= _REMEMBERED_MOVES:
            self._moved.clear()
            self._moved_floor = self._generation
        for key in tag_keys:
            self._moved[key] = self._generation

    # -- versions ------------------------------------------------------------------------------

    async def snapshot(self, tags: Iterable[str] = (), *, ttl: float | None = None) -> TagSnapshot:
        """Read (creating if needed) the versions of ``tags`` before loading a value.

        Every entry also depends on the namespace-wide tag, so `clear` reaches it. The
        versions are kept alive at least ``ttl`` (the entry's lifetime) plus a lock lease.
        On a backend failure the snapshot is empty (storing with it fails open too).
        """
        keys = self._keys
        tag_keys = [keys.all_tag, *(keys.tag(validate_tag(t)) for t in tags)]
        return await self._read(tag_keys, ttl)

    async def extend(
        self, snapshot: TagSnapshot, tags: Iterable[str], *, ttl: float
    ) -> TagSnapshot:
        """``snapshot`` plus the versions of ``tags`` it does not hold yet (tags a response
        named at run time). An empty snapshot stays empty: its store fails anyway."""
        known = {k for k, _ in snapshot.deps}
        keys = self._keys
        new = [keys.tag(t) for t in tags if keys.tag(t) not in known]
        if not new or not snapshot.deps:
            return snapshot
        extra = await self._read(new, ttl)
        if not extra.deps:
            return snapshot  # the new tags could not be read: store under the ones we have
        return TagSnapshot(snapshot.deps + extra.deps)

    async def _read(self, tag_keys: list[str], ttl: float | None) -> TagSnapshot:
        s = self._settings
        if not s.enabled:
            return NO_SNAPSHOT
        if self.queue and not await self.settle():
            # Queued invalidations land before anything new is stored: a store under the
            # versions they are about to retire would be killed by them when they land.
            return NO_SNAPSHOT
        lifetime = max(s.default_ttl, ttl or 0.0) + s.lock_lease
        try:
            versions = await self._runtime.backend.versions(tag_keys, lifetime)
        except BackendError as exc:
            self._stats.error("tag read", exc)
            return NO_SNAPSHOT
        return TagSnapshot(tuple(zip(tag_keys, versions, strict=True)))

    # -- invalidation --------------------------------------------------------------------------

    async def invalidate(self, *tags: str, budget: float | None = None) -> int:
        """Retire the versions of ``tags``; return how many had live entries (see
        ``Cache.invalidate_tags``). Queued for retry when the backend fails.

        ``budget``: the invalidation must land now (an unsafe request's, before its response
        starts: ``invalidation_timeout``). It gets that many seconds instead of the
        per-operation budget, is tried even while the circuit breaker is open, and an
        attempt that timed out (or found no pooled connection free) is repeated while the
        budget lasts (retiring a version twice is harmless); only then is it queued.
        """
        if not tags or not self._settings.enabled:
            return 0
        tag_keys = [self._keys.tag(validate_tag(t)) for t in tags]
        self._record(tag_keys)  # before it lands: a load running now may predate it
        deadline = None if budget is None else time.monotonic() + budget
        while True:
            backend = self._runtime.backend
            if deadline is None:
                change = backend.invalidate(tag_keys)
            else:
                left = max(deadline - time.monotonic(), _LAST_TRY)
                change = backend.invalidate(tag_keys, budget=left)
            try:
                count = await self.apply(change, tag_keys=tag_keys)
            except (BackendTimeoutError, BackendBusyError) as exc:
                if deadline is not None and deadline - time.monotonic() > _LAST_TRY:
                    continue  # slow or busy, not down: the budget allows another attempt
                self._failed_invalidation(tag_keys, exc)
                return 0
            except BackendError as exc:
                self._failed_invalidation(tag_keys, exc)
                return 0
            urls = sum(1 for t in tags if t.startswith(URL_TAG_PREFIX))
            if urls:
                self._stats.invalidated(urls, kind="url")
            if urls < len(tag_keys):
                self._stats.invalidated(len(tag_keys) - urls)
            return count

    def _failed_invalidation(self, tag_keys: list[str], exc: BackendError) -> None:
        self._stats.error("invalidate", exc)
        self.queue.add(tags=tag_keys)

    async def delete(self, *full_keys: str) -> int:
        """Delete entries by full key; return how many existed. A delete is an invalidation:
        when the backend fails it is queued for retry, never dropped."""
        if not full_keys or not self._settings.enabled:
            return 0
        try:
            count = await self.apply(self._runtime.backend.delete(*full_keys), full_keys)
        except BackendError as exc:
            self._stats.error("delete", exc)
            self.queue.add(keys=full_keys)
            return 0
        self._stats.deleted(count)
        return count

    async def delete_prefix(
        self, prefix: str, *, batch: int, progress: Callable[[int], None] | None
    ) -> int:
        """Delete every entry whose full key starts with ``prefix`` (a scan, see
        ``Cache.invalidate_prefix``).

        Raises:
            BackendError: The backend failed (an operator asked for a count).
        """
        call = self._runtime.backend.delete_prefix(prefix, batch=batch, progress=progress)
        count = await self.apply(call)
        self._stats.deleted(count, kind="prefix")
        return count

    async def clear(self) -> None:
        """Invalidate every entry of the namespace (one tag version, O(1))."""
        if not self._settings.enabled:
            return
        all_tag = self._keys.all_tag
        self._record((all_tag,))
        try:
            await self.apply(self._runtime.backend.invalidate([all_tag]), tag_keys=[all_tag])
        except BackendError as exc:
            self._stats.error("clear", exc)
            self.queue.add(tags=[all_tag])
            return
        self._stats.cleared()

    async def drain(self) -> bool:
        """Retry queued invalidations now; return whether none are left pending."""
        return await self.queue.flush() if len(self.queue) else True

    async def settle(self) -> bool:
        """Deliver the queued invalidations before a read; return whether none are left.

        Called by every read while the queue is not empty: the first caller tries once
        (each command bounded by ``op_timeout``; at once while the circuit breaker is open)
        and concurrent readers share its attempt. ``False`` means the backend may still hold
        entries older than an invalidation: the read must be a miss.
        """
        if not self.queue:
            return True
        return await self._settling.run("settle", self.queue.flush)

    async def _retry_invalidate(self, tag_keys: Sequence[str]) -> int:
        return await self.apply(self._runtime.backend.invalidate(tag_keys), tag_keys=tag_keys)

    async def _retry_delete(self, *full_keys: str) -> int:
        return await self.apply(self._runtime.backend.delete(*full_keys), full_keys)

    # -- the L1 fan-out ------------------------------------------------------------------------

    async def apply(
        self,
        change: Awaitable[T],
        full_keys: Sequence[str] = (),
        *,
        tag_keys: Sequence[str] = (),
    ) -> T:
        """Await a backend ``change`` to ``full_keys``, or to the entries depending on
        ``tag_keys`` (neither: possibly every key), then bring every L1 in line.

        This process's L1 forgets those keys or dependants (all of it when none are named)
        whatever happens, even when the change fails or is cancelled: what it held may be
        older than what landed. The other processes are told by a publish once the change
        has landed, unless it answered ``False`` (a store that was refused changed nothing).
        Best effort: a lost message is bounded by ``l1_ttl`` (``docs/near-cache.md``).

        Raises:
            BackendError: The change failed (the caller fails open or queues it).
        """
        near = self._runtime.near
        try:
            result = await change
        finally:
            if near is not None:
                if full_keys:
                    near.drop(*full_keys)
                elif tag_keys:
                    near.drop_tags(*tag_keys)
                else:
                    near.clear()
        if near is None or result is False:
            return result
        # Many at once: one message emptying every L1 beats one message per key or tag;
        # the namespace tag empties every L1 anyway.
        names = full_keys or [t for t in tag_keys if t != self._keys.all_tag]
        if len(names) > _BROADCAST_KEYS or len(names) < len(full_keys or tag_keys):
            names = []
        channels = [near.channel(n) for n in names] or [near.channel()]
        try:
            for channel in channels:
                await self._runtime.backend.publish(channel)
        except BackendError as exc:
            self._stats.error("L1 invalidation publish", exc)
        return result
