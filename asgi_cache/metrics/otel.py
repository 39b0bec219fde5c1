"""OpenTelemetry: the same instruments as the Prometheus exporter, through a meter, and
spans for loads, lock waits and Redis round trips (``cache.instrument(...)``).

It needs the ``otel`` extra (``pip install 'asgi-cache[otel]'``: ``opentelemetry-api``;
an SDK and exporter are the application's choice). Instruments are created on the meter
provider given, else the global one (``opentelemetry.metrics.set_meter_provider``); without
a configured provider the API's no-op meter records nothing.

Counters and gauges are *observable*: they read the tally (`tally`) when the SDK
collects, so they cost nothing per request. Only the latency histograms record each request
(OpenTelemetry has no observable histogram). Names are those of `METRICS`
without the Prometheus suffixes (``_total`` and the unit): ``asgi_cache_requests``,
``asgi_cache_hit_duration`` (unit ``s``); a Prometheus exporter of the SDK adds them back.

Spans (``spans=True``; off by default: one span per Redis command is overhead most
deployments do not want): ``asgi_cache.load`` around each loader call, ``asgi_cache.lock_wait``
around each wait for another process's load, ``asgi_cache.redis`` around each Redis round
trip (attribute ``db.operation``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .._exceptions import ConfigurationError
from .._store import Store
from .catalogue import BUCKETS, METRICS, Metric
from .tally import Family, Tally, tally_of

NEEDS_EXTRA = "cache.instrument() needs opentelemetry-api: pip install 'asgi-cache[otel]'"
SCOPE = "asgi_cache"
"""The instrumentation scope name of the meter and the tracer."""

_UNITS = (("_seconds", "s"), ("_bytes", "By"))


def otel_name(metric: Metric) -> tuple[str, str]:
    """The OpenTelemetry instrument name and unit of ``metric`` (no Prometheus suffixes)."""
    name = metric.family
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return name.removesuffix(suffix), unit
    return name, "1" if metric.type != "histogram" else "s"


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace  # the optional extra: imported when used
    except ImportError as exc:
        raise ConfigurationError(NEEDS_EXTRA) from exc
    return metrics, trace


class Instruments:
    """The instruments of one cache on one meter (see the module docs).

    Args:
        tally: The cache's tally.
        meter: An OpenTelemetry ``Meter``.
        max_age: Seconds one collection of the tally serves every observable callback.
    """

    def __init__(self, tally: Tally, meter: Any, *, max_age: float = 0.5) -> None:
        metrics, _ = _api()
        self.tally = tally
        self.max_age = max_age
        self._families: dict[str, Family] = {}
        self._collected = -1.0
        self._histograms: dict[str, Any] = {}
        for metric in METRICS:
            name, unit = otel_name(metric)
            if metric.type == "histogram":
                self._histograms[metric.name] = meter.create_histogram(
                    name,
                    unit=unit,
                    description=metric.help,
                    explicit_bucket_boundaries_advisory=list(BUCKETS),
                )
                continue
            create = (
                meter.create_observable_counter
                if metric.type == "counter"
                else meter.create_observable_gauge
            )
            create(
                name,
                callbacks=[self._callback(metric, metrics)],
                unit=unit,
                description=metric.help,
            )
        self._hit = self._histograms["asgi_cache_hit_duration_seconds"]
        self._origin = self._histograms["asgi_cache_origin_duration_seconds"]
        tally.recorders.append(self.served)

    def served(self, route: str, cached: bool, seconds: float) -> None:
        """Record one HTTP request's duration (a `Tally` recorder)."""
        (self._hit if cached else self._origin).record(seconds, {"route": route})

    def _callback(self, metric: Metric, metrics: Any) -> Callable[[Any], Iterable[Any]]:
        def observe(options: Any) -> Iterator[Any]:
            family = self._family(metric.name)
            if family is None:
                return
            for labels, value in family.values.items():
                yield metrics.Observation(value, dict(zip(metric.labels, labels, strict=True)))

        return observe

    def _family(self, name: str) -> Family | None:
        now = time.monotonic()
        if now - self._collected > self.max_age:  # one collect() per SDK collection
            self._families = {f.metric.name: f for f in self.tally.collect()}
            self._collected = now
        return self._families.get(name)


class Spans:
    """Span factories for the cache's loads, lock waits and Redis round trips."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def span(self, name: str) -> AbstractContextManager[object]:
        """A span named ``name`` (``asgi_cache.load``, ``asgi_cache.lock_wait``)."""
        return self.tracer.start_as_current_span(name)  # type: ignore[no-any-return]

    @contextmanager
    def round_trip(self, command: str) -> Iterator[None]:
        """A span around one Redis command."""
        with self.tracer.start_as_current_span(
            "asgi_cache.redis", attributes={"db.system": "redis", "db.operation": command}
        ):
            yield


def instrument(
    store: Store,
    *,
    meter_provider: Any = None,
    tracer_provider: Any = None,
    spans: bool = False,
) -> Instruments:
    """Export ``store``'s cache through OpenTelemetry (see ``Cache.instrument``)."""
    metrics, trace = _api()
    tally = tally_of(store)
    known = tally.exporters.get("otel")
    if isinstance(known, Instruments):  # instrumented already: recording twice would double
        instruments = known
    else:
        provider = meter_provider or metrics.get_meter_provider()
        instruments = tally.exporters["otel"] = Instruments(tally, provider.get_meter(SCOPE))
    if spans:
        tracers = tracer_provider or trace.get_tracer_provider()
        hooks = Spans(tracers.get_tracer(SCOPE))
        store.stats.tracer = hooks.span
        store.runtime.trace_round_trips(hooks.round_trip)
    return instruments
