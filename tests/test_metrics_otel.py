"""``cache.instrument()``: the metrics through an OpenTelemetry meter (read with the SDK's
``InMemoryMetricReader``) and spans for loads, lock waits and Redis round trips (with the
SDK's ``InMemorySpanExporter``); counts, never timings."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asgi_cache import Cache, ConfigurationError
from asgi_cache.metrics import METRICS
from asgi_cache.metrics.otel import otel_name

from .http_support import client_for
from .metrics_support import site


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Data points by instrument name, from one collection."""
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "asgi_cache"
            for metric in scope.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


def point(found: dict[str, list[Any]], name: str, **attributes: str) -> Any:
    for p in found[name]:
        if dict(p.attributes) == attributes:
            return p
    raise KeyError(f"{name}{attributes}: {[dict(p.attributes) for p in found[name]]}")


async def test_instruments_after_scripted_traffic() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    cache = Cache.from_url("memory://", namespace="otel", ttl_jitter=0.0)
    cache.instrument(meter_provider=provider)
    cache.instrument(meter_provider=provider)  # a second call records nothing twice
    app = site(cache, [])
    async with cache, client_for(app) as client:
        for _ in range(3):
            await client.get("/items/1")
        await client.get("/items/1", headers={"x-http-method-override": "PUT"})
        assert await cache.get_or_load("k", lambda: 1) == 1
        await cache.invalidate_tags("items:1")
        await cache.health()
    found = points(reader)
    requests = "asgi_cache_requests"
    assert point(found, requests, layer="memory", result="hit", reason="").value == 2
    assert point(found, requests, layer="memory", result="miss", reason="").value == 2
    bypass = point(found, requests, layer="memory", result="bypass", reason="method-override")
    assert bypass.value == 1
    assert point(found, "asgi_cache_hit_duration", route="/items/{item_id}").count == 2
    assert point(found, "asgi_cache_origin_duration", route="/items/{item_id}").count == 2
    assert point(found, "asgi_cache_loads").value == 1
    assert point(found, "asgi_cache_invalidations", kind="tag").value == 1
    assert point(found, "asgi_cache_backend_up").value == 1
    provider.shutdown()


def test_names_are_the_prometheus_names_without_suffixes() -> None:
    names = {m.name: otel_name(m) for m in METRICS}
    assert names["asgi_cache_requests_total"] == ("asgi_cache_requests", "1")
    assert names["asgi_cache_hit_duration_seconds"] == ("asgi_cache_hit_duration", "s")
    assert names["asgi_cache_backend_used_memory_bytes"] == ("asgi_cache_backend_used_memory", "By")
    assert len({n for n, _ in names.values()}) == len(METRICS)


@pytest.mark.redis
async def test_spans_for_loads_lock_waits_and_round_trips(redis_url: str) -> None:
    exporter = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    cache = Cache.from_url(redis_url, namespace="spans", op_timeout=5.0, lock_timeout=0.2)
    cache.instrument(meter_provider=meters, tracer_provider=tracing, spans=True)
    async with cache:
        assert await cache.get_or_load("a", lambda: 1, lock=True) == 1
        assert await cache.get("a") == 1
        # Another holder of b's lock: the load waits for it (until lock_timeout), then loads.
        held = cache._store.locks.lock(cache.keys.data("b"))
        assert await held.acquire()
        assert await cache.get_or_load("b", lambda: 2, lock=True) == 2
        await held.release()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("asgi_cache.load") == 2
    assert names.count("asgi_cache.lock_wait") == 1
    round_trips = [s for s in exporter.get_finished_spans() if s.name == "asgi_cache.redis"]
    assert round_trips
    assert {s.attributes["db.system"] for s in round_trips} == {"redis"}
    operations = {s.attributes["db.operation"] for s in round_trips}
    assert "GET" in operations
    found = points(reader)
    assert point(found, "asgi_cache_lock_waits").value == 1
    assert point(found, "asgi_cache_lock_wait").value > 0  # seconds (unit s)
    tracing.shutdown()
    meters.shutdown()


async def test_spans_are_off_by_default_and_the_flag_is_checked() -> None:
    cache = Cache.from_url("memory://", namespace="quiet")
    with pytest.raises(ConfigurationError, match="spans='yes' is not allowed"):
        cache.instrument(spans="yes")  # type: ignore[arg-type]
    cache.instrument(meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))
    assert cache._store.stats.tracer is None
