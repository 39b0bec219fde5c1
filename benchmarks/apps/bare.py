"""``bare``: FastAPI returning the body, no cache and no database wait (the reference)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..workload import payload
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin."""
    origin = Origin(config, sleep=False)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "ok"

    @app.get("/item/{item_id}")
    async def item(item_id: int) -> Any:
        await origin.read()
        return payload(item_id)

    return app, origin


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
