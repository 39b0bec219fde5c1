"""Invalidation through the middleware: unsafe requests, @cache.invalidates, Cache-Tag, URLs."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_cache import Cache, CacheMiddleware, ConfigurationError
from asgi_cache.backends import RedisBackend

from .http_support import client_for, command_calls, make_cache, wrap
from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer


class Store:
    """The "database" behind the app."""

    def __init__(self) -> None:
        self.users: dict[int, str] = {1: "ann", 2: "bob"}
        self.calls: Counter[str] = Counter()
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()


def user_app(cache: Cache, db: Store, **options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache, **options)

    @app.get("/users")
    @cache.response(ttl=60, tags=["users:list"])
    async def list_users() -> dict[str, Any]:
        db.calls["list"] += 1
        return {"users": sorted(db.users.values())}

    @app.get("/users/{user_id}")
    @cache.response(ttl=60, tags=["users:{user_id}"])
    async def get_user(user_id: int) -> dict[str, Any]:
        db.calls[f"get{user_id}"] += 1
        name = db.users[user_id]  # read the database first...
        db.entered.set()
        if db.gate is not None:
            await db.gate.wait()  # ...then let the test interleave a write
        return {"id": user_id, "name": name}

    @app.put("/users/{user_id}")
    @cache.invalidates("users:{user_id}", "users:list")
    async def put_user(user_id: int, name: str, fail: int = 0) -> dict[str, Any]:
        if fail == 404:
            raise HTTPException(404)
        if fail == 500:
            return JSONResponse({"error": "db"}, status_code=500)  # type: ignore[return-value]
        if fail == 1:
            raise RuntimeError("crash")
        db.users[user_id] = name
        return {"id": user_id, "name": name}

    @app.post("/users")
    async def create_user(name: str, where: str = "") -> Response:
        new_id = max(db.users) + 1
        db.users[new_id] = name
        return PlainTextResponse("created", status_code=201, headers={"location": where})

    @app.post("/audit")
    async def audit() -> dict[str, bool]:
        return {"ok": True}

    return app


async def test_put_invalidates_tags_and_uri_before_the_response(web_cache: Cache) -> None:
    db = Store()
    async with client_for(user_app(web_cache, db)) as client:
        await client.get("/users/1")
        await client.get("/users/2")
        await client.get("/users")
        put = await client.put("/users/1", params={"name": "ann2"})
        one = await client.get("/users/1")
        two = await client.get("/users/2")
        listing = await client.get("/users")
    assert put.status_code == 200
    assert one.json() == {"id": 1, "name": "ann2"}
    assert one.headers["x-cache"] == "MISS"
    assert two.headers["x-cache"] == "HIT"
    assert listing.json() == {"users": ["ann2", "bob"]}
    assert listing.headers["x-cache"] == "MISS"


@pytest.mark.parametrize("fail", [404, 500, 1])
async def test_failed_mutation_invalidates_nothing(web_cache: Cache, fail: int) -> None:
    db = Store()
    async with client_for(user_app(web_cache, db)) as client:
        await client.get("/users/1")
        if fail == 1:
            with pytest.raises(RuntimeError):
                await client.put("/users/1", params={"name": "x", "fail": fail})
        else:
            r = await client.put("/users/1", params={"name": "x", "fail": fail})
            assert r.status_code == fail
        after = await client.get("/users/1")
    assert after.headers["x-cache"] == "HIT"
    assert web_cache.stats()["invalidations"] == 0


async def test_invalidation_lands_before_the_response_start(web_cache: Cache) -> None:
    db = Store()
    app = user_app(web_cache, db)
    async with client_for(app) as client:
        await client.get("/users/1")
        seen: list[str] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # The client now has the status: a GET it sends next must not be served old.
                check = await client.get("/users/1")
                seen.append(check.headers["x-cache"])

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "PUT",
            "scheme": "http",
            "path": "/users/1",
            "raw_path": b"/users/1",
            "root_path": "",
            "query_string": b"name=ann3",
            "headers": [(b"host", b"testserver")],
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 1),
        }
        await app(scope, receive, send)
    assert seen == ["MISS"]


async def test_target_uri_invalidation_covers_every_variant(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60)
    async def page(request: Request) -> Response:
        calls["get"] += 1
        lang = request.headers.get("accept-language", "-")
        return PlainTextResponse(f"{lang}{calls['get']}", headers={"vary": "accept-language"})

    async def post(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route("/page", page, methods=["GET"]), Route("/page", post, methods=["POST"])]
    app = wrap(Starlette(routes=routes), web_cache)
    variants = [{"accept-language": "en"}, {"accept-language": "fr"}, {}]
    async with client_for(app) as client:
        for headers in variants:
            await client.get("/page", headers=headers)
            await client.get("/page?q=1", headers=headers)
        before = [(await client.get("/page", headers=h)).headers["x-cache"] for h in variants]
        await client.post("/page?whatever=1")
        after = [(await client.get("/page", headers=h)).headers["x-cache"] for h in variants]
        query = await client.get("/page?q=1", headers=variants[0])
    assert before == ["HIT", "HIT", "HIT"]
    assert after == ["MISS", "MISS", "MISS"]
    assert query.headers["x-cache"] == "MISS"


@pytest.mark.parametrize(
    ("location", "invalidated"),
    [
        ("/users/3", True),
        ("http://testserver/users/3", True),
        ("3", False),  # relative to /users: /3, not a cached path
        ("http://elsewhere.example/users/3", False),
        ("", False),
    ],
)
async def test_same_origin_location_is_invalidated(
    web_cache: Cache, location: str, invalidated: bool
) -> None:
    db = Store()
    db.users[3] = "old"
    async with client_for(user_app(web_cache, db)) as client:
        await client.get("/users/3")
        del db.users[3]
        created = await client.post("/users", params={"name": "cat", "where": location})
        after = await client.get("/users/3")
    assert created.status_code == 201
    assert after.headers["x-cache"] == ("MISS" if invalidated else "HIT")


async def test_invalidate_url(web_cache: Cache) -> None:
    db = Store()
    async with client_for(user_app(web_cache, db)) as client:
        await client.get("/users/1")
        await client.get("/users/2")
        await web_cache.invalidate_url("/users/1?ignored=1")
        await web_cache.invalidate_url("https://any.host/users/%32")
        one, two = await client.get("/users/1"), await client.get("/users/2")
    assert one.headers["x-cache"] == "MISS"
    assert two.headers["x-cache"] == "MISS"


async def test_response_racing_an_invalidation_is_not_served(web_cache: Cache) -> None:
    db = Store()
    db.gate = asyncio.Event()
    async with client_for(user_app(web_cache, db)) as client:
        loading = asyncio.ensure_future(client.get("/users/1"))
        await db.entered.wait()  # the GET read "ann" from the database and is paused
        await client.put("/users/1", params={"name": "ann2"})  # write + invalidate, done
        db.gate.set()  # only now does the GET's (old) response reach the cache
        db.gate = None
        old = await loading
        fresh = await client.get("/users/1")
    assert old.json()["name"] == "ann"
    assert old.headers["cache-status"] == "asgi-cache; fwd=miss; detail=not-stored"
    assert fresh.json()["name"] == "ann2"
    assert fresh.headers["x-cache"] == "MISS"


async def test_cache_tag_header_tags_at_run_time(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    gate: list[asyncio.Event] = []
    entered = asyncio.Event()

    @web_cache.response(ttl=60)
    async def product(request: Request) -> Response:
        calls["n"] += 1
        entered.set()
        if gate:
            await gate[0].wait()
        return PlainTextResponse(f"p{calls['n']}", headers={"cache-tag": "products:9, featured"})

    app = wrap(Starlette(routes=[Route("/p", product)]), web_cache)
    async with client_for(app) as client:
        first = await client.get("/p")
        hit = await client.get("/p")
        await web_cache.invalidate_tags("featured")
        after = await client.get("/p")
        # Race: the tag is remembered for the URL, so the next miss reads its version before
        # calling the app, and an invalidation while the app runs wins.
        await web_cache.invalidate_tags("products:9")
        gate.append(asyncio.Event())
        entered.clear()
        racing = asyncio.ensure_future(client.get("/p"))
        await entered.wait()
        await web_cache.invalidate_tags("products:9")
        gate[0].set()
        raced = await racing
        gate.clear()
        final = await client.get("/p")
    assert "cache-tag" not in first.headers
    assert "cache-tag" not in hit.headers
    assert hit.headers["x-cache"] == "HIT"
    assert after.headers["x-cache"] == "MISS"
    assert final.headers["x-cache"] == "MISS"
    assert raced.headers["cache-status"] == "asgi-cache; fwd=miss; detail=not-stored"
    assert final.text == "p4"  # the racing response (p3) was never served


async def test_cache_tag_can_be_exposed(web_cache: Cache) -> None:
    @web_cache.response(ttl=60)
    async def tagged(request: Request) -> Response:
        return PlainTextResponse("t", headers={"cache-tag": "a b"})

    app = wrap(Starlette(routes=[Route("/t", tagged)]), web_cache, expose_cache_tags=True)
    async with client_for(app) as client:
        first, hit = await client.get("/t"), await client.get("/t")
    assert first.headers["cache-tag"] == hit.headers["cache-tag"] == "a b"


async def test_put_in_one_process_is_seen_by_another(redis_url: str) -> None:
    db = Store()
    caches = [
        make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)) for _ in range(2)
    ]
    apps = [user_app(c, db) for c in caches]
    async with client_for(apps[0]) as one, client_for(apps[1]) as two:
        await two.get("/users/1")
        warm = await two.get("/users/1")
        await one.put("/users/1", params={"name": "ann9"})
        after = await two.get("/users/1")
    for c in caches:
        await c.backend.aclose()
    assert warm.headers["x-cache"] == "HIT"
    assert after.headers["x-cache"] == "MISS"
    assert after.json()["name"] == "ann9"


async def test_mutating_an_uncached_resource_costs_no_command(
    redis_server: RedisServer, redis_url: str
) -> None:
    cache = make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT))
    db = Store()
    async with client_for(user_app(cache, db)) as client:
        await client.get("/users/1")
        redis_server.command("CONFIG", "RESETSTAT")
        for _ in range(5):
            assert (await client.post("/audit")).status_code == 200
        idle = command_calls(redis_server)
        await client.put("/users/1", params={"name": "z"})
        put_cost = command_calls(redis_server)
    await cache.backend.aclose()
    assert idle == {}
    # users:1, users:list and the URI's tag: one pipelined UNLINK each.
    assert put_cost == {"unlink": 3}


def test_invalidates_validates_templates() -> None:
    cache = Cache()
    with pytest.raises(ConfigurationError, match="invalidates"):
        cache.invalidates("users:{")

    async def endpoint() -> None:
        return None

    assert cache.invalidates("users:{user_id}")(endpoint) is endpoint


def slug_app(cache: Cache, writes: Counter[str]) -> FastAPI:
    """Pages by slug (any string from the client), written by PUT."""
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)

    @app.get("/pages")
    @cache.response(ttl=60, tags=["pages"])
    async def pages() -> dict[str, int]:
        writes["list"] += 1
        return {"n": writes["list"]}

    @app.get("/pages/{slug}")
    @cache.response(ttl=60, tags=["page:{slug}"])
    async def page(slug: str) -> dict[str, int]:
        writes["read"] += 1
        return {"len": len(slug)}

    @app.put("/pages/{slug}")
    @cache.invalidates("page:{slug}", "pages")
    async def put_page(slug: str) -> dict[str, bool]:
        writes["put"] += 1  # committed before the response starts
        return {"ok": True}

    return app


BAD_SLUGS = ["a%0Ab", "nul%00", "x" * 1100]


async def test_a_path_value_that_makes_a_bad_tag_never_fails_a_committed_write(
    web_cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    writes: Counter[str] = Counter()
    async with client_for(slug_app(web_cache, writes)) as client:
        await client.get("/pages")
        puts = [await client.put(f"/pages/{slug}") for slug in BAD_SLUGS]
        listing = await client.get("/pages")
        gets = [await client.get(f"/pages/{slug}") for slug in BAD_SLUGS]
    assert [p.status_code for p in puts] == [200, 200, 200]
    assert writes["put"] == 3
    # The other tag was invalidated all the same.
    assert listing.headers["x-cache"] == "MISS"
    # CR, LF and NUL are escaped by the one tag fill (a valid tag); a value too long for a
    # tag is answered, uncached.
    assert [g.status_code for g in gets] == [200, 200, 200]
    assert [g.headers["cache-status"] for g in gets] == [
        "asgi-cache; fwd=miss; stored",
        "asgi-cache; fwd=miss; stored",
        "asgi-cache; fwd=bypass; detail=tag-value",
    ]
    logged = [r.getMessage() for r in caplog.records if "tag" in r.getMessage()]
    # Rate-limited: one line per kind and interval, and never the whole client value.
    assert len(logged) == 1
    assert max(len(line) for line in logged) < 400
    assert "x" * 100 not in logged[0]


async def test_a_template_naming_a_missing_parameter_is_logged_once(
    web_cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    writes: Counter[str] = Counter()
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=web_cache)

    @app.get("/items/{item_id}")
    @web_cache.response(ttl=60, tags=["item:{itemid}"])
    async def item(item_id: int) -> dict[str, int]:
        writes["read"] += 1
        return {"id": item_id}

    @app.get("/items")
    @web_cache.response(ttl=60, tags=["items"])
    async def items(category: str = "") -> dict[str, int]:
        writes["list"] += 1
        return {"n": writes["list"]}

    @app.put("/items/{item_id}")
    @web_cache.invalidates("items", "item:{id}", "category:{category}")
    async def put_item(item_id: int, category: str = "") -> dict[str, bool]:
        return {"ok": True}

    async with client_for(app) as client:
        reads = [await client.get("/items/1") for _ in range(3)]
        await client.get("/items")
        puts = [await client.put("/items/1", params={"category": "x"}) for _ in range(3)]
        listing = await client.get("/items")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert {r.headers["cache-status"] for r in reads} == {
        "asgi-cache; fwd=bypass; detail=tag-template"
    }
    assert writes["read"] == 3
    assert [p.status_code for p in puts] == [200, 200, 200]
    assert listing.headers["x-cache"] == "MISS"  # the good template still invalidates
    assert len(errors) == 2  # once per route, not once per request
    assert "'item:{itemid}' needs itemid" in errors[0]
    assert "only path parameters fill templates" in errors[1]
    assert "'category:{category}' needs category" in errors[1]
