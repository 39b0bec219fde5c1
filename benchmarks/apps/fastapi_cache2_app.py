"""``fastapi-cache2``: its ``@cache`` decorator on a FastAPI route, Redis backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..workload import payload
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    import redis.asyncio as aioredis
    from fastapi_cache import FastAPICache
    from fastapi_cache.backends.redis import RedisBackend
    from fastapi_cache.decorator import cache

    origin = Origin(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(config.redis_url)
        FastAPICache.reset()  # its configuration is class-level: start clean
        FastAPICache.init(RedisBackend(client), prefix="fc2")
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> str:
        return "ok"

    @app.get("/item/{item_id}")
    @cache(expire=config.ttl)
    async def item(item_id: int) -> Any:
        await origin.read()
        return payload(item_id)

    return app, origin


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
