"""asgi-cache's apps: FastAPI behind ``CacheMiddleware`` with ``@cache.response`` routes.

Shared by ``asgi_cache_memory``, ``asgi_cache_redis`` and ``asgi_cache_redis_l1``, which
differ only in the URL and the L1 near-cache setting.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI

from ..workload import payload
from .common import AppConfig, Origin


def build_for(url: str, config: AppConfig, **cache_options: Any) -> tuple[Any, Origin]:
    """The app on the cache at ``url`` (with extra ``CacheSettings`` options) and its origin."""
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

    @app.get("/item/{item_id}")
    @cache.response(ttl=config.ttl, **options)
    async def item(item_id: int) -> Any:
        await origin.read()
        return payload(item_id)

    @app.get("/users/{user_id}")
    @cache.response(ttl=config.ttl, tags=["users:{user_id}"], **options)
    async def get_user(user_id: int) -> Any:
        await origin.read()
        return payload(user_id)

    async def put_user(user_id: int) -> Any:
        await origin.write()
        return {"id": user_id, "updated": True}

    invalidates = getattr(cache, "invalidates", None)
    if invalidates is not None:
        put_user = invalidates("users:{user_id}")(put_user)
    app.put("/users/{user_id}")(put_user)
    return app, origin
