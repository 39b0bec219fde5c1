"""CacheMiddleware through a Starlette app, on memory and on the suite's real Redis."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_cache import Cache

from .http_support import Clock, client_for, wrap


def build_app(cache: Cache, calls: Counter[str], **mw_options: Any) -> Any:
    """A small app whose handlers count their calls and echo what they saw."""

    @cache.response(ttl=60)
    async def item(request: Request) -> Response:
        calls["item"] += 1
        return JSONResponse({"id": request.path_params["item_id"], "n": calls["item"]})

    async def uncached(request: Request) -> Response:
        calls["uncached"] += 1
        return PlainTextResponse(f"u{calls['uncached']}")

    @cache.response(ttl=60)
    async def header(request: Request) -> Response:
        calls["header"] += 1
        raw = request.query_params.get("h", "")
        name, _, value = raw.partition(":")
        headers = {name: value} if name else {}
        return PlainTextResponse(f"h{calls['header']}", headers=headers)

    @cache.response(ttl=60)
    async def query(request: Request) -> Response:
        calls["query"] += 1
        return PlainTextResponse(f"{sorted(request.query_params.multi_items())}|{calls['query']}")

    @cache.response(ttl=60, statuses=[200, 404])
    async def missing(request: Request) -> Response:
        calls["missing"] += 1
        return PlainTextResponse(f"gone{calls['missing']}", status_code=404)

    @cache.response(ttl=60)
    async def error(request: Request) -> Response:
        calls["error"] += 1
        return PlainTextResponse("oops", status_code=500)

    routes = [
        Route("/items/{item_id:int}", item),
        Route("/uncached", uncached),
        Route("/static/style.css", uncached),
        Route("/header", header),
        Route("/query", query),
        Route("/missing", missing),
        Route("/error", error),
    ]
    return wrap(Starlette(routes=routes), cache, **mw_options)


async def test_miss_then_hit_with_status_headers(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        first = await client.get("/items/1")
        second = await client.get("/items/1")
        other = await client.get("/items/2")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"id": 1, "n": 1}
    assert other.json() == {"id": 2, "n": 2}
    assert calls["item"] == 2
    assert first.headers["cache-status"] == "asgi-cache; fwd=miss; stored"
    assert first.headers["x-cache"] == "MISS"
    assert "age" not in first.headers
    assert second.headers["cache-status"].startswith("asgi-cache; hit; ttl=")
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["age"] == "0"
    assert second.headers["content-type"] == "application/json"
    assert second.headers["content-length"] == str(len(second.content))
    assert second.headers["etag"] == first.headers["etag"]
    assert web_cache.stats()["hits"] == 1


async def test_route_without_policy_is_untouched(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        a = await client.get("/uncached")
        b = await client.get("/uncached")
        # Cache deception: a static-looking path is not cached unless its route opts in.
        c = await client.get("/static/style.css")
        d = await client.get("/static/style.css")
        nf = await client.get("/nowhere.css")
    assert (a.text, b.text, c.text, d.text) == ("u1", "u2", "u3", "u4")
    assert "cache-status" not in a.headers
    assert "x-cache" not in d.headers
    assert nf.status_code == 404
    assert "cache-status" not in nf.headers


async def test_age_grows_and_entry_expires(web_cache: Cache, clock: Clock) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        await client.get("/items/1")
        clock.advance(30)
        hit = await client.get("/items/1")
        clock.advance(31)
        miss = await client.get("/items/1")
    assert hit.headers["age"] == "30"
    # 30.0x of 60 s gone: 29.9x left, advertised rounded down (never more than is left).
    assert hit.headers["cache-status"] == "asgi-cache; hit; ttl=29"
    assert miss.headers["x-cache"] == "MISS"
    assert miss.headers["cache-status"].startswith("asgi-cache; fwd=stale")
    assert calls["item"] == 2


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("cache-control:no-store", "no-store"),
        ("cache-control:private", "private"),
        ("cache-control:private, max-age=60", "private"),
        ("set-cookie:session=abc", "set-cookie"),
        ("vary:*", "vary-star"),
        ("content-type:text/event-stream", "event-stream"),
    ],
)
async def test_responses_never_stored(web_cache: Cache, header: str, reason: str) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        first = await client.get("/header", params={"h": header})
        client.cookies.clear()  # a Cookie would make the request private: test the response rule
        second = await client.get("/header", params={"h": header})
    assert (first.text, second.text) == ("h1", "h2")
    assert second.headers["cache-status"] == f"asgi-cache; fwd=miss; detail={reason}"
    assert second.headers["x-cache"] == "MISS"


async def test_status_outside_the_set_is_not_stored(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        await client.get("/error")
        e2 = await client.get("/error")
        m1 = await client.get("/missing")
        m2 = await client.get("/missing")
    assert calls["error"] == 2
    assert e2.headers["cache-status"] == "asgi-cache; fwd=miss; detail=status"
    # The route's policy allows 404: stored and served.
    assert (m1.status_code, m2.status_code, m2.text) == (404, 404, "gone1")
    assert m2.headers["x-cache"] == "HIT"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"content-length": "3"}, "request-body"),
        ({"x-http-method-override": "DELETE"}, "method-override"),
        ({"if-match": '"x"'}, "precondition"),  # RFC 9111 4.3.2: for the origin alone
    ],
)
async def test_requests_that_bypass(web_cache: Cache, headers: dict[str, str], reason: str) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        await client.get("/items/1")
        if "content-length" in headers:
            bypass = await client.request("GET", "/items/1", content=b"abc")
        else:
            bypass = await client.get("/items/1", headers=headers)
        after = await client.get("/items/1")
    assert bypass.json()["n"] == 2
    assert bypass.headers["cache-status"] == f"asgi-cache; fwd=bypass; detail={reason}"
    assert bypass.headers["x-cache"] == "BYPASS"
    assert after.json()["n"] == 1  # the bypass did not replace the entry


async def test_request_directives_honoured(web_cache: Cache, clock: Clock) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        await client.get("/items/1")
        no_cache = await client.get("/items/1", headers={"cache-control": "no-cache"})
        pragma = await client.get("/items/1", headers={"pragma": "no-cache"})
        max_age0 = await client.get("/items/1", headers={"cache-control": "max-age=0"})
        clock.advance(10)
        too_old = await client.get("/items/1", headers={"cache-control": "max-age=5"})
        young_enough = await client.get("/items/1", headers={"cache-control": "max-age=50"})
        no_store = await client.get("/items/3", headers={"cache-control": "no-store"})
        after_no_store = await client.get("/items/3")
        only = await client.get("/items/4", headers={"cache-control": "only-if-cached"})
    assert no_cache.json()["n"] == 2
    assert no_cache.headers["cache-status"] == "asgi-cache; fwd=request; stored"
    assert pragma.json()["n"] == 3
    assert max_age0.json()["n"] == 4
    assert too_old.json()["n"] == 5
    assert young_enough.json()["n"] == 5
    assert young_enough.headers["x-cache"] == "HIT"
    assert no_store.headers["cache-status"] == "asgi-cache; fwd=miss; detail=no-store"
    assert after_no_store.headers["x-cache"] == "MISS"
    assert only.status_code == 504
    assert calls["item"] == 7


async def test_request_directives_ignored_to_protect_origin(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    app = build_app(web_cache, calls, honor_request_cache_control=False)
    async with client_for(app) as client:
        await client.get("/items/1")
        forced = await client.get("/items/1", headers={"cache-control": "no-cache"})
    assert forced.headers["x-cache"] == "HIT"
    assert calls["item"] == 1


async def test_query_is_normalized_and_tracking_params_ignored(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        a = await client.get("/query?b=2&a=1")
        b = await client.get("/query?a=1&b=2&utm_source=news&fbclid=x")
        c = await client.get("/query?a=1&b=3")
        d = await client.get("/query?a=1&a=2")
        e = await client.get("/query?a=2&a=1")
    assert a.text == b.text
    assert b.headers["x-cache"] == "HIT"
    assert c.headers["x-cache"] == "MISS"
    assert d.text != e.text
    assert e.headers["x-cache"] == "MISS"


async def test_delimiter_collisions_get_distinct_entries(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        plain = await client.get("/query?a=1&b=2")
        smuggled = await client.get("/query?a=1%26b%3D2")
        empty_name = await client.get("/query?=a&1=")
        joined = await client.get("/query?a=1b=2")
    texts = {plain.text, smuggled.text, empty_name.text, joined.text}
    assert len(texts) == 4
    assert calls["query"] == 4
    assert all(r.headers["x-cache"] == "MISS" for r in (smuggled, empty_name, joined))


async def test_host_is_keyed_and_allowed_hosts_enforced(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    app = build_app(web_cache, calls, allowed_hosts=["example.com", "*.example.org"])
    async with client_for(app) as client:
        a = await client.get("/items/1", headers={"host": "example.com"})
        b = await client.get("/items/1", headers={"host": "api.example.org"})
        c = await client.get("/items/1", headers={"host": "example.com"})
        evil = await client.get("/items/1", headers={"host": "evil.test"})
    assert (a.json()["n"], b.json()["n"], c.json()["n"]) == (1, 2, 1)
    assert evil.headers["cache-status"] == "asgi-cache; fwd=bypass; detail=host"
    assert evil.json()["n"] == 3


async def test_head_is_answered_from_the_get_entry(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(build_app(web_cache, calls)) as client:
        head_miss = await client.head("/items/1")
        get = await client.get("/items/1")
        head_hit = await client.head("/items/1")
    # The HEAD miss went to the app as a GET and stored its response (as Varnish does).
    assert head_miss.headers["cache-status"] == "asgi-cache; fwd=miss; stored"
    assert head_miss.content == b""
    assert calls["item"] == 1
    assert get.headers["x-cache"] == "HIT"
    assert get.json()["n"] == 1
    assert head_miss.headers["content-length"] == get.headers["content-length"]
    assert head_hit.headers["x-cache"] == "HIT"
    assert head_hit.content == b""
    for name in ("content-length", "content-type", "etag"):
        assert head_hit.headers[name] == get.headers[name]
    assert calls["item"] == 1
