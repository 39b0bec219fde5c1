"""``WriteBehind``: cache a write at once, hand it to the database later, in batches.

``wb.write(key, value)`` stores the cache entry and appends the change to the name's log in
one atomic step (one script on Redis) and returns once Redis holds both; a worker
(`.worker`) hands the changes to the handler in batches. Unlike the rest of the data
API, ``write`` does not fail open: a change that cannot be made durable raises
[`BackendError`][asgi_cache.BackendError], so the app decides (write to the database itself, answer
503) instead of losing it silently.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any, Self

from .._entries import encode_entry
from .._exceptions import BackendError, BacklogFullError, ConfigurationError
from .._store import Store
from .._tasks import BackgroundTasks
from .._write_behind_status import WriteBehindStatus
from ..backends._streams import EntryWrite, StreamKeys, Streams, streams_of
from ..keys import validate_key
from .changes import Change, DeadLetter, Handler, committed_ids, dead_letter_of
from .options import WriteBehindOptions
from .worker import Counters, Worker


class WriteBehind:
    """One write-behind name of a cache: its writes, its worker and its dead letter.

    Built by [`Cache.write_behind`][asgi_cache.Cache.write_behind]; see
    ``docs/write-behind.md``.

    Args:
        store: The cache's store.
        name: The name (part of the Redis keys: ``<ns>:w:{<name>}:s``).
        handler: The database side ([`Handler`][asgi_cache.write_behind.Handler]).
        options: Batching, retries, the lease and the backlog bound.
    """

    def __init__(
        self, store: Store, name: str, handler: Handler, options: WriteBehindOptions
    ) -> None:
        self._store = store
        self.name = name
        self.handler = handler
        self.options = options
        self.keys = StreamKeys.of(store.keys.write_behind(name))
        """The name's Redis keys (stream, dead letter, versions)."""
        self.counters = Counters()
        self._workers: list[Worker] = []
        self._tasks = BackgroundTasks(f"write-behind worker {name!r}")

    def _streams(self) -> Streams:
        backend = self._store.runtime.backend
        streams = streams_of(backend)
        if streams is None:
            raise ConfigurationError(
                f"backend={backend.name!r} is not allowed for write-behind: expected memory:// "
                "or a redis:// backend (it needs streams)"
            )
        return streams

    # -- writes --------------------------------------------------------------------------------

    async def write(
        self, key: str, value: Any, *, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> int:
        """Cache ``value`` under ``key`` and queue the change for the handler, atomically.

        Returns once the backend holds both the entry and the change (one script on Redis).
        When the backlog is at ``max_backlog``, the ``on_backlog`` policy applies.

        Returns:
            The key's new version.

        Raises:
            BackendError: The backend failed: the change is not durable (nothing was queued);
                the caller decides what to do (this call does not fail open).
            BacklogFullError: The backlog is full and the policy is ``"refuse"``.
            ConfigurationError: ``key``, ``ttl`` or a tag is not allowed.
            SerializationError: ``value`` cannot be encoded.
        """
        store = self._store
        validate_key(key)
        fresh = store.jittered(store.resolve_ttl(ttl))
        entry = store.value_entry(key, value, ttl=fresh)
        snapshot = await store.tags.snapshot(tags, ttl=fresh)
        if not snapshot.deps and store.settings.enabled:
            raise BackendError(f"write-behind {self.name!r}: the tags of {key!r} could not be read")
        full_key = store.keys.data(key)
        lifetime = max(entry.stale_until - time.time(), 0.001)
        change = EntryWrite(full_key, encode_entry(entry, full_key), lifetime, snapshot.deps)
        version = await self._append(key, change, deleted=False)
        if version:
            store.stats.stored()
            return version
        return await self._inline(key, value, deleted=False, ttl=ttl, tags=tags)

    async def delete(self, key: str) -> int:
        """Delete ``key``'s entry and queue the deletion for the handler, atomically.

        Returns:
            The key's new version.

        Raises:
            BackendError: As for `write`.
            BacklogFullError: As for `write`.
        """
        validate_key(key)
        full_key = self._store.keys.data(key)
        version = await self._append(key, EntryWrite(full_key, b"", 0.001), deleted=True)
        return version or await self._inline(key, None, deleted=True)

    async def _append(self, key: str, entry: EntryWrite, *, deleted: bool) -> int:
        o = self.options
        streams = self._streams()
        change_id = uuid.uuid4().hex
        try:
            if streams.atomic:
                call = streams.write(
                    self.keys,
                    key,
                    entry,
                    deleted=deleted,
                    change_id=change_id,
                    limit=o.max_backlog,
                    budget=o.write_timeout,
                )
                version = int(await self._store.tags.apply(call, (entry.full_key,)))
            else:
                version = await self._two_steps(streams, key, entry, deleted, change_id)
        except BackendError as exc:
            self._store.stats.error("write-behind write", exc)
            raise
        self.counters.written += bool(version)
        return version

    async def _two_steps(
        self, streams: Streams, key: str, entry: EntryWrite, deleted: bool, change_id: str
    ) -> int:
        """The change on a cluster, where the entry and the log live in different slots.

        1. The old entry is deleted (queued for retry if that fails, as every delete), so
           nothing older than this change is served from here on, whatever happens next.
        2. The change is appended (the durable step: a failure raises ``BackendError``).
        3. The entry is stored, and deleted again if a newer write of the key was appended
           meanwhile (that write stores its own): the key ends with the newest value or
           none, never an older one. A failure here costs a miss, not the change.
        """
        tags, full_key = self._store.tags, entry.full_key
        await tags.delete(full_key)
        o = self.options
        version = await streams.append(
            self.keys,
            key,
            entry.payload,
            deleted=deleted,
            change_id=change_id,
            limit=o.max_backlog,
            budget=o.write_timeout,
        )
        if not version or deleted:
            return version
        backend = self._store.runtime.backend
        try:
            stored = await tags.apply(
                backend.set(full_key, entry.payload, entry.ttl, entry.deps), (full_key,)
            )
            stored = stored and await streams.latest_version(self.keys, key) <= version
        except BackendError as exc:
            self._store.stats.error("write-behind entry", exc)
            stored = False
        if not stored:
            await tags.delete(full_key)
        return version

    async def _inline(
        self,
        key: str,
        value: Any,
        *,
        deleted: bool,
        ttl: float | None = None,
        tags: Sequence[str] = (),
    ) -> int:
        """The backlog is full: refuse, or hand the change to the handler now and then cache."""
        o = self.options
        if o.on_backlog == "refuse":
            self.counters.refused += 1
            raise BacklogFullError(
                f"write-behind {self.name!r} holds max_backlog={o.max_backlog} changes not yet "
                f"handled; the change to {key!r} was refused (on_backlog='refuse'): nothing was "
                "cached or queued"
            )
        version = await self._streams().next_version(self.keys, key)
        change = Change(
            key=key,
            value=value,
            deleted=deleted,
            version=version,
            id=uuid.uuid4().hex,
            written_at=time.time(),
            entry_id="",
        )
        if change.id not in committed_ids([change], await self.handler([change])):
            raise BackendError(f"write-behind {self.name!r}: the handler did not commit {key!r}")
        self.counters.inline += 1
        if deleted:
            await self._store.tags.delete(self._store.keys.data(key))
        else:
            await self._store.set_value(key, value, ttl, tags)
        return version

    # -- the worker ----------------------------------------------------------------------------

    def _worker(self, consumer: str | None) -> Worker:
        if consumer is None:
            consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return Worker(
            self._streams,
            self.keys,
            consumer,
            self.handler,
            self._store.serializer,
            self._store.keys,
            self.options,
            self.counters,
        )

    async def run(self, *, consumer: str | None = None) -> None:
        """Run a worker until `stop` (or cancellation); see `.worker`.

        Starts the cache for its duration (connecting lazily) and stops it afterwards.

        Args:
            consumer: The worker's name in the consumer group; by default unique per run
                (host, pid, random). A stable name (a pod's) lets a restarted worker take
                back its own pending changes at once instead of after the lease.
        """
        await self._run_worker(until_idle=False, consumer=consumer)

    async def drain(self, *, consumer: str | None = None) -> int:
        """Run a worker until it finds nothing left to take; return how many changes it
        settled (acknowledged or dead-lettered). For scripts, tests and the demo."""
        return await self._run_worker(until_idle=True, consumer=consumer)

    async def _run_worker(self, *, until_idle: bool, consumer: str | None) -> int:
        worker = self._worker(consumer)
        self._workers.append(worker)
        runtime = self._store.runtime
        await runtime.start()
        try:
            return await worker.run(until_idle=until_idle)
        finally:
            self._workers.remove(worker)
            await runtime.stop()

    def start(self) -> None:
        """Run a worker in the background (inside an app's lifespan); `stop` or
        closing the cache ends it."""
        self._tasks.start_soon(self.run)

    def shutdown(self) -> None:
        """Ask this process's workers to stop after the batch in hand, without waiting (safe
        from a signal handler); `run` then returns."""
        for worker in list(self._workers):
            worker.stop()

    async def stop(self) -> None:
        """Stop this process's workers gracefully: each finishes its batch in hand (what the
        handler committed is acknowledged, the rest stays pending for the next worker)."""
        self.shutdown()
        await self._tasks.drain()

    async def aclose(self) -> None:
        """Stop at once: cancel the background worker (its batch stays pending)."""
        self.shutdown()
        await self._tasks.aclose()

    async def __aenter__(self) -> Self:
        """Start the cache (a script or the worker command that has no lifespan)."""
        await self._store.runtime.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the cache again (the last user closes its connections)."""
        await self._store.runtime.stop()

    # -- operations ----------------------------------------------------------------------------

    def status(self) -> WriteBehindStatus:
        """This process's counters (no round trip); see ``WriteBehindStatus``."""
        c = self.counters
        return WriteBehindStatus(
            name=self.name,
            running=bool(self._workers),
            written=c.written,
            applied=c.applied,
            coalesced=c.coalesced,
            batches=c.batches,
            retries=c.retries,
            reclaimed=c.reclaimed,
            dead_lettered=c.dead_lettered,
            inline=c.inline,
            refused=c.refused,
            lease_lost=c.lease_lost,
            last_error=c.last_error,
        )

    async def probe(self) -> WriteBehindStatus:
        """`status` plus the backlog, pending changes, dead letters and lag as the
        backend sees them (``error`` instead when it does not answer)."""
        report = self.status()
        try:
            info = await self._streams().info(self.keys)
        except BackendError as exc:
            report["error"] = str(exc)
            return report
        report["backlog"] = info["backlog"]
        report["pending"] = info["pending"]
        report["dead_letters"] = info["dead_letters"]
        report["lag_seconds"] = info["lag_seconds"]
        report["consumers"] = info["consumers"]
        return report

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` changes in the dead letter, with why they are there.

        Raises:
            BackendError: The backend failed.
        """
        records = await self._streams().dead_letters(self.keys, limit)
        return [dead_letter_of(r, self._store.serializer, self._store.keys) for r in records]

    async def replay(self, *ids: str) -> int:
        """Move dead letters (by their ids; all of them when none are given) back into the
        stream, same version and idempotency id; return how many.

        Raises:
            BackendError: The backend failed.
        """
        if not ids:
            ids = tuple(d.id for d in await self.dead_letters(limit=10_000))
        return await self._streams().replay(self.keys, list(ids))
