"""``get_or_load``: cache-aside with stampede protection, stale-while-revalidate and XFetch.

One call does the whole read path of cache-aside::

    fresh entry  -> return it (and maybe refresh early, XFetch)
    stale entry  -> return it at once, refresh in the background (RFC 5861 semantics for data)
    miss         -> single-flight in this process; then the distributed lock:
                    holder: snapshot tags, run the loader, store (fenced by the lock), release,
                            publish on the notify channel
                    waiter: sleep until the holder publishes (bounded by lock_timeout), then
                            read the value, or take the lock and load, or serve stale

A loader returning ``None`` is cached as a short negative entry. Tag versions are read
*before* the loader runs and the value is stored only if they are still current, so a load
that overlaps an invalidation never leaves a stale entry behind.

Everything fails open: when Redis does not answer, the loader runs directly (single-flight
still coalesces callers in this process) and no lock, wait or store is attempted.

A hit returns what a miss returns: values are rebuilt into ``returns=`` or the loader's return
annotation (`asgi_cache._rebuild`); a model stored without a known type is warned about
once, with the fix. A value that cannot be encoded is an error raised once per type
(``get_or_load``) or logged once (``aside``), and returned uncached.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._entries import Entry, EntryKind, model_name
from ._exceptions import SerializationError
from ._flights import SingleFlight
from ._options import LoadOptions, Unstorable
from ._rebuild import NO_TYPE, Rebuild, rebuilder, return_type, untyped_hint
from ._stats import Source
from ._store import Store, WriteResult
from ._tasks import BackgroundTasks
from ._validate import TAG_LIST
from .keys import validate_key
from .locking import DistributedLock, TurnOutcome

logger = logging.getLogger("asgi_cache")

Loader = Callable[[], Awaitable[Any] | Any]


def _is_model_type(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) or hasattr(cls, "model_fields")


class _Outcome(enum.Enum):
    HIT = 1
    STALE = 2
    MISS = 3


@dataclass(frozen=True, slots=True)
class _Found:
    value: Any
    entry: Entry


class Loading:
    """The cache-aside engine of one cache (single-flight state and background refreshes),
    on its `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.flights = SingleFlight()
        self._background = BackgroundTasks("background refresh")
        self._refreshing: set[str] = set()  # full keys with a refresh running
        self._random = random.Random()
        self._rebuilders: dict[Any, Rebuild | None] = {}
        self._unstorable: dict[type, str] = {}  # model types whose values cannot be encoded
        self._logged: set[str] = set()

    def rebuild_for(self, loader: Loader, returns: Any = None) -> Rebuild | None:
        """How hits of ``loader``'s values are rebuilt: into ``returns`` when given, else
        into the loader's return annotation (``None`` when neither names a model)."""
        annotation = return_type(loader) if returns is None else returns
        return None if annotation is NO_TYPE else self.rebuilder(annotation)

    def rebuilder(self, annotation: Any) -> Rebuild | None:
        """The (memoized) function rebuilding hits into ``annotation``."""
        try:
            return self._rebuilders[annotation]
        except KeyError:
            pass
        except TypeError:  # unhashable annotation: build it every time
            return rebuilder(annotation)
        built = self._rebuilders[annotation] = rebuilder(annotation)
        return built

    # -- the read path -------------------------------------------------------------------------

    async def get_or_load(self, key: str, loader: Loader, opts: LoadOptions) -> Any:
        """Return the cached value of ``key``, loading it with ``loader`` on a miss.

        Concurrent callers of one key share one lookup (the read, and the load if it is a
        miss): a hot key costs one Redis read per burst of callers, not one per caller.
        """
        store = self.store
        full_key = store.keys.data(validate_key(key))
        stats = store.stats
        if not store.settings.enabled:
            stats.miss()
            return await self.flights.run(full_key, lambda: self._run_loader(loader))
        # Read-after-write in this process: a lookup that started before this process
        # invalidated one of the key's tags (or cleared) may return what that write replaced,
        # so a caller arriving after it starts a lookup of its own instead of joining.
        tags = store.tags
        outcome, value, source = await self.flights.run(
            full_key,
            lambda: self._lookup(full_key, key, loader, opts),
            mark=tags.mark(),
            outdated=lambda since: tags.moved_since(since, opts.tags),
        )
        if outcome is _Outcome.HIT:
            stats.hit(source)
        elif outcome is _Outcome.STALE:
            stats.served_stale(source)
        else:
            stats.miss(source)
        return value

    async def _lookup(
        self, full_key: str, key: str, loader: Loader, opts: LoadOptions
    ) -> tuple[_Outcome, Any, Source]:
        entry, reachable = await self._read(full_key)
        if entry is not None:
            found = self._decode(full_key, entry, opts)
            now = time.time()
            if found is not None and entry.is_fresh(now):
                if opts.early_refresh and self._xfetch_due(entry, now, opts.early_refresh):
                    self._refresh_in_background(full_key, key, loader, opts, entry)
                return _Outcome.HIT, found.value, reachable
            if found is not None and now < entry.stale_until:
                self._refresh_in_background(full_key, key, loader, opts, entry)
                return _Outcome.STALE, found.value, reachable
        value = await self._load(full_key, key, loader, opts, reachable=bool(reachable))
        return _Outcome.MISS, value, reachable

    def _xfetch_due(self, entry: Entry, now: float, beta: float) -> bool:
        # XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache Stampede
        # Prevention", VLDB 2015): refresh early with a probability that grows as expiry
        # nears, scaled by how long the value took to load. 1 - random() is in (0, 1].
        gap = -entry.load_time * beta * math.log(1.0 - self._random.random())
        return now + gap >= entry.fresh_until

    def _refresh_in_background(
        self, full_key: str, key: str, loader: Loader, opts: LoadOptions, seen: Entry
    ) -> None:
        # Refreshes run apart from the misses' flights: a refresh may end without a value
        # (another process is refreshing), which must not become the result of a miss.
        if full_key in self._refreshing:
            return
        self._refreshing.add(full_key)

        async def refresh() -> None:
            try:
                await self._load(
                    full_key, key, loader, opts, reachable=True, background=True, seen=seen
                )
            except Exception as exc:
                logger.warning(
                    "asgi-cache: background refresh failed; the stale value stays until it "
                    "expires: %r",
                    exc,
                )
            finally:
                self._refreshing.discard(full_key)

        self._background.start_soon(refresh)

    async def drain(self) -> None:
        """Wait for the background refreshes running now (for shutdown and tests)."""
        await self._background.drain()

    async def aclose(self) -> None:
        """Cancel the background refreshes still running (at shutdown)."""
        await self._background.aclose()
        self._refreshing.clear()

    # -- the load path -------------------------------------------------------------------------

    async def _load(
        self,
        full_key: str,
        key: str,
        loader: Loader,
        opts: LoadOptions,
        *,
        reachable: bool,
        background: bool = False,
        seen: Entry | None = None,
    ) -> Any:
        if not (opts.lock and reachable):
            return await self._load_and_store(full_key, key, loader, opts, reachable=reachable)

        async def recheck() -> _Found | None:
            # The previous holder may have stored a value between our read and our lock; a
            # refresh wants one newer than the stale entry it saw.
            found = await self._read_fresh(full_key, opts)
            if found is not None and (seen is None or found.entry.created_at > seen.created_at):
                return found
            return None

        async with self.store.locks.turn(
            full_key,
            read=lambda: self._read_fresh(full_key, opts),
            recheck=recheck,
            max_wait=opts.lock_timeout,
            wait=not background,
        ) as turn:
            if turn.outcome is TurnOutcome.HOLD:
                return await self._load_and_store(full_key, key, loader, opts, fence=turn.lock)
            if turn.found is not None:
                return turn.found.value
            if turn.outcome is TurnOutcome.NO_LOCK:
                return await self._load_and_store(full_key, key, loader, opts)
        if background:
            return None  # another process is refreshing it; the stale value was served
        # The holder is taking longer than lock_timeout: serve stale if there is any, else
        # load without the lock (the holder's value and ours are equally fresh).
        entry, source = await self._read(full_key)
        if entry is not None and time.time() < entry.stale_until:
            found = self._decode(full_key, entry, opts)
            if found is not None:
                if not entry.is_fresh(time.time()):
                    self.store.stats.served_stale()
                return found.value
        return await self._load_and_store(full_key, key, loader, opts, reachable=bool(source))

    async def _load_and_store(
        self,
        full_key: str,
        key: str,
        loader: Loader,
        opts: LoadOptions,
        *,
        reachable: bool = True,
        fence: DistributedLock | None = None,
    ) -> Any:
        store = self.store
        ttl = store.jittered(store.resolve_ttl(opts.ttl))
        snapshot = None
        if reachable:
            snapshot = await store.tags.snapshot(opts.tags, ttl=ttl + opts.stale_ttl)
        started = time.perf_counter()
        value = await self._run_loader(loader)
        load_time = time.perf_counter() - started
        if value is None:
            entry = store.value_entry(
                key, None, ttl=opts.negative_ttl, load_time=load_time, negative=True
            )
        elif type(value) in self._unstorable:
            return value  # reported once already: served uncached, not encoded again
        else:
            try:
                entry = store.value_entry(
                    key, value, ttl=ttl, stale_ttl=opts.stale_ttl, load_time=load_time
                )
            except SerializationError as exc:
                self._cannot_store(value, exc, opts)
                return value
            if opts.rebuild is None and (model := model_name(entry)) is not None:
                store.warn_untyped(
                    model, call=f"get_or_load({key!r})", hint=untyped_hint(loader, model)
                )
        if snapshot is not None:
            # Fenced by the lock when there is one: refused if its lease ran out meanwhile.
            await store.write(full_key, entry, snapshot, fence=fence)
        return value

    def _cannot_store(self, value: Any, exc: SerializationError, opts: LoadOptions) -> None:
        """A loaded value cannot be encoded (a programming error): raise it, or log it, once."""
        cls = type(value)
        if _is_model_type(cls):
            # The failure is the type's (a field no serializer stores): every later value of
            # it is returned uncached, without trying again or reporting again.
            self._unstorable[cls] = str(exc)
        if opts.unstorable is Unstorable.RAISE:
            raise exc
        message = str(exc)
        if message not in self._logged:
            self._logged.add(message)
            logger.error("asgi-cache: %s; the value is served uncached", message)

    async def _run_loader(self, loader: Loader) -> Any:
        stats = self.store.stats
        stats.loaded()
        started = time.perf_counter() if stats.timing else 0.0
        try:
            with stats.span("asgi_cache.load"):
                result = loader()
                if inspect.isawaitable(result):
                    result = await result
        finally:
            if started:
                stats.load_done(time.perf_counter() - started)
        return result

    # -- write-through -------------------------------------------------------------------------

    async def write_through(
        self,
        key: str,
        value: Any,
        *,
        write: Callable[[], Awaitable[Any]],
        ttl: float | None,
        tags: Sequence[str],
    ) -> bool:
        """Await ``write`` (the database), then cache ``value``; see ``Cache.write_through``."""
        store = self.store
        full_key = store.keys.data(validate_key(key))
        TAG_LIST.require("tags", tags)
        fresh = store.jittered(store.resolve_ttl(ttl))
        # Encode before the database write: a value that cannot be cached is a programming
        # error better raised before the row changes than after.
        if value is None:
            entry = store.value_entry(key, None, ttl=store.settings.negative_ttl, negative=True)
        else:
            entry = store.value_entry(key, value, ttl=fresh)
        await write()  # the database first; if it raises, the cache is untouched
        if not store.settings.enabled:
            return False
        # Loads that read the old row must not land after us. A locked load is fenced by its
        # lock token, so dropping the lock makes its store refuse; any load that depends on
        # ``tags`` is stopped by retiring their versions (the old entries die with them).
        if not await store.break_lock(full_key, what="write-through"):
            await store.tags.delete(full_key)  # queued for retry if it fails too: never dropped
            return False
        if tags:
            await store.tags.invalidate(*tags)
        snapshot = await store.tags.snapshot(tags, ttl=fresh)
        if await store.write(full_key, entry, snapshot) is WriteResult.STORED:
            return True
        # Not stored: the old value must not stay behind the new row. A failed delete is
        # queued and retried until it lands.
        await store.tags.delete(full_key)
        return False

    # -- reading -------------------------------------------------------------------------------

    async def _read(self, full_key: str) -> tuple[Entry | None, Source]:
        """The entry under ``full_key`` (or ``None``) and where it was answered (falsy: the
        backend did not answer)."""
        return await self.store.lookup(full_key)

    async def _read_fresh(self, full_key: str, opts: LoadOptions) -> _Found | None:
        entry, _ = await self._read(full_key)
        if entry is None or not entry.is_fresh(time.time()):
            return None
        return self._decode(full_key, entry, opts)

    def _decode(self, full_key: str, entry: Entry, opts: LoadOptions) -> _Found | None:
        """The value an entry holds, rebuilt to the loader's type; ``None`` if unusable."""
        if entry.kind is EntryKind.NEGATIVE:
            return _Found(None, entry)
        if entry.kind is EntryKind.RESPONSE:
            self.store.stats.mismatch(full_key, "an HTTP response under a data key")
            return None
        # A stored shape that no longer fits the type (a deploy changed the model) is a
        # miss, and the reload overwrites it.
        ok, value = self.store.decode(full_key, entry, opts.rebuild)
        if not ok:
            return None
        return _Found(value, entry)
