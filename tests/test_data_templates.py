"""One tag template, one spelling: pages, cache-aside entries and invalidations agree."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from asgi_cache import Cache, CacheMiddleware, ConfigurationError, fill_tag


def test_fill_tag_spells_a_tag_as_the_cache_does() -> None:
    assert fill_tag("sku:{sku}", sku="AB:1") == "sku:AB:1"
    assert fill_tag("users:{user_id}:orders", user_id=42) == "users:42:orders"
    assert fill_tag("odd:{v}", v="50%\r\n\0") == "odd:50%%0D%0A%00"
    with pytest.raises(ConfigurationError, match="cannot be filled"):
        fill_tag("sku:{sku}", other=1)
    with pytest.raises(ConfigurationError, match="not allowed"):
        fill_tag("sku:{}")


async def test_one_invalidation_reaches_the_page_and_the_aside_entry_of_a_sku() -> None:
    cache = Cache.from_url("memory://", ttl_jitter=0.0)
    origin = {"page": 0, "aside": 0}
    version = {"AB:1": 1}

    async def load_sku(sku: str) -> dict[str, Any]:
        origin["aside"] += 1
        return {"sku": sku, "v": version[sku]}

    dep = cache.aside(load_sku, key="skus:{sku}", tags=["sku:{sku}"])
    app = FastAPI()

    @app.get("/skus/{sku}")
    @cache.response(ttl=60, tags=["sku:{sku}"])
    async def page(sku: str) -> dict[str, Any]:
        origin["page"] += 1
        return {"sku": sku, "v": version[sku]}

    @app.get("/aside/{sku}")
    async def aside(item: dict[str, Any] = Depends(dep)) -> dict[str, Any]:  # noqa: B008
        return item

    app.add_middleware(CacheMiddleware, cache=cache)
    transport = httpx.ASGITransport(app=app)
    async with cache, httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):
            assert (await client.get("/skus/AB:1")).json() == {"sku": "AB:1", "v": 1}
            assert (await client.get("/aside/AB:1")).json() == {"sku": "AB:1", "v": 1}
        assert origin == {"page": 1, "aside": 1}  # both cached

        version["AB:1"] = 2
        assert await cache.invalidate_tags(fill_tag("sku:{sku}", sku="AB:1")) == 1
        assert (await client.get("/skus/AB:1")).json() == {"sku": "AB:1", "v": 2}
        # Was escaped as sku:AB%3A1 by cache.aside: the invalidation missed it.
        assert (await client.get("/aside/AB:1")).json() == {"sku": "AB:1", "v": 2}
        assert origin == {"page": 2, "aside": 2}


async def test_an_invalidating_route_fills_its_template_the_same_way() -> None:
    cache = Cache.from_url("memory://", ttl_jitter=0.0)
    loads = 0

    async def load_sku(sku: str) -> dict[str, int]:
        nonlocal loads
        loads += 1
        return {"n": loads}

    dep = cache.aside(load_sku, key="skus:{sku}", tags=["sku:{sku}"])
    app = FastAPI()

    @app.get("/aside/{sku}")
    async def aside(item: dict[str, int] = Depends(dep)) -> dict[str, int]:  # noqa: B008
        return item

    @app.put("/skus/{sku}")
    @cache.invalidates("sku:{sku}")
    async def update(sku: str) -> dict[str, str]:
        return {"sku": sku}

    app.add_middleware(CacheMiddleware, cache=cache)
    transport = httpx.ASGITransport(app=app)
    async with cache, httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/aside/AB:1")).json() == {"n": 1}
        assert (await client.get("/aside/AB:1")).json() == {"n": 1}
        assert (await client.put("/skus/AB:1")).status_code == 200
        assert (await client.get("/aside/AB:1")).json() == {"n": 2}
