"""The health endpoint: a small pure ASGI app describing one [`Cache`][asgi_cache.Cache].

Serve it from any Starlette or FastAPI app, at an exact path::

    app.router.routes.append(Route("/health/cache", cache.health_route()))
    app.mount("/health/cache", cache.health_route())   # answers at /health/cache/ and below

``GET`` (and ``HEAD``) answer JSON built from ``await cache.health()`` and ``cache.stats()``:
``status`` (``healthy``, ``degraded`` or ``down``), ping latency, memory use and limit, the
eviction policy, the hit rate, the circuit breaker's state when the cache has one, and the
counters. The status code is 200 when the cache is healthy or degraded (the app works either
way) and 503 when the backend does not answer, so a load balancer or orchestrator can act on it.
The answer is never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import logging
from typing import Any, Literal, NotRequired, Protocol, TypedDict, cast

import orjson

from ._exceptions import BackendError
from ._readonly import ReadOnlyApp, Reply
from ._stats import CacheStats
from ._store import Store
from ._write_behind_status import WriteBehindStatus
from .backends.breaker import BreakerState
from .backends.redis import version_problem

logger = logging.getLogger("asgi_cache")

HealthStatus = Literal["healthy", "degraded", "down"]


class CacheHealth(TypedDict):
    """What ``await cache.health()`` returns."""

    backend: str
    """The backend's name (``memory``, ``redis``)."""
    namespace: str
    """The cache's namespace."""
    status: HealthStatus
    """``healthy``; ``degraded`` when Redis answers but is unfit for a cache (see
    ``warnings``); ``down`` when it does not answer (or the breaker is open)."""
    latency_ms: float | None
    """The ping's round trip, ``None`` when down."""
    error: NotRequired[str]
    """Why it is down."""
    version: NotRequired[str | None]
    """The server's version (``None`` for the in-process backend)."""
    used_memory: NotRequired[int | None]
    """Bytes in use."""
    maxmemory: NotRequired[int | None]
    """The memory bound (0: none)."""
    maxmemory_policy: NotRequired[str | None]
    """The eviction policy."""
    keys: NotRequired[int]
    """Entries held (``memory://`` only)."""
    max_entries: NotRequired[int]
    """The entry bound (``memory://`` only)."""
    evictions: NotRequired[int | None]
    """Entries evicted so far (on Redis the server's ``evicted_keys``, every namespace)."""
    warnings: list[str]
    """What makes the backend unfit for a cache (empty when healthy)."""
    hit_rate: float
    """The cache's hit rate so far (as in ``cache.stats()``)."""
    breaker: NotRequired[BreakerState]
    """The circuit breaker's state, when the backend has one."""
    write_behind: NotRequired[dict[str, WriteBehindStatus]]
    """Each write-behind name: its counters, backlog, pending changes, dead letters and lag."""


_INFO_FIELDS = (
    "version",
    "used_memory",
    "maxmemory",
    "maxmemory_policy",
    "keys",
    "max_entries",
    "evictions",
)


async def probe(store: Store) -> CacheHealth:
    """Ping the backend of ``store`` and describe it (see ``Cache.health``)."""
    runtime = store.runtime
    backend = runtime.backend
    report = CacheHealth(
        backend=backend.name,
        namespace=store.keys.namespace,
        status="down",
        latency_ms=None,
        warnings=[],
        hit_rate=0.0,
    )
    try:
        latency = await backend.ping()
        info = await backend.info()
    except BackendError as exc:
        report["error"] = str(exc)
    else:
        report["backend"] = info.get("backend", backend.name)
        for field in _INFO_FIELDS:
            if field in info:
                report[field] = info[field]  # type: ignore[literal-required]
        report["latency_ms"] = round(latency * 1000, 3)
        warnings = report["warnings"]
        if info.get("backend") == "redis":
            if not info.get("maxmemory"):
                warnings.append("maxmemory is not set")
            if info.get("maxmemory_policy") == "noeviction":
                warnings.append("maxmemory_policy is noeviction")
            problem = version_problem(info.get("version"))
            if problem is not None:
                warnings.append(problem)
        report["status"] = "degraded" if warnings else "healthy"
    report["hit_rate"] = store.stats.counts()["hit_rate"]
    store.stats.probed(report)
    breaker = runtime.breaker
    if breaker is not None:
        report["breaker"] = breaker.state
    if runtime.write_behinds:
        report["write_behind"] = {
            name: await source.probe() for name, source in runtime.write_behinds.items()
        }
    return report


def describe_stats(store: Store) -> CacheStats:
    """The events of ``store``'s cache so far, with the state they depend on (see
    ``Cache.stats``)."""
    runtime = store.runtime
    queue = store.tags.queue
    # cast: mypy cannot follow ** into a TypedDict that has optional keys.
    report = cast(
        CacheStats,
        {
            **store.stats.counts(),
            "backend": runtime.backend.name,
            "enabled": store.settings.enabled,
            "pending_invalidations": len(queue),
            "invalidation_overflows": queue.overflows,
        },
    )
    near = runtime.near
    if near is not None:
        report["l1"] = near.counts()
    breaker = runtime.breaker
    if breaker is not None:
        report["breaker"] = breaker.snapshot()
    if runtime.write_behinds:
        report["write_behind"] = {
            name: source.status() for name, source in runtime.write_behinds.items()
        }
    return report


class Reporter(Protocol):
    """What the health app describes: a [`Cache`][asgi_cache.Cache]."""

    async def health(self) -> CacheHealth:
        """Probe the backend."""
        ...

    def stats(self) -> CacheStats:
        """The counters."""
        ...


async def health_report(cache: Reporter) -> dict[str, Any]:
    """Describe ``cache``: ``await cache.health()`` plus ``cache.stats()`` under ``stats``.

    The breaker's state, when the cache's stats carry one, is also copied to the top level
    as ``breaker``. Never raises: an unexpected failure while probing is reported as
    ``status: down`` with the error.

    Args:
        cache: The cache to describe.

    Returns:
        A JSON-serializable dict.
    """
    try:
        report = dict(await cache.health())
    except Exception as exc:  # a health probe must answer, whatever broke
        logger.warning("asgi-cache: health probe failed: %r", exc)
        report = {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
    try:
        stats = dict(cache.stats())
    except Exception as exc:  # pragma: no cover - stats() only reads counters
        stats = {"error": f"{type(exc).__name__}: {exc}"}
    report["stats"] = stats
    if "breaker" in stats and "breaker" not in report:
        report["breaker"] = stats["breaker"]
    return report


def status_code(report: dict[str, Any]) -> int:
    """HTTP status for a health report: 503 when the backend is down, else 200."""
    return 503 if report.get("status") == "down" else 200


class HealthApp(ReadOnlyApp):
    """An ASGI app answering ``GET``/``HEAD`` with the cache's health as JSON.

    Build it with [`Cache.health_route`][asgi_cache.Cache.health_route]. Any path under
    its mount point answers the same way; other methods get ``405``. It also answers the ASGI
    lifespan protocol, so it can be served on its own (``uvicorn`` on a separate port).

    Args:
        cache: The cache to describe.
    """

    def refusal(self, method: str) -> Reply:
        """A JSON ``405`` naming ``method``."""
        body = orjson.dumps({"error": f"method {method} not allowed; use GET"})
        return Reply(405, "application/json", body)

    def __init__(self, cache: Reporter) -> None:
        self.cache = cache

    async def answer(self, path: str) -> Reply:
        """The health report, whatever the path under the mount point."""
        report = await health_report(self.cache)
        body = orjson.dumps(report, default=str, option=orjson.OPT_SORT_KEYS)
        return Reply(status_code(report), "application/json", body)
