"""``cache.metrics_route()``: metric values after scripted traffic, parsed with
``prometheus_client.parser`` (counts, never timings)."""

from __future__ import annotations

import pytest

from asgi_cache import Cache, ConfigurationError
from asgi_cache.metrics import METRICS

from .http_support import client_for
from .metrics_support import families, samples, site, value


async def scrape(
    client: object, path: str = "/metrics/"
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get(path)  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    return samples(response.text)


async def test_http_and_data_traffic_on_memory() -> None:
    cache = Cache.from_url("memory://", namespace="m", ttl_jitter=0.0)
    calls: list[str] = []
    app = site(cache, calls, metrics=cache.metrics_route())
    async with cache, client_for(app) as client:
        for _ in range(3):
            assert (await client.get("/items/1")).status_code == 200
        await client.get("/items/2")
        await client.get("/items/1", headers={"x-http-method-override": "PUT"})  # bypass
        await client.get("/plain")  # no policy: not a cache request at all
        assert calls == ["/items/1", "/items/2", "/items/1"]
        assert await cache.get("absent") is None
        await cache.set("k", 1, tags=["t"])
        assert await cache.get("k") == 1
        assert await cache.get_or_load("loaded", lambda: 7) == 7
        await cache.invalidate_tags("t", "u")
        await cache.invalidate_url("/items/1")
        await cache.delete("k", "loaded")
        await cache.clear()
        found = await scrape(client)
    requests = "asgi_cache_requests_total"
    # HTTP: 2 misses + 2 hits on /items/1 and /items/2; data: 2 misses (absent, loaded), 1 hit.
    assert value(found, requests, layer="memory", result="hit", reason="") == 3
    assert value(found, requests, layer="memory", result="miss", reason="") == 4
    assert value(found, requests, layer="memory", result="bypass", reason="method-override") == 1
    assert value(found, "asgi_cache_hit_duration_seconds_count", route="/items/{item_id}") == 2
    # The origin histogram counts the two misses and the bypass; never /plain (no policy).
    assert value(found, "asgi_cache_origin_duration_seconds_count", route="/items/{item_id}") == 3
    assert not any(dict(k[1]).get("route") == "/plain" for k in found)
    assert value(found, "asgi_cache_loads_total") == 1
    assert value(found, "asgi_cache_stores_total") == 4  # two responses, k, loaded
    assert value(found, "asgi_cache_invalidations_total", kind="tag") == 2
    assert value(found, "asgi_cache_invalidations_total", kind="url") == 1
    assert value(found, "asgi_cache_invalidations_total", kind="key") == 2
    assert value(found, "asgi_cache_invalidations_total", kind="clear") == 1
    assert value(found, "asgi_cache_pending_invalidations") == 0
    assert value(found, "asgi_cache_backend_up") == 1
    assert value(found, "asgi_cache_backend_maxmemory_bytes") > 0
    # Never a key or a URL as a label value.
    for _, labels in found:
        for label, text in labels:
            assert "items/1" not in text, (label, text)
            assert "absent" not in text, (label, text)


async def test_every_exported_name_is_in_the_catalogue() -> None:
    cache = Cache.from_url("memory://", namespace="names")
    app = site(cache, [], metrics=cache.metrics_route())
    async with cache, client_for(app) as client:
        await client.get("/items/1")
        await client.get("/items/1")
        text = (await client.get("/metrics/")).text
    catalogue = {m.family: m.type for m in METRICS}
    exported = families(text)
    assert exported, text
    for name, kind in exported.items():
        assert catalogue.get(name) == kind, name
    for metric in METRICS:
        assert metric.name.startswith("asgi_cache_")
        assert (metric.type == "counter") == metric.name.endswith("_total"), metric.name


@pytest.mark.redis
async def test_layers_breaker_and_probe_on_redis(redis_url: str) -> None:
    cache = Cache.from_url(redis_url, namespace="prom", l1_ttl=30, op_timeout=5.0)
    app = site(cache, [], metrics=cache.metrics_route(probe_interval=0.001))
    async with cache, client_for(app) as client:
        await cache.set("hot", "v")
        for _ in range(3):
            assert await cache.get("hot") == "v"  # first from Redis (fills the L1), then L1
        await client.get("/items/9")
        await client.get("/items/9")
        found = await scrape(client)
    requests = "asgi_cache_requests_total"
    assert value(found, requests, layer="redis", result="hit", reason="") >= 1
    l1_hits = value(found, requests, layer="l1", result="hit", reason="")
    redis_hits = value(found, requests, layer="redis", result="hit", reason="")
    assert l1_hits >= 2
    assert l1_hits + redis_hits == 4
    assert value(found, requests, layer="redis", result="miss", reason="") == 1
    assert value(found, "asgi_cache_breaker_state", state="closed") == 1
    assert value(found, "asgi_cache_breaker_state", state="open") == 0
    assert value(found, "asgi_cache_breaker_transitions_total") == 0
    assert value(found, "asgi_cache_l1_entries") >= 1
    assert value(found, "asgi_cache_l1_evictions_total") == 0
    assert value(found, "asgi_cache_backend_used_memory_bytes") > 0
    assert "asgi_cache_backend_evicted_keys" in {k[0] for k in found}


async def test_backend_errors_are_counted_by_operation_and_kind() -> None:
    # A Redis URL nobody listens on: reads and writes fail open, counted as errors.
    cache = Cache.from_url(
        "redis://127.0.0.1:1/0", namespace="down", breaker_threshold=0, connect_timeout=0.5
    )
    app = site(cache, [], metrics=cache.metrics_route())
    async with cache, client_for(app) as client:
        assert await cache.get("k") is None
        await cache.set("k", 1)
        found = await scrape(client)
    requests = "asgi_cache_requests_total"
    assert value(found, requests, layer="redis", result="error", reason="") == 1
    assert value(found, "asgi_cache_backend_errors_total", operation="read", kind="connection") == 1
    assert value(found, "asgi_cache_backend_up") == 0


async def test_the_route_is_read_only_and_validated() -> None:
    cache = Cache.from_url("memory://", namespace="ro")
    with pytest.raises(ConfigurationError, match="probe_interval=0 is not allowed"):
        cache.metrics_route(probe_interval=0)
    app = cache.metrics_route()
    async with client_for(app) as client:
        assert (await client.post("/")).status_code == 405
        head = await client.head("/")
        assert head.status_code == 200
        assert head.content == b""


async def test_route_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_cache.metrics import tally as tally_module

    monkeypatch.setattr(tally_module, "MAX_ROUTES", 2)
    cache = Cache.from_url("memory://", namespace="bounded")
    t = tally_module.tally_of(cache._store)
    for route in ("/a", "/b", "/c", "/d", ""):
        t.served(route, True, 0.001)
    assert set(t.hit_latency) == {"/a", "/b", "(other)", "(unmatched)"}
    assert t.hit_latency["(other)"].count == 2


async def test_one_multiprocess_mirror_per_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two routes of one cache in a multi-worker deployment: the tally is copied to the shared
    # files once, or every count would be doubled.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-not-written")
    cache = Cache.from_url("memory://", namespace="twice")
    first, second = cache.metrics_route(), cache.metrics_route()
    assert first.mirror is not None
    assert second.mirror is first.mirror
