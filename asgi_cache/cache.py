"""The :class:`Cache` facade: lifecycle, the data API, entries, tags, health and stats.

Data flows one way: the middleware or a handler calls the ``Cache``; the ``Cache`` turns
values into versioned entries, records the tag versions they depend on and calls the backend.
The ``Cache`` fails open: a backend error or timeout is a miss on reads and a logged, counted
no-op on writes, never an exception to the caller.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

from ._exceptions import BackendError
from ._retry import InvalidationQueue
from ._stats import RateLimitedLog, Stats
from ._validate import TTL, whole
from .backends.base import Backend, Dependency
from .backends.breaker import CircuitBreakerBackend
from .backends.memory import MemoryBackend
from .backends.redis import RedisBackend, version_problem
from .codec import CorruptEntry, Entry, EntryKind, Serializer, decode_entry, encode_entry
from .health import HealthApp
from .keys import KeySpace, validate_key, validate_tag
from .near import NearCache
from .settings import CacheSettings

if TYPE_CHECKING:
    from .loading import Loading
    from .locking import DistributedLock, Notifier

__all__ = ["Cache", "TagSnapshot"]

T = TypeVar("T")

logger = logging.getLogger("asgi_cache")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class TagSnapshot:
    """The versions of a set of tags, read before a value is loaded.

    Storing the loaded value with this snapshot makes the store race-free: if any of the tags
    is invalidated while the loader runs, the entry is not stored (or, if it lands, is never
    served), because it records versions that are no longer current.
    """

    deps: tuple[Dependency, ...]


class Cache:
    """An async cache for one namespace on one backend.

    Build it with :meth:`from_url`, :meth:`from_env` or ``Cache(CacheSettings(...))``. It
    connects lazily on first use; use it as ``async with cache:``, as an app's
    ``lifespan=cache.lifespan``, or let :class:`~asgi_cache.CacheMiddleware` start and stop it.

    Args:
        settings: The configuration; defaults to ``CacheSettings()`` (``memory://``).
        backend: A backend to use instead of the one ``settings.url`` names (for example a
            :class:`~asgi_cache.backends.RedisBackend` on a fakeredis client).
    """

    def __init__(
        self, settings: CacheSettings | None = None, *, backend: Backend | None = None
    ) -> None:
        self.settings = settings or CacheSettings()
        self.keys = KeySpace(self.settings.namespace)
        self.serializer = Serializer(self.settings.serializer)
        self._backend = backend
        self._owns_backend = backend is None
        self._stats = Stats()
        self._errors = RateLimitedLog(logger)
        self._users = 0
        self._started = False
        self._checked = False  # startup checks warn once per cache, not once per start
        self._random = random.Random()
        self._pending = InvalidationQueue(
            invalidate=self._retry_invalidate,
            delete=self._retry_delete,
            all_tag=self.keys.all_tag,
        )
        self._loading_engine: Loading | None = None
        self._near: NearCache | None = None
        s = self.settings
        in_process = (
            backend.name == "memory" if backend is not None else s.backend_scheme == "memory"
        )
        if s.l1_ttl > 0 and not in_process:  # memory:// is in-process already
            self._near = NearCache(
                ttl=s.l1_ttl, max_entries=s.l1_max_entries, channel_prefix=self.keys.l1_channel()
            )

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str = "memory://", **options: Any) -> Cache:
        """Build a cache for ``url`` (``memory://``, ``redis://``, ``rediss://``, ``unix://``).

        ``options`` are any other :class:`CacheSettings` fields, such as ``namespace`` or
        ``default_ttl``.
        """
        return cls(CacheSettings(url=url, **options))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Cache:
        """Build a cache from ``ASGI_CACHE_*`` variables; ``options`` take precedence.

        Raises:
            ConfigurationError: A variable has a bad value (the message names it).
        """
        return cls(CacheSettings.from_env(environ, **options))

    @property
    def backend(self) -> Backend:
        """The backend, created on first use."""
        if self._backend is None:
            self._backend = self._make_backend()
        return self._backend

    def _make_backend(self) -> Backend:
        s = self.settings
        if urlsplit(s.url).scheme == "memory":
            return MemoryBackend(max_entries=s.memory_max_entries, max_bytes=s.memory_max_bytes)
        redis = RedisBackend(
            s.url,
            op_timeout=s.op_timeout,
            connect_timeout=s.connect_timeout,
            max_connections=s.max_connections,
            pool_timeout=s.pool_timeout,
            batch_reads=s.batch_reads,
        )
        if not s.breaker_threshold:
            return redis
        return CircuitBreakerBackend(
            redis, threshold=s.breaker_threshold, cooldown=s.breaker_cooldown
        )

    @property
    def breaker(self) -> CircuitBreakerBackend | None:
        """The circuit breaker in front of the backend, if there is one.

        Caches built from a Redis URL get one (unless ``breaker_threshold`` is 0); a backend
        passed to the constructor is used as given (wrap it yourself to add one).
        """
        backend = self.backend
        return backend if isinstance(backend, CircuitBreakerBackend) else None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and run the startup checks; called by ``async with`` and lifespans.

        Calls nest: each :meth:`start` needs one :meth:`stop`, and the last one closes the
        backend. Redis being down at startup is logged, not raised: the app starts and serves
        from its origin until Redis answers.
        """
        self._users += 1
        if self._started:
            return
        self._started = True
        if self.settings.enabled and not self._checked:
            await self._startup_checks()

    async def stop(self) -> None:
        """Undo one :meth:`start`; the last one releases connections."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Release the backend's connections now. The cache may be used again afterwards."""
        self._started = False
        self._users = 0
        if self._loading_engine is not None:
            await self._loading_engine.aclose()
        await self._pending.aclose()
        backend = self._backend
        if backend is not None and self._owns_backend:
            self._backend = None
            await backend.aclose()
            if self._near is not None:
                self._near.subscription.reset()  # its subscriber connection is gone
        if self._near is not None:
            self._near.clear()  # no invalidations are heard until the next subscription

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def lifespan(self, app: Any = None) -> AbstractAsyncContextManager[None]:
        """An ASGI lifespan: ``FastAPI(lifespan=cache.lifespan)`` or ``Starlette(lifespan=...)``.

        To combine it with an app's own lifespan, see :meth:`wrap_lifespan`.
        """
        return self._lifespan()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self:
            yield

    def wrap_lifespan(self, lifespan: Lifespan) -> Lifespan:
        """Return a lifespan that starts this cache, then runs ``lifespan`` inside it.

        Whatever ``lifespan`` yields (a state dict, for example) is passed through.
        """

        @asynccontextmanager
        async def wrapped(app: Any) -> AsyncIterator[Any]:
            async with self, lifespan(app) as state:
                yield state

        return wrapped

    async def _startup_checks(self) -> None:
        try:
            info = await self.backend.info()
        except BackendError as exc:
            logger.warning(
                "asgi-cache: %s backend unreachable at startup (%s); serving from the origin "
                "until it answers",
                self.backend.name,
                exc,
            )
            return
        self._checked = True
        if info.get("backend") != "redis":
            return
        if not info.get("maxmemory"):
            logger.warning(
                "asgi-cache: Redis has no maxmemory limit; a cache should set maxmemory and an "
                "evicting policy such as allkeys-lru (see docs/operations.md)"
            )
        elif info.get("maxmemory_policy") == "noeviction":
            logger.warning(
                "asgi-cache: Redis maxmemory-policy is noeviction; writes will fail with OOM "
                "when memory is full. Use allkeys-lru or allkeys-lfu for a cache"
            )
        problem = version_problem(info.get("version"))
        if problem is not None:
            logger.warning("asgi-cache: %s; upgrade Redis (see docs/operations.md)", problem)

    # -- helpers used by every feature ---------------------------------------------------------

    def jittered(self, ttl: float) -> float:
        """``ttl`` spread by the configured jitter (never below 1 ms)."""
        jitter = self.settings.ttl_jitter
        if jitter:
            ttl *= 1.0 + self._random.uniform(-jitter, jitter)
        return max(ttl, 0.001)

    def resolve_ttl(self, ttl: float | None) -> float:
        """The freshness lifetime for ``ttl``: ``None`` means the default TTL, never forever."""
        if ttl is None:
            return self.settings.default_ttl
        return float(TTL.require("ttl", ttl))

    def record_error(self, what: str, exc: BaseException) -> None:
        """Count a backend failure and log it (at most once per interval and kind)."""
        self._stats.errors += 1
        self._errors.log(
            logging.WARNING, what, "asgi-cache: %s failed, failing open: %s", what, exc
        )

    def _record_corrupt(self, full_key: str, exc: BaseException) -> None:
        self._stats.corrupt += 1
        self._errors.log(
            logging.WARNING, "corrupt", "asgi-cache: ignoring bad value at %r: %s", full_key, exc
        )

    @property
    def counters(self) -> Stats:
        """The live counters (features add to them)."""
        return self._stats

    @property
    def near(self) -> NearCache | None:
        """The in-process L1 near-cache, or ``None`` when it is off (``l1_ttl`` is 0 or the
        backend is ``memory://``). See ``docs/near-cache.md``."""
        return self._near

    async def _broadcast(self, *full_keys: str) -> None:
        # Tell the other processes' L1 to drop ``full_keys``, or to empty itself when none
        # are given. Best effort: a lost message is bounded by l1_ttl (docs/near-cache.md).
        near = self._near
        if near is None:
            return
        # Many keys at once: one message emptying every L1 beats one message per key.
        keys = full_keys if len(full_keys) <= 16 else ()
        channels = [near.channel(k) for k in keys] or [near.channel()]
        try:
            for channel in channels:
                await self.backend.publish(channel)
        except BackendError as exc:
            self.record_error("L1 invalidation publish", exc)

    async def _retry_invalidate(self, tag_keys: Sequence[str]) -> int:
        count = await self.backend.invalidate(tag_keys)
        if self._near is not None:
            self._near.clear()
        await self._broadcast()
        return count

    async def _retry_delete(self, *full_keys: str) -> int:
        count = await self.backend.delete(*full_keys)
        if self._near is not None:
            self._near.drop(*full_keys)
        await self._broadcast(*full_keys)
        return count

    # -- entries (the layer the middleware and loaders build on) -------------------------------

    async def read_entry(self, full_key: str) -> Entry | None:
        """Read and decode the entry under ``full_key``; ``None`` on a miss of any kind.

        A backend failure, an invalidated entry and a corrupt or foreign value are all misses
        (the latter counted in ``corrupt``). Hit and miss counting is left to the caller.
        With the L1 near-cache on, a fresh entry read recently comes from this process's
        memory, without a backend round trip.
        """
        entry, _ = await self.lookup_entry(full_key)
        return entry

    async def lookup_entry(self, full_key: str) -> tuple[Entry | None, bool]:
        """Like :meth:`read_entry`, also saying whether the backend answered (or L1 did).

        Returns:
            The entry (``None`` on a miss of any kind) and ``False`` only when the backend
            failed, so the caller can skip work that needs it (locks, stores).
        """
        if not self.settings.enabled:
            return None, True
        near = self._near
        generation = -1
        if near is not None:
            entry = near.get(full_key)
            if entry is not None:
                return entry, True
            # Filled only while subscribed, so no invalidation of what it holds goes unheard.
            if await near.subscription.subscribe(self.backend):
                generation = near.generation
        try:
            raw = await self.backend.get(full_key)
        except BackendError as exc:
            self.record_error("read", exc)
            return None, False
        if raw is None:
            return None, True
        try:
            entry = decode_entry(raw, full_key)
        except CorruptEntry as exc:
            self._record_corrupt(full_key, exc)
            return None, True
        if generation >= 0 and near is not None:
            near.put(full_key, entry, generation)
        return entry, True

    async def snapshot(self, tags: Iterable[str] = (), *, ttl: float | None = None) -> TagSnapshot:
        """Read (creating if needed) the versions of ``tags`` before loading a value.

        Every entry also depends on the namespace-wide tag, so :meth:`clear` reaches it. On a
        backend failure the snapshot is empty, and storing with it will be attempted and fail
        open too.
        """
        tag_keys = [self.keys.all_tag, *(self.keys.tag(validate_tag(t)) for t in tags)]
        if not self.settings.enabled:
            return TagSnapshot(())
        lifetime = max(self.settings.default_ttl, ttl or 0.0) + self.settings.lock_lease
        try:
            versions = await self.backend.versions(tag_keys, lifetime)
        except BackendError as exc:
            self.record_error("tag read", exc)
            return TagSnapshot(())
        return TagSnapshot(tuple(zip(tag_keys, versions, strict=True)))

    async def write_entry(
        self,
        full_key: str,
        entry: Entry,
        snapshot: TagSnapshot,
        *,
        fence: tuple[str, str] | None = None,
    ) -> bool:
        """Store ``entry`` until its ``stale_until`` if ``snapshot``'s tags are still current.

        With ``fence`` (a lock key and token), store only while that token holds the lock, so
        a holder whose lease ran out cannot overwrite what the next holder wrote. Returns
        whether it was stored. Failures are counted and logged, never raised.
        """
        return bool(await self.try_write_entry(full_key, entry, snapshot, fence=fence))

    async def try_write_entry(
        self,
        full_key: str,
        entry: Entry,
        snapshot: TagSnapshot,
        *,
        fence: tuple[str, str] | None = None,
    ) -> bool | None:
        """Like :meth:`write_entry`, telling a refusal from a failure.

        Returns ``True`` if stored; ``False`` if refused (a tag moved on since ``snapshot``,
        the fence's lock is held by someone else, the entry is already past its lifetime, or
        the cache is disabled); ``None`` on a backend failure (counted and logged), including
        an empty snapshot, which means the tag read before the load failed.
        """
        if not self.settings.enabled:
            return False
        if not snapshot.deps:
            return None
        lifetime = entry.stale_until - time.time()
        if lifetime <= 0:
            return False
        payload = encode_entry(entry, full_key)
        try:
            if fence is None:
                stored = await self.backend.set(full_key, payload, lifetime, snapshot.deps)
            else:
                stored = await self.backend.set_if_locked(
                    full_key, payload, lifetime, snapshot.deps, *fence
                )
        except BackendError as exc:
            self.record_error("write", exc)
            return None
        finally:
            # Whatever this process held for the key is older than what was written (even
            # when the caller is cancelled while the write may have landed).
            if self._near is not None:
                self._near.drop(full_key)
        if stored:
            self._stats.sets += 1
            await self._broadcast(full_key)
        return stored

    def make_value_entry(
        self,
        key: str,
        value: Any,
        *,
        ttl: float,
        stale_ttl: float = 0.0,
        load_time: float = 0.0,
        negative: bool = False,
    ) -> Entry:
        """Encode ``value`` as an entry fresh for ``ttl`` seconds (jitter already applied).

        Raises:
            SerializationError: The value cannot be encoded; the message names key and type.
        """
        now = time.time()
        if negative:
            kind, body, tagged = EntryKind.NEGATIVE, b"", False
        else:
            kind, body, tagged = self.serializer.encode(value, key=key)
        return Entry(
            kind=kind,
            body=body,
            created_at=now,
            fresh_until=now + ttl,
            stale_until=now + ttl + stale_ttl,
            load_time=load_time,
            tagged=tagged,
        )

    def decode_value(self, full_key: str, entry: Entry) -> tuple[bool, Any]:
        """Decode a value entry: ``(True, value)``, or ``(False, None)`` if it is corrupt."""
        try:
            return True, self.serializer.decode(entry)
        except CorruptEntry as exc:
            self._record_corrupt(full_key, exc)
            return False, None

    # -- the data API --------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the fresh value cached under ``key``, or ``default`` on a miss.

        Never raises because of the backend: a failure, a corrupt value or an invalidated entry
        is a miss. A cached "not found" (negative entry) also returns ``default``.
        """
        full_key = self.keys.data(validate_key(key))
        entry = await self.read_entry(full_key)
        if entry is None or not entry.is_fresh(time.time()):
            self._stats.misses += 1
            return default
        ok, value = self.decode_value(full_key, entry)
        if not ok or entry.kind is EntryKind.NEGATIVE:
            self._stats.misses += 1
            return default
        self._stats.hits += 1
        return value

    async def set(
        self, key: str, value: Any, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> bool:
        """Cache ``value`` under ``key`` for ``ttl`` seconds (default TTL when ``None``).

        The TTL gets the configured jitter. ``tags`` name what the value derives from, for
        :meth:`invalidate_tags`. Returns whether the value was stored; a backend failure
        returns ``False`` (counted and logged), it does not raise.

        Raises:
            SerializationError: The value cannot be encoded (a programming error, so it is
                raised rather than swallowed).
        """
        validate_key(key)
        fresh = self.jittered(self.resolve_ttl(ttl))
        entry = self.make_value_entry(key, value, ttl=fresh)
        snapshot = await self.snapshot(tags, ttl=fresh)
        return await self.write_entry(self.keys.data(key), entry, snapshot)

    async def delete(self, *keys: str) -> int:
        """Delete the entries of ``keys``; return how many existed (0 on a backend failure)."""
        if not keys or not self.settings.enabled:
            return 0
        full = [self.keys.data(validate_key(k)) for k in keys]
        try:
            count = await self.backend.delete(*full)
        except BackendError as exc:
            self.record_error("delete", exc)
            self._pending.add(keys=full)  # a delete is an invalidation: never drop it
            return 0
        finally:
            if self._near is not None:
                self._near.drop(*full)
        self._stats.deletes += count
        await self._broadcast(*full)
        return count

    async def invalidate_tags(self, *tags: str) -> int:
        """Stop serving every entry (data or response) that carries any of ``tags``.

        Costs one command per tag, never a scan. Returns how many tags had live entries. When
        the backend cannot be reached the invalidation is queued and retried in the background
        until it lands (see ``pending_invalidations`` in :meth:`stats`); it is never dropped.
        """
        if not tags or not self.settings.enabled:
            return 0
        tag_keys = [self.keys.tag(validate_tag(t)) for t in tags]
        try:
            count = await self.backend.invalidate(tag_keys)
        except BackendError as exc:
            self.record_error("invalidate", exc)
            self._pending.add(tags=tag_keys)
            return 0
        finally:
            # L1 entries do not carry their tags: emptying it all is coarse but never wrong.
            if self._near is not None:
                self._near.clear()
        self._stats.invalidations += len(tag_keys)
        await self._broadcast()
        return count

    async def invalidate_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        """Delete every data entry whose key starts with ``prefix`` (``"users:"``).

        This scans the keyspace (SCAN in batches of ``batch`` on Redis), so it is an operator
        tool for rare bulk clean-ups; to invalidate related entries routinely, give them a tag
        and use :meth:`invalidate_tags`, which costs O(tags). Only data entries (``get``/``set``
        /``get_or_load`` keys) are reached; HTTP response entries are keyed by digests.

        Args:
            prefix: Start of the caller's keys, as passed to :meth:`set` (no namespace).
            batch: Keys per SCAN round trip.
            progress: Called with the running count of deleted keys after each batch.

        Returns:
            How many entries were deleted.

        Raises:
            ConfigurationError: ``prefix`` is not a valid key prefix or ``batch`` is not > 0.
            BackendError: The backend failed; an operator asked for a count, so this is
                reported rather than swallowed.
        """
        validate_key(prefix)
        whole().require("batch", batch)
        try:
            count = await self.backend.delete_prefix(
                self.keys.data(prefix), batch=batch, progress=progress
            )
        finally:
            if self._near is not None:
                self._near.clear()
        await self._broadcast()
        self._stats.deletes += count
        return count

    async def clear(self) -> None:
        """Invalidate every entry of this namespace at once (O(1): one tag version)."""
        if not self.settings.enabled:
            return
        try:
            await self.backend.invalidate([self.keys.all_tag])
        except BackendError as exc:
            self.record_error("clear", exc)
            self._pending.add(tags=[self.keys.all_tag])
            return
        finally:
            if self._near is not None:
                self._near.clear()
        await self._broadcast()

    async def drain_invalidations(self) -> bool:
        """Retry queued invalidations now; return whether none are left pending."""
        return await self._pending.flush() if len(self._pending) else True

    # -- HTTP response caching (asgi_cache.http) -----------------------------------------------

    def response(
        self,
        *,
        ttl: float | None = None,
        tags: Sequence[str] = (),
        stale_while_revalidate: float | None = None,
        stale_if_error: float | None = None,
        vary: Sequence[str] = (),
        public: bool = False,
        statuses: Iterable[int] | None = None,
        max_age: float | None = None,
        lock: bool = False,
    ) -> Callable[[F], F]:
        """Mark a route's responses cacheable by :class:`~asgi_cache.CacheMiddleware`.

        Goes *below* ``@app.get(...)``: the endpoint is returned unchanged, with a policy
        attached. See ``docs/http-caching.md`` for every option.

        Args:
            ttl: Freshness lifetime in seconds; ``None`` uses the response's ``s-maxage``,
                ``max-age`` or ``Expires``, else the default TTL.
            tags: Tag templates filled from path parameters (``"users:{user_id}"``).
            stale_while_revalidate: Seconds a stale response is served while one background
                refresh runs (RFC 5861).
            stale_if_error: Seconds a stale response is served when the app fails.
            vary: Request headers whose (hashed) values split the cache, e.g.
                ``["accept-language"]`` or ``["authorization"]`` for per-user entries.
            public: Also cache for requests with ``Cookie``/``Authorization`` (shared).
            statuses: Statuses that may be stored (default ``{200}``).
            max_age: Add ``Cache-Control: max-age=<n>`` for clients when the app sets none.
            lock: Coalesce misses across processes with a Redis lock.

        Returns:
            A decorator returning the endpoint itself.

        Raises:
            ConfigurationError: An option has a value that is not allowed.
        """
        from .http.policy import ResponsePolicy

        policy = ResponsePolicy.build(
            ttl=ttl,
            tags=tags,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            vary=vary,
            public=public,
            statuses=statuses,
            max_age=max_age,
            lock=lock,
        )
        return policy.attach

    def invalidates(self, *tags: str) -> Callable[[F], F]:
        """Mark a mutating route: when it succeeds (2xx/3xx), invalidate ``tags``.

        Goes *below* ``@app.put(...)``; the endpoint is returned unchanged. Templates such as
        ``"users:{user_id}"`` are filled from path parameters. :class:`~asgi_cache.CacheMiddleware`
        invalidates the tags, and the request's URI (RFC 9111 section 4.4), before the response
        starts; a 4xx/5xx or an exception invalidates nothing.

        Raises:
            ConfigurationError: A template is not a non-empty str with named fields.
        """
        from .http.policy import InvalidationPolicy

        return InvalidationPolicy.build(tags).attach

    async def invalidate_url(self, path_or_url: str) -> int:
        """Stop serving every cached response of a path: all Vary variants, queries and hosts.

        ``path_or_url`` is a path (``/users/42``, a query is ignored) or an absolute URL.
        Costs one command. Returns how many had live entries (0 or 1).
        """
        from .http.keying import url_tag

        return await self.invalidate_tags(url_tag(path_or_url))

    # -- cache-aside (asgi_cache.loading, asgi_cache.aside) ------------------------------------

    def lock_for(self, full_key: str) -> DistributedLock:
        """A fresh (not yet acquired) lock guarding ``full_key``, in the lock key space.

        Its release publishes on ``full_key``'s notify channel, waking :attr:`lock_notifier`
        waiters in every process.
        """
        from .locking import DistributedLock

        return DistributedLock(
            self.backend,
            self.keys.lock(full_key),
            lease=self.settings.lock_lease,
            on_error=self.record_error,
            notify=self.keys.notify(full_key),
        )

    @property
    def lock_notifier(self) -> Notifier:
        """Wakes this process's waiters when a locked load or response lands (one pub/sub
        subscription per backend, shared by cache-aside and the middleware)."""
        return self._loading.notifier

    @property
    def _loading(self) -> Loading:
        if self._loading_engine is None:
            from .loading import Loading

            self._loading_engine = Loading(self)
        return self._loading_engine

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        tags: Sequence[str] = (),
        lock: bool = True,
        lock_timeout: float | None = None,
        stale_ttl: float | None = None,
        negative_ttl: float | None = None,
        early_refresh: bool | float = False,
        returns: Any = None,
    ) -> T:
        """Return the value cached under ``key``; on a miss, run ``loader`` once and cache it.

        Concurrent misses share one load in this process and, with ``lock``, across processes
        (a Redis lock; waiters are woken when the value lands). A loader returning ``None``
        is cached as a negative entry for ``negative_ttl``. Never raises because of Redis: when
        it is down the loader runs directly. See ``docs/cache-aside.md``.

        Args:
            key: The caller's key, ``<entity>:<id>:<attribute>`` (``users:42:profile``).
            loader: Async callable with no arguments that reads the source of truth.
            ttl: Freshness lifetime in seconds (jittered); ``None`` means the default TTL.
            tags: Tags the value derives from, for :meth:`invalidate_tags`.
            lock: Take the distributed lock on a miss (one loader across processes).
            lock_timeout: Longest wait for another process's load; then serve stale, else
                load. ``None`` means ``settings.lock_timeout``.
            stale_ttl: Seconds after expiry during which the stale value is returned at once
                while one background refresh runs (stale-while-revalidate).
            negative_ttl: Lifetime of a cached ``None``; ``None`` means the setting.
            early_refresh: XFetch: ``True`` (beta 1.0) or a beta > 0 refreshes hot keys
                before they expire, with a probability scaled by the measured load time.
            returns: Type to rebuild hits into (``User``, ``list[User]``, ``User | None``), so
                a hit returns what the loader returns.

        Returns:
            The cached or freshly loaded value.

        Raises:
            ConfigurationError: An option has a value that is not allowed.
            SerializationError: The loaded value cannot be encoded (names key and type).
            Exception: Whatever the loader raised (nothing is cached then).
        """
        from .loading import resolve_options

        opts = resolve_options(
            self,
            ttl=ttl,
            tags=tags,
            lock=lock,
            lock_timeout=lock_timeout,
            stale_ttl=stale_ttl,
            negative_ttl=negative_ttl,
            early_refresh=early_refresh,
            rebuild=None if returns is None else self._loading.rebuilder(returns),
        )
        value: T = await self._loading.get_or_load(key, loader, opts)
        return value

    def aside(
        self,
        loader: Callable[..., Awaitable[T]],
        *,
        key: str,
        ttl: float | None = None,
        tags: Sequence[str] = (),
        lock: bool = True,
        lock_timeout: float | None = None,
        stale_ttl: float | None = None,
        negative_ttl: float | None = None,
        early_refresh: bool | float = False,
        returns: Any = None,
    ) -> Callable[..., Awaitable[T]]:
        """Wrap ``loader`` as a cache-aside FastAPI dependency (or a plain async helper).

        The result has the loader's signature, so FastAPI resolves the loader's own path,
        query and ``Depends`` parameters; ``key`` and ``tags`` are templates filled from
        them (``"users:{user_id}:profile"``). Hits are rebuilt into the loader's return
        annotation (or ``returns``). The options are those of :meth:`get_or_load`.

        Raises:
            ConfigurationError: A template names something that is not a loader parameter,
                or an option has a value that is not allowed (checked here, not on the first
                request).
        """
        from .aside import build_aside
        from .loading import resolve_options

        resolve_options(
            self,
            ttl=ttl,
            tags=(),
            lock=lock,
            lock_timeout=lock_timeout,
            stale_ttl=stale_ttl,
            negative_ttl=negative_ttl,
            early_refresh=early_refresh,
            rebuild=None,
        )
        return build_aside(
            self,
            loader,
            key=key,
            tags=tags,
            returns=returns,
            options={
                "ttl": ttl,
                "lock": lock,
                "lock_timeout": lock_timeout,
                "stale_ttl": stale_ttl,
                "negative_ttl": negative_ttl,
                "early_refresh": early_refresh,
            },
        )

    async def write_through(
        self,
        key: str,
        value: Any,
        *,
        write: Callable[[], Awaitable[Any]],
        ttl: float | None = None,
        tags: Sequence[str] = (),
    ) -> bool:
        """Save to the database with ``write``, then cache ``value`` under ``key``.

        ``write`` (an async callable with no arguments) is awaited before the cache is
        touched; if it raises, the cache is left as it was and the exception propagates. If
        caching then fails, the key is deleted (queued and retried while Redis is
        unreachable, like every invalidation), so the old value is not served. Loads in
        flight that read the old row cannot store it afterwards (their lock is dropped;
        ``tags`` are invalidated).

        Returns:
            Whether the new value was cached.

        Raises:
            SerializationError: ``value`` cannot be encoded (raised before ``write`` runs).
        """
        return await self._loading.write_through(key, value, write=write, ttl=ttl, tags=tags)

    # -- operations ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters since creation: hits, misses, stale, errors, corrupt, sets, deletes, loads,
        lock_waits, invalidations and hit_rate, plus the backend's name, the number of
        invalidations waiting to be retried (``pending_invalidations``), with the L1
        near-cache on ``l1`` (its ``entries`` and ``hits``; those hits are in ``hits`` too)
        and, when the backend has a circuit breaker, ``breaker``: its state (see
        :meth:`CircuitBreakerBackend.snapshot
        <asgi_cache.backends.CircuitBreakerBackend.snapshot>`)."""
        out = self._stats.snapshot()
        out["backend"] = self.backend.name
        out["enabled"] = self.settings.enabled
        out["pending_invalidations"] = len(self._pending)
        out["invalidation_overflows"] = self._pending.overflows
        if self._near is not None:
            out["l1"] = {"entries": len(self._near), "hits": self._near.hits}
        breaker = self.breaker
        if breaker is not None:
            out["breaker"] = breaker.snapshot()
        return out

    def health_route(self) -> HealthApp:
        """A small ASGI app serving :meth:`health` and :meth:`stats` as JSON.

        Serve it at an exact path, ``Route("/health/cache", cache.health_route())`` (or
        ``app.mount(...)``, which answers below a prefix). It answers 200 when the cache is
        healthy or degraded and 503 when the backend is down; see :mod:`asgi_cache.health`.
        """
        return HealthApp(self)

    async def health(self) -> dict[str, Any]:
        """Probe the backend and describe it.

        Returns a dict with ``status`` (``healthy``, ``degraded`` when Redis answers but is
        misconfigured for a cache, ``down`` when it does not answer), ``latency_ms``,
        ``used_memory``, ``maxmemory``, ``maxmemory_policy``, ``version``, ``hit_rate``,
        ``warnings`` and, when the backend has a circuit breaker, ``breaker`` (its state).
        While the breaker is open the probe is skipped and the status is ``down``.
        """
        out: dict[str, Any] = {"backend": self.backend.name, "namespace": self.keys.namespace}
        warnings: list[str] = []
        try:
            latency = await self.backend.ping()
            info = await self.backend.info()
        except BackendError as exc:
            out.update(status="down", error=str(exc), latency_ms=None)
        else:
            out.update(info)
            out["latency_ms"] = round(latency * 1000, 3)
            if info.get("backend") == "redis":
                if not info.get("maxmemory"):
                    warnings.append("maxmemory is not set")
                if info.get("maxmemory_policy") == "noeviction":
                    warnings.append("maxmemory_policy is noeviction")
                problem = version_problem(info.get("version"))
                if problem is not None:
                    warnings.append(problem)
            out["status"] = "degraded" if warnings else "healthy"
        out["warnings"] = warnings
        out["hit_rate"] = self._stats.snapshot()["hit_rate"]
        breaker = self.breaker
        if breaker is not None:
            out["breaker"] = breaker.state
        return out
