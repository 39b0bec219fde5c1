"""Every metric the cache exports: its name, type, labels and meaning, in one table.

The Prometheus exporter, the OpenTelemetry instruments, the dashboard, ``docs/observability.md``
and the example Grafana dashboard all take their names from `METRICS`, so a name is
spelled once. Names follow the Prometheus conventions: the ``asgi_cache_`` prefix, base
units (``_seconds``, ``_bytes``), ``_total`` on counters (the exposition format adds it to a
counter's family name; `Metric.family` is the name without it).

Label values are bounded by construction (see `asgi_cache._stats`): layers, results,
reasons, kinds and operations are names written in the package, routes are route templates,
and at most `MAX_ROUTES` distinct routes are kept (later ones count as ``(other)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

MetricType = Literal["counter", "gauge", "histogram"]

MAX_ROUTES: Final = 200
"""Distinct route templates labelled per cache; the rest are counted as ``(other)``."""
OTHER_ROUTE: Final = "(other)"
"""The route label beyond `MAX_ROUTES`."""
NO_ROUTE: Final = "(unmatched)"
"""The route label of a request no route template matched (``cache_all`` mode)."""

BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds of the latency histograms, in seconds: a hit takes about a millisecond, an
origin call ten to a hundred."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One exported metric."""

    name: str
    """The sample name (``asgi_cache_requests_total``)."""
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The name without a counter's ``_total`` (what ``prometheus_client`` is given)."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


def _m(name: str, type_: MetricType, help_: str, *labels: str) -> Metric:
    return Metric(name, type_, help_, labels)


METRICS: Final = (
    _m(
        "asgi_cache_requests_total",
        "counter",
        "Lookups by the layer that answered (l1, redis, memory) and result (hit, miss, stale, "
        "error: the backend failed and the lookup was a miss; bypass: the request could not "
        "use the cache, reason says why)",
        "layer",
        "result",
        "reason",
    ),
    _m(
        "asgi_cache_coalesced_total",
        "counter",
        "Misses answered by another request's load after all (in process or the lock holder's)",
    ),
    _m(
        "asgi_cache_hit_duration_seconds",
        "histogram",
        "HTTP requests answered from the cache, by route template: time to answer",
        "route",
    ),
    _m(
        "asgi_cache_origin_duration_seconds",
        "histogram",
        "HTTP requests the app answered (misses, bypasses, revalidations), by route template",
        "route",
    ),
    _m("asgi_cache_loads_total", "counter", "Cache-aside loader calls"),
    _m("asgi_cache_load_seconds_total", "counter", "Time spent in cache-aside loaders"),
    _m("asgi_cache_lock_waits_total", "counter", "Waits for another process's load (lock)"),
    _m("asgi_cache_lock_wait_seconds_total", "counter", "Time spent waiting for lock holders"),
    _m("asgi_cache_stores_total", "counter", "Entries stored"),
    _m("asgi_cache_corrupt_total", "counter", "Stored values that did not decode or fit"),
    _m(
        "asgi_cache_invalidations_total",
        "counter",
        "Invalidations that landed, by kind (tag, url, key, prefix, clear)",
        "kind",
    ),
    _m(
        "asgi_cache_pending_invalidations",
        "gauge",
        "Invalidations queued while the backend is unreachable, retried until they land",
    ),
    _m(
        "asgi_cache_invalidation_overflows_total",
        "counter",
        "Times the retry queue overflowed into one namespace-wide invalidation",
    ),
    _m(
        "asgi_cache_backend_errors_total",
        "counter",
        "Backend calls that failed (the cache failed open), by operation and kind "
        "(timeout, busy, reply, connection)",
        "operation",
        "kind",
    ),
    _m(
        "asgi_cache_breaker_state",
        "gauge",
        "The circuit breaker's state: 1 for the current one (closed, open, half_open)",
        "state",
    ),
    _m("asgi_cache_breaker_transitions_total", "counter", "Circuit breaker state changes"),
    _m(
        "asgi_cache_breaker_short_circuited_total",
        "counter",
        "Backend calls skipped because the circuit breaker was open",
    ),
    _m("asgi_cache_l1_entries", "gauge", "Entries in the in-process L1 near-cache"),
    _m("asgi_cache_l1_evictions_total", "counter", "L1 entries dropped to stay within its bound"),
    _m(
        "asgi_cache_write_behind_backlog",
        "gauge",
        "Write-behind changes not yet acknowledged, by write-behind name (health probe)",
        "name",
    ),
    _m(
        "asgi_cache_write_behind_lag_seconds",
        "gauge",
        "Age of the oldest write-behind change not yet acknowledged (health probe)",
        "name",
    ),
    _m(
        "asgi_cache_write_behind_dead_letters",
        "gauge",
        "Write-behind changes in the dead letter stream (health probe)",
        "name",
    ),
    _m(
        "asgi_cache_write_behind_written_total",
        "counter",
        "Write-behind changes this process appended",
        "name",
    ),
    _m(
        "asgi_cache_write_behind_applied_total",
        "counter",
        "Write-behind changes this process's worker saw the handler commit",
        "name",
    ),
    _m(
        "asgi_cache_write_behind_dead_lettered_total",
        "counter",
        "Write-behind changes this process moved to the dead letter after max_deliveries",
        "name",
    ),
    _m("asgi_cache_backend_up", "gauge", "1 when the last health probe reached the backend"),
    _m(
        "asgi_cache_backend_latency_seconds",
        "gauge",
        "Round trip of the last health probe's ping",
    ),
    _m("asgi_cache_backend_used_memory_bytes", "gauge", "Backend memory in use (health probe)"),
    _m(
        "asgi_cache_backend_maxmemory_bytes",
        "gauge",
        "Backend memory limit, 0 when none (health probe)",
    ),
    _m(
        "asgi_cache_backend_evicted_keys",
        "gauge",
        "Keys the backend evicted so far (Redis evicted_keys, the whole server; health "
        "probe): a gauge of the server's own counter, so workers do not add it up",
    ),
    _m(
        "asgi_cache_backend_warnings",
        "gauge",
        "What makes the backend unfit for a cache (no maxmemory, noeviction, old Redis)",
    ),
)
"""Every exported metric, in the order they are exposed."""

BY_NAME: Final = {m.name: m for m in METRICS}
"""`METRICS` by sample name."""
