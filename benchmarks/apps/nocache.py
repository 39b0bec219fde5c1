"""``nocache``: FastAPI whose handlers wait for the (simulated) database every time."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..workload import payload
from .common import AppConfig, Origin


def build(config: AppConfig) -> tuple[Any, Origin]:
    """The app and its origin; ``/users/{id}`` GET and PUT serve the seed workload."""
    origin = Origin(config)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "ok"

    @app.get("/item/{item_id}")
    async def item(item_id: int) -> Any:
        await origin.read()
        return payload(item_id)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int) -> Any:
        await origin.read()
        return payload(user_id)

    @app.put("/users/{user_id}")
    async def put_user(user_id: int) -> Any:
        await origin.write()
        return {"id": user_id, "updated": True}

    return app, origin


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build(AppConfig.from_env())[0]
