"""The [`Cache`][asgi_cache.Cache] facade: construction, lifecycle and the public API.

Everything here delegates. The store layer does the work: `Store`
(entries, TTLs, locks) and `Tags` (versions, invalidation, the
retry queue), on a `Runtime` (settings, key space, events,
backend, L1). The features build on them: `asgi_cache.loading` (``get_or_load``),
`asgi_cache.aside`, `asgi_cache.http` (the middleware), `asgi_cache.health`.

The ``Cache`` fails open: a backend error or timeout is a miss on reads and a logged, counted
no-op on writes, never an exception to the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from ._exceptions import ConfigurationError
from ._options import LoadOptions, Unstorable
from ._runtime import Runtime
from ._stats import CacheStats
from ._store import Store, WriteResult
from ._tags import Tags
from ._validate import FLAG, whole
from .aside import build_aside
from .backends.base import Backend
from .backends.breaker import CircuitBreakerBackend
from .health import CacheHealth, HealthApp, describe_stats, probe
from .http.keying import url_tag
from .http.policy import InvalidationPolicy, ResponsePolicy
from .keys import validate_key
from .loading import Loading
from .metrics.dashboard import DashboardApp
from .metrics.otel import instrument
from .metrics.prometheus import INTERVAL, MetricsApp
from .near import NearCache
from .settings import CacheSettings
from .write_behind import BacklogPolicy, Handler, WriteBehind, WriteBehindOptions
from .write_behind.options import check_handler, check_name

P = ParamSpec("P")
T = TypeVar("T")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
F = TypeVar("F", bound=Callable[..., Any])


class Cache:
    """An async cache for one namespace on one backend.

    Build it with [`from_url`][asgi_cache.Cache.from_url], [`from_env`][asgi_cache.Cache.from_env]
    or ``Cache(CacheSettings(...))``. It connects lazily on first use; use it as
    ``async with cache:``, as an app's ``lifespan=cache.lifespan``, or let
    [`CacheMiddleware`][asgi_cache.CacheMiddleware] start and stop it.

    Args:
        settings: The configuration; defaults to ``CacheSettings()`` (``memory://``).
        backend: A backend to use instead of the one ``settings.url`` names (for example a
            [`RedisBackend`][asgi_cache.backends.RedisBackend] on a fakeredis client).
    """

    def __init__(
        self, settings: CacheSettings | None = None, *, backend: Backend | None = None
    ) -> None:
        self.settings = settings or CacheSettings()
        runtime = Runtime(self.settings, backend)
        self._runtime = runtime
        self.keys = runtime.keys
        """The namespace's key space (how every Redis key of this cache is spelled)."""
        self._tags = Tags(runtime)
        self._store = Store(runtime, self._tags)  # CacheMiddleware finds it here (store_of)
        self.serializer = self._store.serializer
        """The value codec (``settings.serializer``)."""
        self._loading = Loading(self._store)
        runtime.on_close(self._loading.aclose)

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str = "memory://", **options: Any) -> Cache:
        """Build a cache for ``url`` (``memory://``, ``redis://``, ``rediss://``, ``unix://``).

        ``options`` are any other [`CacheSettings`][asgi_cache.CacheSettings] fields, such as
        ``namespace`` or ``default_ttl``.
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
        return self._runtime.backend

    @property
    def breaker(self) -> CircuitBreakerBackend | None:
        """The circuit breaker in front of the backend, if there is one.

        Caches built from a Redis URL get one (unless ``breaker_threshold`` is 0); a backend
        passed to the constructor is used as given (wrap it yourself to add one).
        """
        return self._runtime.breaker

    @property
    def near(self) -> NearCache | None:
        """The in-process L1 near-cache, or ``None`` when it is off (``l1_ttl`` is 0 or the
        backend is ``memory://``). See ``docs/near-cache.md``."""
        return self._runtime.near

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and run the startup checks; called by ``async with`` and lifespans.

        Calls nest: each [`start`][asgi_cache.Cache.start] needs one
        [`stop`][asgi_cache.Cache.stop], and the last one closes the backend. Redis being down at
        startup is logged, not raised: the app starts and serves from its origin until Redis
        answers.
        """
        await self._runtime.start()

    async def stop(self) -> None:
        """Undo one [`start`][asgi_cache.Cache.start]; the last one releases connections."""
        await self._runtime.stop()

    async def aclose(self) -> None:
        """Release the backend's connections now. The cache may be used again afterwards."""
        await self._runtime.aclose()

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

        To combine it with an app's own lifespan, see
        [`wrap_lifespan`][asgi_cache.Cache.wrap_lifespan].
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

    # -- the data API --------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, *, returns: Any = None) -> Any:
        """Return the fresh value cached under ``key``, or ``default`` on a miss.

        Never raises because of the backend: a failure, a corrupt value or an invalidated entry
        is a miss. A cached "not found" (negative entry) also returns ``default``.

        Args:
            key: The caller's key, as given to [`set`][asgi_cache.Cache.set].
            default: Returned on a miss.
            returns: Type to rebuild the value into (``User``, ``list[User]``): models and
                dataclasses are stored as dicts. A value that no longer fits the type is a
                miss. Without it, reading a stored model logs a warning once.
        """
        store = self._store
        full_key = self.keys.data(validate_key(key))
        rebuild = None if returns is None else self._loading.rebuilder(returns)
        entry, source = await store.lookup(full_key)
        return store.value_of(full_key, entry, default, rebuild, source)

    async def set(
        self, key: str, value: Any, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> bool:
        """Cache ``value`` under ``key`` for ``ttl`` seconds (default TTL when ``None``).

        The TTL gets the configured jitter. ``tags`` name what the value derives from, for
        [`invalidate_tags`][asgi_cache.Cache.invalidate_tags]. Returns whether the value was stored;
        a backend failure returns ``False`` (counted and logged), it does not raise.

        Raises:
            SerializationError: The value cannot be encoded (a programming error, so it is
                raised rather than swallowed).
        """
        return await self._store.set_value(key, value, ttl, tags) is WriteResult.STORED

    async def delete(self, *keys: str) -> int:
        """Delete the entries of ``keys``; return how many existed (0 on a backend failure)."""
        return await self._tags.delete(*(self.keys.data(validate_key(k)) for k in keys))

    async def invalidate_tags(self, *tags: str) -> int:
        """Stop serving every entry (data or response) that carries any of ``tags``.

        Costs one command per tag, never a scan. Returns how many tags had live entries. When
        the backend cannot be reached the invalidation is queued and retried in the background
        until it lands (see ``pending_invalidations`` in [`stats`][asgi_cache.Cache.stats]); it is
        never dropped.
        """
        return await self._tags.invalidate(*tags)

    async def invalidate_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        """Delete every data entry whose key starts with ``prefix`` (``"users:"``).

        This scans the keyspace (SCAN in batches of ``batch`` on Redis), so it is an operator
        tool for rare bulk clean-ups; to invalidate related entries routinely, give them a tag
        and use [`invalidate_tags`][asgi_cache.Cache.invalidate_tags], which costs O(tags). Only
        data entries (``get``/``set`` /``get_or_load`` keys) are reached; HTTP response entries are
        keyed by digests.

        Args:
            prefix: Start of the caller's keys, as passed to [`set`][asgi_cache.Cache.set] (no
                namespace).
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
        return await self._tags.delete_prefix(
            self.keys.data_prefix(prefix), batch=batch, progress=progress
        )

    async def clear(self) -> None:
        """Invalidate every entry of this namespace at once (O(1): one tag version)."""
        await self._tags.clear()

    async def drain_invalidations(self) -> bool:
        """Retry queued invalidations now; return whether none are left pending."""
        return await self._tags.drain()

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
        ignored_cookies: Sequence[str] = (),
        vary_cookies: Sequence[str] = (),
    ) -> Callable[[F], F]:
        """Mark a route's responses cacheable by [`CacheMiddleware`][asgi_cache.CacheMiddleware].

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
            ignored_cookies: Cookies (names or glob patterns such as ``"_ga*"``) that do not
                make a request private (with the middleware's own).
            vary_cookies: Cookies whose (hashed) values are part of the key (``"lang"``).

        Returns:
            A decorator returning the endpoint itself.

        Raises:
            ConfigurationError: An option has a value that is not allowed.
        """
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
            ignored_cookies=ignored_cookies,
            vary_cookies=vary_cookies,
        )
        return policy.attach

    def invalidates(self, *tags: str, refresh: bool = False) -> Callable[[F], F]:
        """Mark a mutating route: when it succeeds (2xx/3xx), invalidate ``tags``.

        Goes *below* ``@app.put(...)``; the endpoint is returned unchanged. Templates such as
        ``"users:{user_id}"`` are filled from path parameters.
        [`CacheMiddleware`][asgi_cache.CacheMiddleware] invalidates the tags, and the request's URI
        (RFC 9111 section 4.4), before the response starts; a 4xx/5xx or an exception invalidates
        nothing.

        With ``refresh=True``, the GET entries that invalidation reached (those this process
        answered: the URI's, and those tagged with ``tags``) are then fetched again through
        the app in the background, one at a time per entry and a few at once, so the next
        reader hits a fresh entry instead of waiting for the origin (see
        `asgi_cache.http.refresh` and ``docs/invalidation.md``).

        Raises:
            ConfigurationError: A template is not a non-empty str with named fields, or
                ``refresh`` is not a bool.
        """
        return InvalidationPolicy.build(tags, refresh=refresh).attach

    async def invalidate_url(self, path_or_url: str) -> int:
        """Stop serving every cached response of a path: all Vary variants, queries and hosts.

        ``path_or_url`` is a path (``/users/42``, a query is ignored) or an absolute URL.
        Costs one command. Returns how many had live entries (0 or 1).
        """
        return await self.invalidate_tags(url_tag(path_or_url))

    # -- cache-aside (asgi_cache.loading, asgi_cache.aside) ------------------------------------

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
            tags: Tags the value derives from, for
                [`invalidate_tags`][asgi_cache.Cache.invalidate_tags].
            lock: Take the distributed lock on a miss (one loader across processes).
            lock_timeout: Longest wait for another process's load; then serve stale, else
                load. ``None`` means ``settings.lock_timeout``.
            stale_ttl: Seconds after expiry during which the stale value is returned at once
                while one background refresh runs (stale-while-revalidate).
            negative_ttl: Lifetime of a cached ``None``; ``None`` means the setting.
            early_refresh: XFetch: ``True`` (beta 1.0) or a beta > 0 refreshes hot keys
                before they expire, with a probability scaled by the measured load time.
            returns: Type to rebuild hits into (``User``, ``list[User]``, ``User | None``), so
                a hit returns what the loader returns. ``None`` means the loader's return
                annotation (``async def load() -> User``); a lambda has none, so a lambda
                returning a model needs ``returns=`` (a warning says so otherwise).

        Returns:
            The cached or freshly loaded value.

        Raises:
            ConfigurationError: An option has a value that is not allowed.
            SerializationError: The loaded value cannot be encoded (the message names the
                key, the field and its type). Raised once per model type: later values of
                it are returned uncached.
            Exception: Whatever the loader raised (nothing is cached then).
        """
        opts = LoadOptions.build(
            self.settings,
            ttl=ttl,
            tags=tags,
            lock=lock,
            lock_timeout=lock_timeout,
            stale_ttl=stale_ttl,
            negative_ttl=negative_ttl,
            early_refresh=early_refresh,
            rebuild=self._loading.rebuild_for(loader, returns),
        )
        value: T = await self._loading.get_or_load(key, loader, opts)
        return value

    def aside(
        self,
        loader: Callable[P, Awaitable[T]],
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
    ) -> Callable[P, Awaitable[T]]:
        """Wrap ``loader`` as a cache-aside FastAPI dependency (or a plain async helper).

        The result has the loader's signature, so FastAPI resolves the loader's own path,
        query and ``Depends`` parameters; ``key`` and ``tags`` are templates filled from
        them (``"users:{user_id}:profile"``); tags are filled like the middleware's
        ([`fill_tag`][asgi_cache.fill_tag]), the key with ``:`` and ``%`` in values escaped. Hits
        are rebuilt into the loader's return annotation (or ``returns``). A value that cannot
        be encoded is logged once and returned uncached: the route still answers. The options
        are those of [`get_or_load`][asgi_cache.Cache.get_or_load].

        Raises:
            ConfigurationError: A template names something that is not a loader parameter,
                or an option has a value that is not allowed (checked here, not on the first
                request).
        """
        options = LoadOptions.build(
            self.settings,
            ttl=ttl,
            lock=lock,
            lock_timeout=lock_timeout,
            stale_ttl=stale_ttl,
            negative_ttl=negative_ttl,
            early_refresh=early_refresh,
            unstorable=Unstorable.LOG,
        )
        return build_aside(
            self._loading, loader, key=key, tags=tags, options=options, returns=returns
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

    # -- write-behind (asgi_cache.write_behind) ------------------------------------------------

    def write_behind(
        self,
        name: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        max_deliveries: int = 5,
        lease: float = 30.0,
        max_backlog: int = 100_000,
        on_backlog: BacklogPolicy = "write_through",
        write_timeout: float = 1.0,
        poll: float = 1.0,
        retry_backoff: float = 0.1,
        max_backoff: float = 30.0,
        coalesce: bool = True,
    ) -> WriteBehind:
        """A write-behind log named ``name``: cache writes at once, save them later in batches.

        ``await wb.write(key, value)`` caches the value and appends the change to a durable
        log (a Redis Stream) in one atomic step; a worker (``await wb.run()``, ``wb.start()``
        or ``asgi-cache worker module:wb``) calls ``await handler(changes)`` with batches of
        [`Change`][asgi_cache.Change] and acknowledges what it committed. Delivery is
        at-least-once: write the handler as an upsert on ``(key, version)``. See
        ``docs/write-behind.md``.

        Args:
            name: The log's name, part of its Redis keys (``<ns>:w:{<name>}:s``).
            handler: Async callable given a list of changes; returns ``None`` when it
                committed them all, or those (or their ids) it committed.
            batch_size: Most changes per handler call.
            max_deliveries: Deliveries after which a failing change goes to the dead letter.
            lease: Seconds a worker owns a batch unless it renews it (it does, every third,
                while the handler runs); a batch idle longer is taken over.
            max_backlog: Changes not yet handled past which ``on_backlog`` applies.
            on_backlog: ``"write_through"`` (hand the change to the handler inline) or
                ``"refuse"`` (raise [`BacklogFullError`][asgi_cache.BacklogFullError]).
            write_timeout: Time budget of one ``wb.write``.
            poll: Longest wait of an idle worker for new changes.
            retry_backoff: First wait after a failed handler call (doubled per delivery).
            max_backoff: Longest wait between retries.
            coalesce: Hand the handler only the newest change of each key in a batch.

        Raises:
            ConfigurationError: An option is not allowed, or ``name`` is already used by
                this cache with another handler.
        """
        check_name(name)
        check_handler(handler)
        options = WriteBehindOptions.build(
            batch_size=batch_size,
            max_deliveries=max_deliveries,
            lease=lease,
            max_backlog=max_backlog,
            on_backlog=on_backlog,
            write_timeout=write_timeout,
            poll=poll,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            coalesce=coalesce,
        )
        known = self._runtime.write_behinds.get(name)
        if isinstance(known, WriteBehind):
            if known.handler is not handler or known.options != options:
                raise ConfigurationError(
                    f"name={name!r} is not allowed: this cache has a write-behind of that name "
                    "with another handler or options"
                )
            return known
        wb = WriteBehind(self._store, name, handler, options)
        self._runtime.write_behinds[name] = wb
        self._runtime.on_close(wb.aclose)
        return wb

    # -- operations ----------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Counters since creation: hits, misses, stale, errors, corrupt, sets, deletes, loads,
        lock_waits, invalidations and hit_rate, plus the backend's name, the number of
        invalidations waiting to be retried (``pending_invalidations``), with the L1
        near-cache on ``l1`` (its ``entries`` and ``hits``; those hits are in ``hits`` too)
        and, when the backend has a circuit breaker, ``breaker``: its state (see
        [`CircuitBreakerBackend.snapshot`][asgi_cache.backends.CircuitBreakerBackend.snapshot])."""
        return describe_stats(self._store)

    def health_route(self) -> HealthApp:
        """A small ASGI app serving [`health`][asgi_cache.Cache.health] and
        [`stats`][asgi_cache.Cache.stats] as JSON.

        Serve it at an exact path, ``Route("/health/cache", cache.health_route())`` (or
        ``app.mount(...)``, which answers below a prefix). It answers 200 when the cache is
        healthy or degraded and 503 when the backend is down; see `asgi_cache.health`.
        """
        return HealthApp(self)

    def metrics_route(
        self, *, probe_interval: float = 5.0, flush_interval: float = 1.0
    ) -> MetricsApp:
        """An ASGI app serving this cache's metrics in the Prometheus text format.

        Mount it, ``app.mount("/metrics", cache.metrics_route())``; it needs the
        ``prometheus`` extra. The cache's events are tallied from the first call on (build it
        when the app is built). ``probe_interval``: longest age, in seconds, of the backend
        figures a scrape reports (a scrape probes the backend at most that often). With
        ``PROMETHEUS_MULTIPROC_DIR`` set, workers share their figures through
        ``prometheus-client``'s files, each copying its own every ``flush_interval``
        seconds. See `asgi_cache.metrics.prometheus` and ``docs/observability.md``.

        Raises:
            ConfigurationError: An interval is not seconds > 0, or the extra is missing.
        """
        return MetricsApp(
            self._store,
            self.health,
            probe_interval=INTERVAL.require("probe_interval", probe_interval),
            flush_interval=INTERVAL.require("flush_interval", flush_interval),
        )

    def dashboard_route(self, *, refresh: float = 2.0, probe_interval: float = 5.0) -> DashboardApp:
        """An ASGI app serving a live, read-only dashboard page about this cache.

        Mount it, ``app.mount("/cache", cache.dashboard_route())``, behind the app's own
        authentication when the figures are private. The page is self-contained (no CDN,
        no build step, works offline) and polls the JSON it is served with every ``refresh``
        seconds; the backend is probed at most every ``probe_interval`` seconds. The cache's
        events are tallied from the first call on. See ``asgi_cache.metrics.dashboard`` and
        ``docs/observability.md``.

        Raises:
            ConfigurationError: An interval is not seconds > 0.
        """
        return DashboardApp(
            self._store,
            self.health,
            refresh=INTERVAL.require("refresh", refresh),
            probe_interval=INTERVAL.require("probe_interval", probe_interval),
        )

    def instrument(
        self, *, meter_provider: Any = None, tracer_provider: Any = None, spans: bool = False
    ) -> None:
        """Export this cache's metrics through OpenTelemetry (the ``otel`` extra).

        The instruments of `metrics_route` (named without the Prometheus suffixes:
        ``asgi_cache_requests``, ``asgi_cache_hit_duration`` in ``s``) are created on
        ``meter_provider``'s meter, else the global provider's. ``spans=True`` also traces
        loads, lock waits and every Redis round trip on ``tracer_provider`` (else the global
        one); off by default, as a span per Redis command costs more than most want. See
        ``asgi_cache.metrics.otel`` and ``docs/observability.md``.

        Raises:
            ConfigurationError: ``spans`` is not a bool, or the extra is missing.
        """
        instrument(
            self._store,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            spans=FLAG.require("spans", spans),
        )

    async def health(self) -> CacheHealth:
        """Probe the backend and describe it.

        Returns a dict with ``status`` (``healthy``, ``degraded`` when Redis answers but is
        misconfigured for a cache, ``down`` when it does not answer), ``latency_ms``,
        ``used_memory``, ``maxmemory``, ``maxmemory_policy``, ``version``, ``hit_rate``,
        ``warnings`` and, when the backend has a circuit breaker, ``breaker`` (its state).
        While the breaker is open the probe is skipped and the status is ``down``.
        """
        return await probe(self._store)
