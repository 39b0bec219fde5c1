"""The app of the browser test: a few cached routes and the dashboard at ``/cache``, served
by uvicorn in its own process (``memory://``, so it needs no Redis)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_cache import Cache, CacheMiddleware


def create_app() -> CacheMiddleware:
    """Build the app (the dashboard polls every 0.2 s, so the test waits little)."""
    cache = Cache.from_url("memory://", namespace="shop")

    @cache.response(ttl=300, tags=["items:{item_id}"])
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"]})

    @cache.response(ttl=300)
    async def catalogue(request: Request) -> JSONResponse:
        return JSONResponse({"items": [1, 2, 3]})

    async def up(request: Request) -> JSONResponse:
        return JSONResponse({"up": True})

    routes = [
        Route("/items/{item_id}", item),
        Route("/catalogue", catalogue),
        Route("/up", up),
        Mount("/cache", cache.dashboard_route(refresh=0.2, probe_interval=0.2)),
    ]
    return CacheMiddleware(Starlette(routes=routes), cache=cache)
