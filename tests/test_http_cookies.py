"""Browser traffic: cookies that do not count (ignored_cookies) and that key (vary_cookies)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from asgi_cache import Cache, CacheMiddleware, ConfigurationError

from .http_support import client_for

ANALYTICS = "_ga=GA1.2.1234.5678; _ga_ABC=GS1.1.1; _gid=GA1.2.99; consent=yes"


def shop(cache: Cache, calls: Counter[str], **options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache, **options)

    @app.get("/home")
    @cache.response(ttl=60)
    async def home(request: Request) -> dict[str, Any]:
        calls["home"] += 1
        return {"n": calls["home"], "lang": request.cookies.get("lang", "en")}

    @app.get("/promo")
    @cache.response(ttl=60, ignored_cookies=["promo_seen"], vary_cookies=["currency"])
    async def promo(request: Request) -> dict[str, Any]:
        calls["promo"] += 1
        return {"n": calls["promo"], "currency": request.cookies.get("currency", "EUR")}

    return app


async def send(client: Any, path: str, cookie: str | None) -> Any:
    # A raw Cookie header, as a browser sends it (the client keeps no cookie jar here).
    client.cookies.clear()
    headers = {"cookie": cookie} if cookie is not None else {}
    return await client.get(path, headers=headers)


async def test_analytics_cookies_do_not_make_a_request_private(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    app = shop(web_cache, calls, ignored_cookies=["_ga*", "_gid", "consent"])
    async with client_for(app) as client:
        first = await send(client, "/home", ANALYTICS)
        other_visitor = await send(client, "/home", "_ga=GA1.2.777.888; consent=no")
        anonymous = await send(client, "/home", None)
        logged_in = await send(client, "/home", ANALYTICS + "; session=s3cr3t")
    assert first.headers["cache-status"] == "asgi-cache; fwd=miss; stored"
    assert other_visitor.headers["x-cache"] == anonymous.headers["x-cache"] == "HIT"
    # Any other cookie still makes the request private.
    assert logged_in.headers["cache-status"] == "asgi-cache; fwd=bypass; detail=cookie"
    assert calls["home"] == 2


async def test_without_the_option_any_cookie_bypasses(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(shop(web_cache, calls)) as client:
        responses = [await send(client, "/home", ANALYTICS) for _ in range(2)]
    assert {r.headers["cache-status"] for r in responses} == {
        "asgi-cache; fwd=bypass; detail=cookie"
    }


async def test_vary_cookies_key_on_the_cookie_value(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    app = shop(web_cache, calls, ignored_cookies=["_ga*"], vary_cookies=["lang"])
    async with client_for(app) as client:
        fr = await send(client, "/home", "_ga=1; lang=fr")
        en = await send(client, "/home", "lang=en; _ga=2")
        fr_again = await send(client, "/home", "lang=fr; _ga=3")
        none = await send(client, "/home", "_ga=4")
        empty = await send(client, "/home", "lang=")
        none_again = await send(client, "/home", None)
    assert (fr.json()["lang"], en.json()["lang"], fr_again.json()["lang"]) == ("fr", "en", "fr")
    assert fr_again.headers["x-cache"] == "HIT"
    assert en.headers["x-cache"] == none.headers["x-cache"] == empty.headers["x-cache"] == "MISS"
    assert none_again.headers["x-cache"] == "HIT"  # no lang cookie at all: one entry
    assert calls["home"] == 4
    # Caches downstream are told the response depends on the cookie.
    assert "cookie" in fr_again.headers["vary"].lower()


async def test_cookie_options_per_route_add_to_the_middlewares(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    app = shop(web_cache, calls, ignored_cookies=["_ga*"])
    async with client_for(app) as client:
        home = await send(client, "/home", "_ga=1; promo_seen=1")
        promo = [
            await send(client, "/promo", "_ga=1; promo_seen=1; currency=USD"),
            await send(client, "/promo", "_ga=2; currency=USD"),
            await send(client, "/promo", "currency=GBP"),
        ]
    # promo_seen counts on /home (only /promo ignores it).
    assert home.headers["cache-status"] == "asgi-cache; fwd=bypass; detail=cookie"
    assert [r.headers["x-cache"] for r in promo] == ["MISS", "HIT", "MISS"]
    assert [r.json()["currency"] for r in promo] == ["USD", "USD", "GBP"]


@pytest.mark.parametrize(
    "cookie",
    [
        "no-equals-sign",
        ";;;; ; =; =value",
        "_ga=" + "x" * 8000,
        "lang=\u00e9t\u00e9; _ga=1",
        "lang=a=b=c",
        '"quoted"="x"',
    ],
)
async def test_hostile_cookie_headers_never_fail(web_cache: Cache, cookie: str) -> None:
    calls: Counter[str] = Counter()
    app = shop(web_cache, calls, ignored_cookies=["_ga*"], vary_cookies=["lang"])
    async with client_for(app) as client:
        client.cookies.clear()
        response = await client.get("/home", headers={"cookie": cookie.encode("latin-1")})
    assert response.status_code == 200
    assert response.headers["x-cache"] in ("MISS", "BYPASS")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"ignored_cookies": "_ga*"}, "ignored_cookies='_ga*'"),
        ({"ignored_cookies": ["a b"]}, "ignored_cookies entry 'a b'"),
        ({"vary_cookies": ["lang*"]}, "vary_cookies entry 'lang*'"),
        ({"vary_cookies": [""]}, "vary_cookies entry ''"),
        ({"vary_cookies": [1]}, "vary_cookies entry 1"),
    ],
)
def test_bad_cookie_options_are_refused(
    web_cache: Cache, options: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigurationError, match="is not allowed") as raised:
        CacheMiddleware(FastAPI(), cache=web_cache, **options)
    assert needle in str(raised.value)
    with pytest.raises(ConfigurationError, match="is not allowed"):
        web_cache.response(**options)
