"""``asgi-cache-redis-l1``: ``CacheMiddleware`` on Redis with the opt-in L1 near-cache.

``l1_ttl=2``: hot entries are answered from process memory for up to 2 s after a Redis read
(invalidated at once in this process and by pub/sub in others; docs/near-cache.md).
"""

from __future__ import annotations

from typing import Any

from .asgi_cache_app import build_for
from .common import AppConfig, Origin

L1_TTL = 2.0


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    return build_for(config.redis_url, config, l1_ttl=L1_TTL)


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
