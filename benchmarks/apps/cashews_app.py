"""``cashews``: its ``@cache(ttl=...)`` decorator on a FastAPI route, Redis backend.

``build(config, lock=True)`` is the ``cashews-lock`` system: the same with ``lock=True``,
cashews' stampede protection.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..workload import payload
from .common import AppConfig, Origin


def build(config: AppConfig, *, lock: bool = False) -> tuple[Any, Origin]:
    """The app and its origin."""
    from cashews import Cache

    origin = Origin(config)
    cache = Cache()
    cache.setup(config.redis_url)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "ok"

    @app.get("/item/{item_id}")
    @cache(ttl=config.ttl, lock=lock)
    async def item(item_id: int) -> Any:
        await origin.read()
        return payload(item_id)

    return app, origin


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
