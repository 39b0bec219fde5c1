"""A small FastAPI app run by worker processes in the multi-process HTTP tests.

Its "database" is a JSON file (``HTTP_TEST_DB``) shared by every process; its cache is
``ASGI_CACHE_URL`` (the suite's Redis). ``/pass/{n}`` is an expensive ``lock=True`` route
whose responses cannot be stored: each call appends this process's pid to the Redis list
``test:calls``, and a request sent with ``x-hold: 1`` blocks on the list ``test:gate``
(``BLPOP``) until the test pushes to it (the header is not part of the key).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response

from asgi_cache import Cache, CacheMiddleware


def create_app() -> FastAPI:
    """Build the app; every call gets its own Cache (as a separate process would)."""
    db = Path(os.environ["HTTP_TEST_DB"])
    cache = Cache.from_env(namespace="mp", ttl_jitter=0.0)
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)

    app.state.cache = cache

    def read() -> dict[str, Any]:
        data: dict[str, Any] = json.loads(db.read_text())
        return data

    def write(data: dict[str, Any]) -> None:
        db.write_text(json.dumps(data))

    @app.get("/health")
    async def health() -> dict[str, int]:
        return {"pid": os.getpid()}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return dict(cache.stats())

    @app.get("/pass/{n}")
    @cache.response(ttl=60, lock=True)
    async def not_storable(n: int, request: Request) -> Response:
        async with aioredis.Redis.from_url(os.environ["ASGI_CACHE_URL"]) as bookkeeping:
            await bookkeeping.rpush("test:calls", os.getpid())
            if request.headers.get("x-hold") == "1":
                await bookkeeping.blpop(["test:gate"], timeout=60)
        return Response(f"pass {n}", headers={"cache-control": "no-store"})

    @app.put("/pass/{n}")
    async def touch_pass(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/users/{user_id}")
    @cache.response(ttl=300, tags=["users:{user_id}"])
    async def get_user(user_id: int) -> dict[str, Any]:
        return {"id": user_id, "name": read()[str(user_id)], "pid": os.getpid()}

    @app.put("/users/{user_id}")
    @cache.invalidates("users:{user_id}")
    async def put_user(user_id: int, name: str) -> dict[str, Any]:
        data = read()
        data[str(user_id)] = name
        write(data)
        return {"id": user_id, "name": name}

    return app
