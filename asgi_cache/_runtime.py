"""What every part of one cache shares: settings, key space, events, the backend and the L1.

A `Runtime` is built by the [`Cache`][asgi_cache.Cache] facade and handed to the store
layer (`Store`, `Tags`, the locks), which
the features build on. It owns the backend's lifetime: the backend is built on first use (a
cache used before startup connects lazily) and rebuilt after a close (a cache may be started
again), and the startup checks that tell an operator when Redis is unfit for a cache.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ._exceptions import BackendError
from ._loops import LoopBinding
from ._stats import Stats
from ._write_behind_status import WriteBehindSource
from .backends._errors import RoundTripSpan
from .backends.base import Backend
from .backends.breaker import CircuitBreakerBackend
from .backends.cluster import ClusterBackend
from .backends.memory import MemoryBackend
from .backends.redis import RedisBackend, version_problem
from .backends.sentinel import SentinelBackend
from .keys import KeySpace
from .near import NearCache
from .settings import CacheSettings

logger = logging.getLogger("asgi_cache")

Closer = Callable[[], Awaitable[None]]


class Runtime:
    """The shared state and lifetime of one cache.

    Args:
        settings: The cache's configuration.
        backend: A backend to use as given (never closed here) instead of the one
            ``settings.url`` names.
    """

    def __init__(self, settings: CacheSettings, backend: Backend | None = None) -> None:
        self.settings = settings
        # On Redis Cluster an entry and its lock must share a slot: keys get hash tags.
        hash_tags = (
            getattr(backend, "hash_tags", False)
            if backend is not None
            else settings.backend_scheme.endswith("+cluster")
        )
        self.keys = KeySpace(settings.namespace, hash_tags=hash_tags)
        self.stats = Stats()
        self._backend = backend
        self._owns_backend = backend is None
        self._users = 0
        self._started = False
        self._checked = False  # startup checks warn once per cache, not once per start
        self._closers: list[Closer] = []
        self._binding = LoopBinding(on_loop_end=self.aclose, on_abandon=self._abandon)
        self._starters: list[Callable[[], None]] = []
        self._round_trip_span: RoundTripSpan | None = None
        self.write_behinds: dict[str, WriteBehindSource] = {}
        """The cache's write-behind names (``cache.write_behind(...)``), for its reports."""
        self.near: NearCache | None = None
        """The L1 near-cache, or ``None`` when it is off (``l1_ttl`` is 0, or the backend is
        in process already)."""
        if settings.l1_ttl > 0 and not self.in_process:
            self.near = NearCache(
                ttl=settings.l1_ttl,
                max_entries=settings.l1_max_entries,
                max_bytes=settings.l1_max_bytes,
                channel_prefix=self.keys.l1_channel(),
                tag_prefix=self.keys.tag(""),
                all_tag=self.keys.all_tag,
                invalidation=settings.l1_invalidation,
                tracked_prefixes=self.keys.tracked_prefixes(),
            )

    # -- the backend ---------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend, built on first use, on the running event loop (see ``_loops``).

        Raises:
            EventLoopError: The cache is in use on another event loop that still runs.
        """
        self._binding.check()
        if self._backend is None:
            self._backend = self._make_backend()
            if self._round_trip_span is not None:
                _traced(self._backend, self._round_trip_span)
        return self._backend

    def _make_backend(self) -> Backend:
        s = self.settings
        if s.backend_scheme == "memory":
            return MemoryBackend(max_entries=s.memory_max_entries, max_bytes=s.memory_max_bytes)
        options: dict[str, Any] = {
            "op_timeout": s.op_timeout,
            "connect_timeout": s.connect_timeout,
            "max_connections": s.max_connections,
            "pool_timeout": s.pool_timeout,
            "batch_reads": s.batch_reads,
        }
        near = self.near is not None
        # The L1 indexes its entries by the tags the reads name; a subscriber (or tracking
        # connection) that went silent is noticed within l1_ttl (two ping intervals).
        options["tagged_reads"] = near
        options["ping_interval"] = s.l1_ttl / 2 if near else None
        redis: Backend
        if s.backend_scheme.endswith("+cluster"):
            redis = ClusterBackend(s.url, **options)
        elif s.backend_scheme.endswith("+sentinel"):
            redis = SentinelBackend(s.url, **options)
        else:
            redis = RedisBackend(s.url, **options)
        if not s.breaker_threshold:
            return redis
        return CircuitBreakerBackend(
            redis, threshold=s.breaker_threshold, cooldown=s.breaker_cooldown
        )

    def trace_round_trips(self, span: RoundTripSpan) -> None:
        """Wrap every Redis round trip in ``span(operation)``, on this backend and the ones
        built after a close (tracing; ``cache.instrument(spans=True)``)."""
        self._round_trip_span = span
        if self._backend is not None:
            _traced(self._backend, span)

    @property
    def breaker(self) -> CircuitBreakerBackend | None:
        """The circuit breaker in front of the backend, if there is one."""
        backend = self.backend
        return backend if isinstance(backend, CircuitBreakerBackend) else None

    @property
    def in_process(self) -> bool:
        """Whether the backend lives in this process's memory (nothing shared, no network)."""
        if self._backend is not None:
            return self._backend.in_process
        return self.settings.backend_scheme == "memory"

    # -- lifetime ------------------------------------------------------------------------------

    def on_start(self, starter: Callable[[], None]) -> None:
        """Run ``starter`` (in the event loop, not awaited: it may start background work)
        every time the cache starts, after the startup checks; once now if it runs."""
        self._starters.append(starter)
        if self._started:
            starter()

    def on_close(self, closer: Closer) -> None:
        """Run ``closer`` when the cache closes, before the backend does (the last one
        registered runs first, as features close before what they build on)."""
        self._closers.append(closer)

    async def start(self) -> None:
        """Count one user; the first start runs the startup checks (see ``Cache.start``)."""
        self._users += 1
        if self._started:
            return
        self._started = True
        if self.settings.enabled and not self._checked:
            await self._startup_checks()
        for starter in self._starters:
            starter()

    async def stop(self) -> None:
        """Undo one `start`; the last one closes."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Close now: the features' closers, then the backend's connections, then the L1.

        Also run on an event loop's shutdown when the cache is still open then (see
        ``_loops``), so a cache used with ``asyncio.run`` twice closes its connections on the
        loop they belong to.
        """
        self._started = False
        self._users = 0
        self._binding.release()
        for closer in reversed(self._closers):
            await closer()
        backend = self._backend
        near = self.near
        if backend is not None and self._owns_backend:
            self._backend = None
            await backend.aclose()
            if near is not None:
                near.subscription.reset()  # its subscriber connection is gone
        if near is not None:
            near.clear()  # no invalidations are heard until the next subscription

    def _abandon(self) -> None:
        """Drop what belongs to an event loop that ended without closing this cache."""
        self._started = False
        self._users = 0
        if self._owns_backend:
            self._backend = None  # its sockets belong to the dead loop: rebuilt on next use
        if self.near is not None:
            self.near.subscription.reset()
            self.near.clear()  # invalidations were not heard since that loop ended

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
        for warning in _startup_warnings(info):
            logger.warning("asgi-cache: %s", warning)


def _traced(backend: Backend, span: RoundTripSpan) -> None:
    inner = backend.inner if isinstance(backend, CircuitBreakerBackend) else backend
    if isinstance(inner, RedisBackend | ClusterBackend):
        inner.round_trip_span = span


MEMORY_PER_PROCESS: Final = (
    "memory:// keeps entries in this process only: with several workers (uvicorn --workers, "
    "gunicorn) each worker has a cache of its own, so after a write or an invalidation in one "
    "worker the others serve stale data until their entries expire; set ASGI_CACHE_URL to a "
    "redis:// URL to share one cache (see docs/configuration.md)"
)
"""The startup warning of an in-process backend (``memory://``, the default of ``from_env``)."""


def _startup_warnings(info: dict[str, object]) -> list[str]:
    """What makes the backend that ``info`` describes unfit for a cache shared by workers,
    for an operator reading the log (empty for a fit Redis)."""
    if info.get("backend") == "memory":
        return [MEMORY_PER_PROCESS]
    if info.get("backend") != "redis":
        return []
    warnings = []
    if not info.get("maxmemory"):
        warnings.append(
            "Redis has no maxmemory limit; a cache should set maxmemory and an evicting "
            "policy such as allkeys-lru (see docs/operations.md)"
        )
    elif info.get("maxmemory_policy") == "noeviction":
        warnings.append(
            "Redis maxmemory-policy is noeviction; writes will fail with OOM when memory is "
            "full. Use allkeys-lru or allkeys-lfu for a cache"
        )
    problem = version_problem(info.get("version"))
    if problem is not None:
        warnings.append(f"{problem}; upgrade Redis (see docs/operations.md)")
    return warnings
