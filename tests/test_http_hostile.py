"""Hostile client input never gives a 5xx or an unbounded log line (seeded random requests)."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from asgi_cache import Cache, CacheMiddleware

from .http_support import client_for

SEGMENTS = [
    "%0A",
    "%00",
    "%0D%0Aset-cookie:%20x=1",
    "x" * 3000,
    "%FF%FE",
    "%E2%80%AE",
    "{user_id}",
    "*",
    "..%2F..",
    "%25",
    "a%3Bb=c",
    "ok",
]
HEADERS = [
    ("cache-control", "max-age=abc"),
    ("cache-control", "max-age=99999999999999999999999"),
    ("cache-control", 'no-cache="a, b", only-if-cached, max-age'),
    ("pragma", "no-cache"),
    ("if-none-match", '"' + "x" * 5000),
    ("if-none-match", "*"),
    ("if-modified-since", "yesterday"),
    ("if-modified-since", "Mon, 99 Foo 99999 99:99:99 GMT"),
    ("accept-encoding", "gzip;q=abc, *;q=-1, br;q=1e999"),
    ("accept-language", "\u00ff" * 100),
    ("cookie", "=; ;;lang=\u00e9; _ga" + "=x" * 500),
    ("cookie", "session=abc"),
    ("range", "bytes=0-1"),
    ("range", "bytes=-0, 99999999999999999999-, 5-1, " + "0-0," * 200),
    ("range", "bytes=0-\u0661, -"),
    ("if-range", 'W/"x"'),
    ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ("cache-control", "max-stale=abc, min-fresh=-1, max-stale"),
    ("accept", "text/html;q=2, */*;q=0.5;level=\u00e9"),
    ("if-match", '"x", W/'),
    ("content-length", "12"),
    ("x-http-method-override", "DELETE"),
    ("x-api-key", "k" * 4000),
    ("host", "evil.example:99999"),
    ("host", "[::1"),
]
QUERIES = ["a=%ZZ&b", "&" * 500, "utm_source=x&q=" + "y" * 3000, "q=%00%0A", "=&=&=", "q=1&q=2"]


def app_for(cache: Cache) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        CacheMiddleware, cache=cache, ignored_cookies=["_ga*"], vary_cookies=["lang"]
    )

    @app.get("/pages/{slug}")
    @cache.response(ttl=60, tags=["page:{slug}"], vary=["accept-language"])
    async def page(slug: str, request: Request) -> dict[str, Any]:
        # (request.url would parse the hostile Host itself: old Starlette raises on "[::1")
        return {"len": len(slug), "q": len(request.scope["query_string"])}

    @app.put("/pages/{slug}")
    @cache.invalidates("page:{slug}", "pages")
    async def put_page(slug: str) -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.mark.parametrize("seed", [1, 2])
async def test_hostile_requests_never_fail_nor_flood_the_log(
    web_cache: Cache, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(seed)
    statuses: list[int] = []
    async with client_for(app_for(web_cache)) as client:
        for _ in range(120):
            client.cookies.clear()
            slug = "".join(rng.choice(SEGMENTS) for _ in range(rng.randint(1, 3)))
            query = rng.choice(QUERIES) if rng.random() < 0.5 else ""
            headers = dict(rng.sample(HEADERS, rng.randint(0, 4)))
            method = rng.choice(["GET", "GET", "HEAD", "PUT"])
            url = f"/pages/{slug}" + (f"?{query}" if query else "")
            raw = {k: v.encode("latin-1", "replace") for k, v in headers.items()}
            response = await client.request(method, url, headers=raw)
            if response.status_code == 504 and "only-if-cached" in headers.get("cache-control", ""):
                continue  # RFC 9111 section 5.2.1.7: the cache's own answer, no failure
            statuses.append(response.status_code)
    assert max(statuses) < 500, statuses
    assert 200 in statuses
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("asgi_cache")]
    assert max(map(len, ours), default=0) < 600, [m[:200] for m in ours]
