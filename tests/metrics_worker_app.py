"""The app of the multi-worker metrics test: ``uvicorn --workers 2`` with
``PROMETHEUS_MULTIPROC_DIR`` set; every worker builds its own cache (``memory://``) and
metrics route, and says which process answered."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_cache import Cache, CacheMiddleware


def create_app() -> CacheMiddleware:
    """Build one worker's app."""
    cache = Cache.from_url("memory://", namespace="mpm")

    @cache.response(ttl=60)
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"pid": os.getpid()})

    async def up(request: Request) -> JSONResponse:
        return JSONResponse({"pid": os.getpid()})

    routes = [
        Route("/items/{item_id}", item),
        Route("/up", up),
        Mount("/metrics", cache.metrics_route(flush_interval=0.2)),
    ]
    return CacheMiddleware(Starlette(routes=routes), cache=cache)
