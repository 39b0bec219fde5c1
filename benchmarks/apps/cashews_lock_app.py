"""``cashews-lock``: cashews' ``@cache(..., lock=True)`` (its stampede protection)."""

from __future__ import annotations

from typing import Any

from . import cashews_app
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    return cashews_app.build(config, lock=True)


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
