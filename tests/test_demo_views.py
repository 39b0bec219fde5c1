"""The demo's write-heavy endpoint: page-view counts saved by write-behind, in batches, over
real HTTP (uvicorn) on SQLite, against the same endpoint writing the database per request."""

from __future__ import annotations

from pathlib import Path

import httpx

from asgi_cache import Cache, CacheSettings
from asgi_cache.demo.app import DemoConfig, create_app
from asgi_cache.demo.db import UserStore

from .test_demo_app import serving


async def saved_views(url: str, *user_ids: int) -> list[int]:
    store = UserStore(url, delay=0.0)
    try:
        return [await store.views(u) for u in user_ids]
    finally:
        await store.aclose()


async def test_view_counts_are_saved_in_batches(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'views.db'}"
    config = DemoConfig(database_url=database, db_delay=0.0, users=5)
    app = create_app(config, cache=Cache(CacheSettings(namespace="views")), reset=True)
    async with httpx.AsyncClient(timeout=30) as client:
        with serving(app) as url:
            for n in range(1, 31):
                answer = await client.post(f"{url}/users/1/views")
                assert answer.json() == {"user_id": 1, "views": n}
            for _ in range(10):
                await client.post(f"{url}/users/2/views")
            stats = (await client.get(f"{url}/demo/stats")).json()
            assert stats["cache"]["write_behind"]["demo-views"]["written"] == 40
    # Shutting down drained what was left: every view is in the database, in fewer writes.
    assert await saved_views(database, 1, 2) == [30, 10]
    assert 1 <= app.state.runtime.store.writes < 40  # batches, not one write per view


async def test_without_the_cache_every_view_is_a_database_write(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'views.db'}"
    config = DemoConfig(database_url=database, db_delay=0.0, users=5)
    app = create_app(config, cache=Cache(CacheSettings(namespace="v")), cached=False, reset=True)
    async with httpx.AsyncClient(timeout=30) as client:
        with serving(app) as url:
            for _ in range(12):
                await client.post(f"{url}/users/3/views")
            stats = (await client.get(f"{url}/demo/stats")).json()
    assert stats["db_writes"] == 12
    assert await saved_views(database, 3) == [12]
