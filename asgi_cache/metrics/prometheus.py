"""Prometheus: ``cache.metrics_route()``, the text exposition format of one cache's metrics.

Mount it in the app (behind the app's own auth if the figures are private)::

    app.mount("/metrics", cache.metrics_route())

It needs the ``prometheus`` extra (``pip install 'asgi-cache[prometheus]'``, built on
``prometheus-client``). The events are tallied in this process (`tally`); a scrape
converts the tally to metric families then (nothing from ``prometheus-client`` runs on the
request path), after a health probe at most every ``probe_interval`` seconds for the
backend's memory, evictions and latency.

**Several worker processes** (``uvicorn --workers N``, gunicorn): set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start, as
``prometheus-client`` documents. Each worker then copies its tally into the shared
memory-mapped files of ``prometheus-client`` every ``flush_interval`` seconds while its
cache is started (and once more when it closes, and before it answers a scrape), and a
scrape, whichever worker answers it, reports the sum over every worker. Gauges of the
backend (memory, latency) report the most recent worker's value; per-process gauges (the
invalidation queue, the L1, the breaker) the sum over live workers, or their maximum for
the breaker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import anyio

from .._exceptions import ConfigurationError
from .._readonly import ReadOnlyApp, Reply
from .._store import Store
from .._tasks import BackgroundTasks
from .._validate import seconds
from .catalogue import BUCKETS, METRICS, Metric
from .tally import Family, Labels, Probe, Tally, tally_of

if TYPE_CHECKING:
    import prometheus_client

NEEDS_EXTRA = "cache.metrics_route() needs prometheus-client: pip install 'asgi-cache[prometheus]'"

INTERVAL: Final = seconds()
"""The check of the metrics apps' intervals (seconds > 0)."""

_GAUGE_MODES = {
    "asgi_cache_breaker_state": "livemax",
    "asgi_cache_pending_invalidations": "livesum",
    "asgi_cache_l1_entries": "livesum",
}
"""How ``prometheus-client`` combines a per-process gauge across workers; the backend's
gauges (one Redis seen by every worker) take the most recent value."""


def _client() -> Any:
    try:
        import prometheus_client  # the optional extra: imported only when used
        import prometheus_client.core
        import prometheus_client.multiprocess
    except ImportError as exc:
        raise ConfigurationError(NEEDS_EXTRA) from exc
    return prometheus_client


class TallyCollector:
    """A ``prometheus-client`` collector reading one `Tally` when scraped."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self._core = _client().core

    def describe(self) -> list[Any]:
        """Nothing up front (the families are built at each scrape)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The tally as ``prometheus-client`` metric families."""
        core = self._core
        for family in self.tally.collect():
            metric = family.metric
            labels = list(metric.labels)
            if metric.type == "counter":
                out = core.CounterMetricFamily(metric.family, metric.help, labels=labels)
            elif metric.type == "gauge":
                out = core.GaugeMetricFamily(metric.family, metric.help, labels=labels)
            else:
                out = core.HistogramMetricFamily(metric.family, metric.help, labels=labels)
                for values, hist in family.histograms.items():
                    counts = hist.cumulative()
                    bounds = [str(b) for b in BUCKETS] + ["+Inf"]
                    out.add_metric(list(values), list(zip(bounds, counts, strict=True)), hist.sum)
                yield out
                continue
            for values, value in family.values.items():
                out.add_metric(list(values), value)
            yield out


class Mirror:
    """This worker's tally copied into ``prometheus-client``'s multiprocess files.

    Counters and histograms are added as the difference since the last copy; gauges are
    set. Histogram buckets are incremented through ``prometheus-client``'s per-bucket values
    (its ``observe`` takes one observation, the tally hands over bucket counts).
    """

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        client = _client()
        self._metrics: dict[str, Any] = {m.name: _make(client, m) for m in METRICS}
        self._last: dict[tuple[str, Labels], Any] = {}

    def flush(self) -> None:
        """Copy what changed since the last flush."""
        for family in self.tally.collect():
            self._copy(family)

    def _copy(self, family: Family) -> None:
        metric = family.metric
        target = self._metrics[metric.name]
        for values, value in family.values.items():
            child = target.labels(*values) if values else target
            if metric.type == "gauge":
                child.set(value)
                continue
            key = (metric.name, values)
            delta = value - self._last.get(key, 0.0)
            if delta > 0:
                child.inc(delta)
                self._last[key] = value
        for values, hist in family.histograms.items():
            key = (metric.name, values)
            before = self._last.get(key) or ([0] * len(hist.counts), 0.0)
            counts = list(hist.counts)
            if counts == before[0]:
                continue
            child = target.labels(*values)
            for i, (now, then) in enumerate(zip(counts, before[0], strict=True)):
                if now > then:
                    child._buckets[i].inc(now - then)
            child._sum.inc(hist.sum - before[1])
            self._last[key] = (counts, hist.sum)


def _make(client: Any, metric: Metric) -> Any:
    # registry=None: these objects only write the multiprocess files; nothing global.
    labels = metric.labels
    if metric.type == "counter":
        return client.Counter(metric.family, metric.help, labels, registry=None)
    if metric.type == "histogram":
        return client.Histogram(metric.name, metric.help, labels, registry=None, buckets=BUCKETS)
    mode = _GAUGE_MODES.get(metric.name, "mostrecent")
    return client.Gauge(metric.name, metric.help, labels, registry=None, multiprocess_mode=mode)


class MetricsApp(ReadOnlyApp):
    """The ASGI app of ``cache.metrics_route()`` (see the module docs).

    Args:
        store: The cache's store (its events are tallied from now on).
        probe: ``cache.health``.
        probe_interval: Longest age of the backend figures a scrape reports, in seconds.
        flush_interval: With ``PROMETHEUS_MULTIPROC_DIR``: how often each worker copies its
            tally to the shared files.
    """

    def __init__(
        self, store: Store, probe: Probe, *, probe_interval: float, flush_interval: float
    ) -> None:
        self._client = _client()
        self.tally = tally_of(store)
        self.probe = probe
        self.probe_interval = probe_interval
        self.flush_interval = flush_interval
        self.mirror: Mirror | None = None
        self._tasks = BackgroundTasks("metrics flush")
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            known = self.tally.exporters.get("prometheus")
            if isinstance(known, Mirror):  # another route of this cache copies it already
                self.mirror = known
                return
            self.mirror = self.tally.exporters["prometheus"] = Mirror(self.tally)
            store.runtime.on_start(self._start_flushing)
            store.runtime.on_close(self._stop_flushing)

    def _start_flushing(self) -> None:
        self._tasks.start_soon(self._flush_every)

    async def _flush_every(self) -> None:
        mirror = self.mirror
        assert mirror is not None
        while True:
            await anyio.sleep(self.flush_interval)
            mirror.flush()

    async def _stop_flushing(self) -> None:
        await self._tasks.aclose()
        if self.mirror is not None:
            self.mirror.flush()

    def registry(self) -> prometheus_client.CollectorRegistry:
        """What a scrape reports: this process's tally, or every worker's files."""
        client = self._client
        registry: prometheus_client.CollectorRegistry = client.CollectorRegistry(
            auto_describe=False
        )
        if self.mirror is not None:
            self.mirror.flush()
            client.multiprocess.MultiProcessCollector(registry)
        else:
            registry.register(TallyCollector(self.tally))
        return registry

    async def answer(self, path: str) -> Reply:
        """The exposition text, whatever the path under the mount point."""
        await self.tally.sample(self.probe, self.probe_interval)
        body = self._client.generate_latest(self.registry())
        return Reply(200, self._client.CONTENT_TYPE_LATEST, body)
