"""``asgi-cache-redis-refresh``: ``CacheMiddleware`` on Redis, writes refresh on write.

``@cache.invalidates("users:{user_id}", refresh=True)``: after a PUT invalidates its user,
the middleware fetches that user's GET entry again in the background, so the next reader hits
(``asgi_cache.http.refresh``).
"""

from __future__ import annotations

from typing import Any

from .asgi_cache_app import build_for
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    return build_for(config.redis_url, config, refresh=True)


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
