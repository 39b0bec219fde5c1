"""Helpers of the metrics tests: a small Starlette site with a cached route, and reading the
Prometheus text through ``prometheus_client.parser``."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_cache import Cache, CacheMiddleware


def site(cache: Cache, calls: list[str], **mounts: Any) -> Any:
    """``/items/{item_id}`` (cached, tagged ``items:{item_id}``) and ``/plain`` (no policy)
    behind the middleware; ``mounts`` are extra apps by path. ``calls`` records origin calls."""

    @cache.response(ttl=60, tags=["items:{item_id}"])
    async def item(request: Request) -> JSONResponse:
        calls.append(request.url.path)
        return JSONResponse({"id": request.path_params["item_id"]})

    async def plain(request: Request) -> JSONResponse:
        return JSONResponse({"plain": True})

    routes: list[Any] = [Route("/items/{item_id}", item), Route("/plain", plain)]
    routes += [Mount(f"/{path}", app) for path, app in mounts.items()]
    app = Starlette(routes=routes)
    return CacheMiddleware(app, cache=cache)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Sample values by name and label set."""


def samples(text: str) -> Samples:
    """Every sample of a Prometheus exposition, by name and label set (parsed by
    ``prometheus_client.parser``, which rejects malformed text)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value (``KeyError`` naming it when absent)."""
    key = (name, frozenset(labels.items()))
    if key not in found:
        known = sorted(str(dict(k[1])) for k in found if k[0] == name)
        raise KeyError(f"{name}{labels} not exported; {name} has {known}")
    return found[key]


def families(text: str) -> dict[str, str]:
    """Family name -> type, as parsed."""
    return {f.name: f.type for f in text_string_to_metric_families(text)}
