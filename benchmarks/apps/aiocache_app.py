"""``aiocache``: its ``@cached`` decorator on a FastAPI route, Redis backend, JSON values."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from ..workload import payload
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    from aiocache import Cache, cached
    from aiocache.serializers import JsonSerializer

    origin = Origin(config)
    url = urlsplit(config.redis_url)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "ok"

    @app.get("/item/{item_id}")
    @cached(
        ttl=config.ttl,
        cache=Cache.REDIS,
        endpoint=url.hostname or "127.0.0.1",
        port=url.port or 6379,
        namespace="aio",
        serializer=JsonSerializer(),
    )
    async def item(item_id: int) -> Any:
        await origin.read()
        return payload(item_id)

    return app, origin


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
