"""``asgi-cache-memory``: ``CacheMiddleware`` on the in-process memory backend."""

from __future__ import annotations

from typing import Any

from .asgi_cache_app import build_for
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    return build_for("memory://", config)


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
