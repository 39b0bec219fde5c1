"""``litestar``: Litestar's built-in response cache (``cache=ttl`` on the route), RedisStore."""

from __future__ import annotations

from typing import Any

from ..workload import payload
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    from litestar import Litestar, get
    from litestar.config.response_cache import ResponseCacheConfig
    from litestar.stores.redis import RedisStore

    origin = Origin(config)
    store = RedisStore.with_client(url=config.redis_url, namespace="litestar")

    @get("/ping", sync_to_thread=False)
    def ping() -> str:
        return "ok"

    @get("/item/{item_id:int}", cache=config.ttl)
    async def item(item_id: int) -> dict[str, object]:
        await origin.read()
        return payload(item_id)

    app = Litestar(
        route_handlers=[ping, item],
        stores={"response_cache": store},
        response_cache_config=ResponseCacheConfig(default_expiration=config.ttl),
        on_shutdown=[store._redis.aclose],
        debug=False,
    )
    return app, origin


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
