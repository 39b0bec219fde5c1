"""asgi-cache's apps: FastAPI behind ``CacheMiddleware`` with ``@cache.response`` routes.

Shared by ``asgi_cache_memory``, ``asgi_cache_redis``, ``asgi_cache_redis_l1`` and
``asgi_cache_redis_refresh``, which differ only in the URL, the L1 near-cache setting and
refresh on write.

``/users/{id}`` answers with ``X-User-Version``: how many writes that user had when the body
was read (a PUT answers the version it made), so the seed phase can check that no read after
a write sees an older version (a stale read).
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI, Response

from ..workload import payload
from .common import AppConfig, Origin


def build_for(
    url: str, config: AppConfig, *, refresh: bool = False, **cache_options: Any
) -> tuple[Any, Origin]:
    """The app on the cache at ``url`` (with extra ``CacheSettings`` options) and its origin;
    ``refresh``: its writes refresh what they invalidate (``refresh=True``)."""

    from asgi_cache import Cache, CacheMiddleware

    origin = Origin(config)
    cache = Cache.from_url(url, namespace="bench", default_ttl=config.ttl, **cache_options)
    # Cross-process stampede protection is opt-in per route (``lock=True``, DESIGN.md); the
    # benchmark routes stand for expensive reads, so they ask for it when it is supported.
    options: dict[str, Any] = {}
    if "lock" in inspect.signature(cache.response).parameters:
        options["lock"] = True
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)

    @app.get("/ping")
    async def ping() -> str:
        return "ok"

    @app.get("/_bench/stats")
    async def stats() -> Any:
        # The cache's own counters, read by the seed phase after its run (not cached: the
        # middleware caches only the routes that ask for it).
        return cache.stats()

    @app.get("/item/{item_id}")
    @cache.response(ttl=config.ttl, **options)
    async def item(item_id: int) -> Any:
        await origin.read()
        return payload(item_id)

    versions: dict[int, int] = {}  # the "database" row version of each user

    @app.get("/users/{user_id}")
    @cache.response(ttl=config.ttl, tags=["users:{user_id}"], **options)
    async def get_user(user_id: int, response: Response) -> Any:
        version = versions.get(user_id, 0)  # read before the database wait, as a SELECT
        await origin.read()
        response.headers["x-user-version"] = str(version)
        return payload(user_id)

    async def put_user(user_id: int, response: Response) -> Any:
        await origin.write()
        versions[user_id] = version = versions.get(user_id, 0) + 1  # committed at the end
        response.headers["x-user-version"] = str(version)
        return {"id": user_id, "updated": True}

    invalidates = getattr(cache, "invalidates", None)
    if invalidates is not None:
        extra = {"refresh": True} if refresh else {}
        put_user = invalidates("users:{user_id}", **extra)(put_user)
    app.put("/users/{user_id}")(put_user)
    return app, origin
