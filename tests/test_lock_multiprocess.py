"""Four real worker processes, fifty concurrent requests each, one cold key: one load.

Each worker is a spawned Python process running its own FastAPI app (its own event loop,
connection pool and single-flight state) against the suite's own redis-server, and sends
fifty concurrent requests to it through ASGI. The loader counts its runs in Redis with
INCR, so the count covers every process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from .workers import run_workers

WORKERS = 4
REQUESTS = 50
COUNTER = "test-loads:users:7"


def _worker(url: str, barrier: Any, results: Any) -> None:
    asyncio.run(_serve_and_request(url, barrier, results))


async def _serve_and_request(url: str, barrier: Any, results: Any) -> None:
    import httpx
    from fastapi import Depends, FastAPI

    from asgi_cache import Cache, CacheSettings

    # Generous timeouts: a slow connect on a busy machine would make the cache fail open
    # (correctly) and load without the lock, which is not what this test is about.
    settings = CacheSettings(
        url=url, namespace="mp", ttl_jitter=0.0, op_timeout=5.0, connect_timeout=5.0
    )
    cache = Cache(settings)
    counter = aioredis.Redis.from_url(url)

    async def load_user(user_id: int) -> dict[str, Any]:
        await counter.incr(COUNTER)
        await asyncio.sleep(0.3)  # a slow query, so the other workers arrive during it
        return {"id": user_id, "name": "Ada"}

    app = FastAPI(lifespan=cache.lifespan)

    profile = cache.aside(load_user, key="users:{user_id}:profile")

    @app.get("/users/{user_id}")
    async def get_user(user: dict[str, Any] = Depends(profile)) -> dict[str, Any]:  # noqa: B008
        return user

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://w") as client,
    ):
        # Open the pool's connections before the burst, then start all workers together.
        await asyncio.gather(*(cache.get("warm:up") for _ in range(REQUESTS)))
        await asyncio.to_thread(barrier.wait)
        responses = await asyncio.gather(*(client.get("/users/7") for _ in range(REQUESTS)))
        lock_waits = cache.stats()["lock_waits"]
    await counter.aclose()
    results.put(([(r.status_code, r.json()) for r in responses], lock_waits))


@pytest.mark.redis
async def test_four_processes_fifty_requests_each_load_once(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    collected = await run_workers(_worker, [(redis_url,)] * WORKERS)
    responses = [r for batch, _ in collected for r in batch]
    assert len(responses) == WORKERS * REQUESTS
    assert all(r == (200, {"id": 7, "name": "Ada"}) for r in responses)
    assert int(await redis_client.get(COUNTER) or 0) == 1
    # Other workers waited on the first one's lock: the cross-process path was exercised.
    assert sum(waits for _, waits in collected) >= 1
