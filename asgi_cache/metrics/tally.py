"""The events of one cache, tallied with their labels: what every exporter reads.

A `Tally` is the `Observer` of one cache (installed by
`tally_of`, once). Each event costs a dict update or a histogram bucket increment in
this process, nothing else: exporters read the tally when they are asked (a Prometheus
scrape, an OpenTelemetry collection, a dashboard poll) through `Tally.collect`, which
adds what the cache's state says at that instant (``cache.stats()``: the invalidation
queue, the breaker, the L1, write-behind) and what the last health probe said about the
backend (memory, evictions, latency).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._stats import Source
from .._store import Store
from ..health import describe_stats
from .catalogue import BUCKETS, BY_NAME, MAX_ROUTES, NO_ROUTE, OTHER_ROUTE, Metric

Labels = tuple[str, ...]
Probe = Callable[[], Awaitable[object]]
"""``cache.health``: probes the backend and reports through the events."""


class Histogram:
    """Observations counted in the fixed `BUCKETS` (plus ``+Inf``)."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        """Observations per bucket, not cumulative (the last one is ``+Inf``)."""
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation of ``value`` seconds."""
        # bisect_left finds the first bound >= value: Prometheus buckets are "le".
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        """The bucket counts as Prometheus exposes them (each includes the ones below)."""
        out, running = [], 0
        for n in self.counts:
            running += n
            out.append(running)
        return out

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile, interpolated inside its bucket as PromQL's
        ``histogram_quantile`` does; ``None`` without observations."""
        if not self.count:
            return None
        rank = q * self.count
        below = 0
        for i, n in enumerate(self.counts):
            if below + n >= rank and n:
                if i == len(BUCKETS):
                    return BUCKETS[-1]  # the +Inf bucket: the highest finite bound
                low = BUCKETS[i - 1] if i else 0.0
                return low + (BUCKETS[i] - low) * (rank - below) / n
            below += n
        return BUCKETS[-1]  # pragma: no cover - rank <= count always lands above


@dataclass(slots=True)
class Family:
    """One metric's samples at an instant: values by label values, or histograms."""

    metric: Metric
    values: dict[Labels, float] = field(default_factory=dict)
    histograms: dict[Labels, Histogram] = field(default_factory=dict)


class Tally:
    """Counts the events of one cache by their labels (see the module docs).

    Args:
        store: The cache's store, for the state read at collection time.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.backend_layer = "memory" if store.runtime.in_process else "redis"
        self.requests: dict[Labels, int] = {}
        self.coalesced = 0
        self.hit_latency: dict[str, Histogram] = {}
        self.origin_latency: dict[str, Histogram] = {}
        self.load_seconds = 0.0
        self.lock_wait_seconds = 0.0
        self.invalidations: dict[str, int] = {}
        self.errors: dict[Labels, int] = {}
        self.recorders: list[Callable[[str, bool, float], None]] = []
        """Also handed each timed HTTP request, with its bounded route label (the
        OpenTelemetry histograms: an SDK has no observable histogram)."""
        self.exporters: dict[str, object] = {}
        """One of each kind of exporter per tally (a second ``metrics_route()`` or
        ``instrument()`` reuses the first: nothing is copied or recorded twice)."""
        self.probe: Mapping[str, object] | None = None
        """The last health probe's report (``None`` before the first)."""
        self.probed_at = 0.0
        """When it was taken (``time.monotonic()``)."""
        self._lookups = {
            (result, source): self._lookup_labels(result, source)
            for result in ("hit", "miss", "stale")
            for source in Source
        }

    def _lookup_labels(self, result: str, source: Source) -> Labels:
        layer = "l1" if source is Source.L1 else self.backend_layer
        if source is Source.FAILED and result == "miss":
            result = "error"
        return (layer, result, "")

    # -- the Observer protocol (see asgi_cache._stats.Observer) --------------------------------

    def lookup(self, result: str, source: Source) -> None:
        """Count a lookup's result."""
        if result == "coalesced":
            self.coalesced += 1
            return
        labels = self._lookups[(result, source)]
        self.requests[labels] = self.requests.get(labels, 0) + 1

    def bypassed(self, reason: str) -> None:
        """Count a request that bypassed the cache."""
        labels = (self.backend_layer, "bypass", reason)
        self.requests[labels] = self.requests.get(labels, 0) + 1

    def served(self, route: str, cached: bool, seconds: float) -> None:
        """Time an HTTP request under its route template (and hand it to the recorders)."""
        table = self.hit_latency if cached else self.origin_latency
        histogram = table.get(route)
        if histogram is None:
            route = self._route(table, route)
            histogram = table.get(route)
            if histogram is None:
                histogram = table[route] = Histogram()
        histogram.observe(seconds)
        for record in self.recorders:
            record(route, cached, seconds)

    def _route(self, table: dict[str, Histogram], route: str) -> str:
        if not route:
            return NO_ROUTE
        if len(table) >= MAX_ROUTES:
            return OTHER_ROUTE  # bounded cardinality, whatever the app's routing
        return route

    def load_done(self, seconds: float) -> None:
        """Add a load's duration."""
        self.load_seconds += seconds

    def lock_wait_done(self, seconds: float) -> None:
        """Add a lock wait's duration."""
        self.lock_wait_seconds += seconds

    def invalidated(self, kind: str, count: int) -> None:
        """Count invalidations of ``kind``."""
        self.invalidations[kind] = self.invalidations.get(kind, 0) + count

    def error(self, operation: str, kind: str) -> None:
        """Count a failed backend call."""
        labels = (operation, kind)
        self.errors[labels] = self.errors.get(labels, 0) + 1

    def probed(self, report: Mapping[str, object]) -> None:
        """Keep the health probe's report."""
        self.probe = report
        self.probed_at = time.monotonic()

    # -- reading -------------------------------------------------------------------------------

    async def sample(self, probe: Probe, max_age: float) -> None:
        """Run the health ``probe`` unless its last report is younger than ``max_age``
        seconds (a scrape or a dashboard poll costs a round trip at most that often). The
        probe reports through the events (``probed``), never raises for the backend."""
        if self.probe is None or time.monotonic() - self.probed_at >= max_age:
            await probe()

    def stats(self) -> dict[str, Any]:
        """``cache.stats()`` of the tally's cache, now."""
        return dict(describe_stats(self.store))

    def collect(self) -> list[Family]:
        """Every metric of `METRICS` as it stands now."""
        stats = self.stats()
        out: list[Family] = []

        def add(name: str, values: Mapping[Labels, float]) -> None:
            out.append(Family(BY_NAME[name], dict(values)))

        def one(name: str, value: object) -> None:
            if isinstance(value, int | float) and not isinstance(value, bool):
                add(name, {(): float(value)})

        add("asgi_cache_requests_total", self.requests)
        one("asgi_cache_coalesced_total", self.coalesced)
        out.append(
            Family(
                BY_NAME["asgi_cache_hit_duration_seconds"], histograms=_by_route(self.hit_latency)
            )
        )
        out.append(
            Family(
                BY_NAME["asgi_cache_origin_duration_seconds"],
                histograms=_by_route(self.origin_latency),
            )
        )
        one("asgi_cache_loads_total", stats["loads"])
        one("asgi_cache_load_seconds_total", self.load_seconds)
        one("asgi_cache_lock_waits_total", stats["lock_waits"])
        one("asgi_cache_lock_wait_seconds_total", self.lock_wait_seconds)
        one("asgi_cache_stores_total", stats["sets"])
        one("asgi_cache_corrupt_total", stats["corrupt"])
        add("asgi_cache_invalidations_total", {(k,): v for k, v in self.invalidations.items()})
        one("asgi_cache_pending_invalidations", stats["pending_invalidations"])
        one("asgi_cache_invalidation_overflows_total", stats["invalidation_overflows"])
        add("asgi_cache_backend_errors_total", self.errors)
        breaker = stats.get("breaker")
        if breaker is not None:
            states = ("closed", "open", "half_open")
            add("asgi_cache_breaker_state", {(s,): float(breaker["state"] == s) for s in states})
            one("asgi_cache_breaker_transitions_total", breaker["transitions"])
            one("asgi_cache_breaker_short_circuited_total", breaker["short_circuited"])
        near = self.store.runtime.near
        if near is not None:
            one("asgi_cache_l1_entries", len(near))
            one("asgi_cache_l1_evictions_total", near.evictions)
        _write_behind(stats.get("write_behind"), _WRITE_BEHIND_COUNTERS, out)
        probe = self.probe
        if probe is not None:
            up = probe.get("status") != "down"
            one("asgi_cache_backend_up", float(up))
            latency = probe.get("latency_ms")
            if isinstance(latency, int | float):
                one("asgi_cache_backend_latency_seconds", latency / 1000)
            one("asgi_cache_backend_used_memory_bytes", probe.get("used_memory"))
            one("asgi_cache_backend_maxmemory_bytes", probe.get("maxmemory"))
            one("asgi_cache_backend_evicted_keys", probe.get("evictions"))
            warnings = probe.get("warnings")
            one("asgi_cache_backend_warnings", len(warnings) if isinstance(warnings, list) else 0)
            _write_behind(probe.get("write_behind"), _WRITE_BEHIND_GAUGES, out)
        return out


def _by_route(table: dict[str, Histogram]) -> dict[Labels, Histogram]:
    return {(route,): h for route, h in table.items()}


_WRITE_BEHIND_COUNTERS = (
    ("asgi_cache_write_behind_written_total", "written"),
    ("asgi_cache_write_behind_applied_total", "applied"),
    ("asgi_cache_write_behind_dead_lettered_total", "dead_lettered"),
)
"""Counters of each write-behind status in ``stats()["write_behind"]`` (this process's)."""
_WRITE_BEHIND_GAUGES = (
    ("asgi_cache_write_behind_backlog", "backlog"),
    ("asgi_cache_write_behind_lag_seconds", "lag_seconds"),
    ("asgi_cache_write_behind_dead_letters", "dead_letters"),
)
"""Gauges of each write-behind status in ``health()["write_behind"]`` (the backend's)."""


def _write_behind(statuses: object, fields: tuple[tuple[str, str], ...], out: list[Family]) -> None:
    """Families of ``fields`` from a ``write_behind`` report (name -> status)."""
    if not isinstance(statuses, Mapping):
        return
    for metric, field_name in fields:
        values: dict[Labels, float] = {
            (str(name),): float(status[field_name])
            for name, status in statuses.items()
            if isinstance(status, Mapping) and isinstance(status.get(field_name), int | float)
        }
        if values:
            out.append(Family(BY_NAME[metric], values))


def tally_of(store: Store) -> Tally:
    """The tally of ``store``'s cache, installed as its events' observer on first use."""
    observer = store.stats.observer
    if isinstance(observer, Tally):
        return observer
    tally = Tally(store)
    store.stats.observer = tally
    return tally
