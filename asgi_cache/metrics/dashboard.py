"""The live dashboard: ``cache.dashboard_route()``, one read-only page about one cache.

Mount it in the app, behind the app's own authentication when its figures are private::

    app.mount("/cache", cache.dashboard_route())

It serves a self-contained page (``/``, with its script and style at ``/dashboard.js`` and
``/dashboard.css``: no CDN, no build step, works offline) and the JSON it polls every
``refresh`` seconds (``/data.json``, `snapshot`): the hit rate (the page draws it over
time from successive polls), hit and origin latency percentiles, the top routes by traffic
and by misses, memory used against ``maxmemory``, evictions, the circuit breaker, the
invalidation queue, the L1, write-behind and the backend's warnings (no ``maxmemory``,
``noeviction``, Redis older than 7). Nothing in it is writable: every method but ``GET`` and
``HEAD`` gets ``405``, and the page only reads.

The figures are this process's (a worker's, under ``uvicorn --workers N``); the backend's
(memory, evictions) are the server's, from a health probe at most every ``probe_interval``
seconds.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import orjson

from .._readonly import ReadOnlyApp, Reply
from .._store import Store
from .tally import Family, Histogram, Probe, Tally, tally_of

_PAGES = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
"""The static files of the page, by path under the mount point."""

_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
TOP_ROUTES = 10
"""Routes listed in each of the page's route tables."""


class DashboardApp(ReadOnlyApp):
    """The ASGI app of ``cache.dashboard_route()`` (see the module docs).

    Args:
        store: The cache's store (its events are tallied from now on).
        probe: ``cache.health``.
        refresh: Seconds between the page's polls.
        probe_interval: Longest age of the backend figures, in seconds.
    """

    def __init__(self, store: Store, probe: Probe, *, refresh: float, probe_interval: float):
        self.tally = tally_of(store)
        self.probe = probe
        self.refresh = refresh
        self.probe_interval = probe_interval
        self._files: dict[str, bytes] = {}

    def _file(self, name: str) -> bytes:
        body = self._files.get(name)
        if body is None:  # read once, on first use (nothing at import time)
            body = resources.files(__package__).joinpath("static", name).read_bytes()
            self._files[name] = body
        return body

    async def answer(self, path: str) -> Reply:
        """The page, its script and style, or ``data.json``; ``404`` for anything else."""
        if path == "/data.json":
            await self.tally.sample(self.probe, self.probe_interval)
            data = snapshot(self.tally, refresh=self.refresh)
            return Reply(200, "application/json", orjson.dumps(data, default=str))
        page = _PAGES.get(path)
        if page is None:
            return Reply(404, "text/plain; charset=utf-8", b"not found\n")
        name, content_type = page
        return Reply(200, content_type, self._file(name))

    def headers(self, path: str) -> list[tuple[bytes, bytes]]:
        """A strict content security policy: the page loads nothing but its own files."""
        return [(b"content-security-policy", _CSP)]


_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def _quantiles(histogram: Histogram | None) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {"count": histogram.count if histogram else 0}
    for name, q in _QUANTILES:
        value = histogram.quantile(q) if histogram else None
        out[name] = None if value is None else round(value * 1000, 3)  # milliseconds
    return out


def _merged(table: dict[str, Histogram]) -> Histogram:
    merged = Histogram()
    for h in table.values():
        merged.counts = [a + b for a, b in zip(merged.counts, h.counts, strict=True)]
        merged.sum += h.sum
        merged.count += h.count
    return merged


def _routes(tally: Tally) -> list[dict[str, Any]]:
    rows = []
    for route in {*tally.hit_latency, *tally.origin_latency}:
        hits = tally.hit_latency.get(route)
        origin = tally.origin_latency.get(route)
        rows.append(
            {
                "route": route,
                "cached": hits.count if hits else 0,
                "origin": origin.count if origin else 0,
                "total": (hits.count if hits else 0) + (origin.count if origin else 0),
                "hit_p50_ms": _quantiles(hits)["p50"],
                "origin_p50_ms": _quantiles(origin)["p50"],
            }
        )
    return rows


def _family(families: list[Family], name: str) -> dict[tuple[str, ...], float]:
    for f in families:
        if f.metric.name == name:
            return f.values
    return {}


def snapshot(tally: Tally, *, refresh: float = 2.0) -> dict[str, Any]:
    """What ``data.json`` answers: this instant's figures, JSON-ready."""
    store = tally.store
    stats = tally.stats()
    families = tally.collect()
    probe = dict(tally.probe or {})
    routes = _routes(tally)
    by_kind = {k[0]: v for k, v in _family(families, "asgi_cache_invalidations_total").items()}
    requests = [
        {"layer": k[0], "result": k[1], "reason": k[2], "count": v}
        for k, v in sorted(_family(families, "asgi_cache_requests_total").items())
    ]
    return {
        "time": time.time(),
        "refresh": refresh,
        "namespace": store.keys.namespace,
        "backend": stats.get("backend"),
        "status": probe.get("status"),
        "latency_ms": probe.get("latency_ms"),
        "counts": {k: stats[k] for k in ("hits", "misses", "stale", "errors", "loads", "sets")},
        "hit_rate": stats["hit_rate"],
        "requests": requests,
        "latency": {
            "hit": _quantiles(_merged(tally.hit_latency)),
            "origin": _quantiles(_merged(tally.origin_latency)),
        },
        "routes_by_traffic": sorted(routes, key=lambda r: (-r["total"], r["route"]))[:TOP_ROUTES],
        "routes_by_misses": sorted(
            (r for r in routes if r["origin"]), key=lambda r: (-r["origin"], r["route"])
        )[:TOP_ROUTES],
        "memory": {
            "used": probe.get("used_memory"),
            "max": probe.get("maxmemory"),
            "policy": probe.get("maxmemory_policy"),
            "evictions": probe.get("evictions"),
        },
        "breaker": stats.get("breaker"),
        "invalidations": {
            "pending": stats["pending_invalidations"],
            "overflows": stats["invalidation_overflows"],
            "by_kind": by_kind,
        },
        "l1": _l1(tally, stats.get("l1")),
        "write_behind": _write_behind(stats.get("write_behind"), probe.get("write_behind")),
        "warnings": _texts(probe.get("warnings")),
    }


def _l1(tally: Tally, counts: object) -> dict[str, Any] | None:
    near = tally.store.runtime.near
    if near is None or not isinstance(counts, dict):
        return None
    return {**counts, "evictions": near.evictions}


def _texts(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _write_behind(counters: object, backlog: object) -> dict[str, Any] | None:
    """Each write-behind name's counters (``stats()``) merged with its backlog (``health()``)."""
    if not isinstance(counters, dict) and not isinstance(backlog, dict):
        return None
    out: dict[str, Any] = {}
    for source in (counters, backlog):
        if isinstance(source, dict):
            for name, status in source.items():
                if isinstance(status, dict):
                    out.setdefault(str(name), {}).update(status)
    return out
