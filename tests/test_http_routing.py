"""Route resolution through every router shape FastAPI and Starlette build (issue 11, item 1).

The middleware must find the route the router will really dispatch to: included routers (with
prefixes, nested, with dependencies), mounts, hosts, sub-apps, Starlette routes mixed in, route
classes subclassing ``APIRoute``; the first full match wins and a partial match (405) is not a
match. These run on the newest FastAPI and on the lower bound (``scripts/test-lower-bounds``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_cache import Cache, CacheMiddleware
from asgi_cache.backends import RedisBackend

from .http_support import client_for, command_calls, make_cache, wrap
from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer


def counted_router(
    cache: Cache, calls: Counter[str], *, prefix: str = "", **options: Any
) -> APIRouter:
    """A router with a cached GET, an invalidating PUT and an uncached GET."""
    router = APIRouter(prefix=prefix, **options)

    @router.get("/items/{item_id}")
    @cache.response(ttl=60, tags=["items:{item_id}"])
    async def get_item(item_id: int) -> dict[str, Any]:
        calls[f"item{item_id}"] += 1
        return {"id": item_id, "calls": calls[f"item{item_id}"]}

    @router.put("/items/{item_id}")
    @cache.invalidates("items:{item_id}")
    async def put_item(item_id: int) -> dict[str, int]:
        calls["put"] += 1
        return {"id": item_id}

    @router.get("/plain")
    async def plain() -> dict[str, int]:
        calls["plain"] += 1
        return {"calls": calls["plain"]}

    return router


def cached_app(cache: Cache) -> FastAPI:
    """A FastAPI app behind a :class:`CacheMiddleware` on ``cache``."""
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)
    return app


async def _get_twice(app: Any, path: str) -> tuple[Any, Any]:
    async with client_for(app) as client:
        first = await client.get(path)
        second = await client.get(path)
    return first, second


async def test_included_router_routes_are_cached(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    app = cached_app(web_cache)
    app.include_router(counted_router(web_cache, calls, prefix="/shop"))
    async with client_for(app) as client:
        a = await client.get("/shop/items/1")
        b = await client.get("/shop/items/1")
        plain = await client.get("/shop/plain")
    assert a.json() == b.json() == {"id": 1, "calls": 1}
    assert a.headers["x-cache"] == "MISS"
    assert b.headers["x-cache"] == "HIT"
    assert calls["item1"] == 1
    assert "cache-status" not in plain.headers


async def test_invalidates_on_a_router_route_fires(web_cache: Cache) -> None:
    # The GET is on the app, the PUT on an admin router: the PUT must invalidate the tag.
    calls: Counter[str] = Counter()
    app = cached_app(web_cache)

    @app.get("/users/{user_id}")
    @web_cache.response(ttl=60, tags=["users:{user_id}"])
    async def get_user(user_id: int) -> dict[str, int]:
        calls["get"] += 1
        return {"id": user_id, "calls": calls["get"]}

    admin = APIRouter(prefix="/admin")

    @admin.put("/users/{user_id}")
    @web_cache.invalidates("users:{user_id}")
    async def update_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    app.include_router(admin)
    async with client_for(app) as client:
        await client.get("/users/7")
        cached = await client.get("/users/7")
        put = await client.put("/admin/users/7")
        fresh = await client.get("/users/7")
    assert cached.headers["x-cache"] == "HIT"
    assert put.status_code == 200
    assert fresh.headers["x-cache"] == "MISS"
    assert fresh.json() == {"id": 7, "calls": 2}


async def test_nested_routers_with_prefixes_and_dependencies(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    async def tenant() -> str:
        calls["dependency"] += 1
        return "t"

    inner = counted_router(web_cache, calls, prefix="/c", dependencies=[Depends(tenant)])
    middle = APIRouter(prefix="/b")
    middle.include_router(inner, prefix="/x")
    outer = APIRouter(prefix="/a")
    outer.include_router(middle, dependencies=[Depends(tenant)])
    app = cached_app(web_cache)
    app.include_router(outer, prefix="/v1")
    async with client_for(app) as client:
        a = await client.get("/v1/a/b/x/c/items/3")
        b = await client.get("/v1/a/b/x/c/items/3")
        put = await client.put("/v1/a/b/x/c/items/3")
        c = await client.get("/v1/a/b/x/c/items/3")
    assert a.status_code == 200
    assert b.headers["x-cache"] == "HIT"
    assert put.status_code == 200
    assert c.headers["x-cache"] == "MISS"
    assert calls["item3"] == 2


async def test_the_same_router_included_twice(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    router = counted_router(web_cache, calls)
    app = cached_app(web_cache)
    app.include_router(router, prefix="/one")
    app.include_router(router, prefix="/two")
    async with client_for(app) as client:
        one = [await client.get("/one/items/1") for _ in range(2)]
        two = [await client.get("/two/items/1") for _ in range(2)]
    assert [r.headers["x-cache"] for r in one + two] == ["MISS", "HIT", "MISS", "HIT"]
    assert calls["item1"] == 2


async def test_mounted_fastapi_app_with_included_router(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    sub = FastAPI()
    sub.include_router(counted_router(web_cache, calls, prefix="/r"))
    app = cached_app(web_cache)
    app.mount("/sub", sub)
    a, b = await _get_twice(app, "/sub/r/items/5")
    assert a.json() == {"id": 5, "calls": 1}
    assert b.headers["x-cache"] == "HIT"


@pytest.mark.skipif(
    not hasattr(fastapi.routing, "_IncludedRouter"),
    reason="FastAPI before 0.137 drops mounts from included routers",
)
async def test_mount_inside_an_included_router(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60)
    async def leaf(request: Request) -> Response:
        calls["leaf"] += 1
        return PlainTextResponse(f"leaf {calls['leaf']}")

    router = APIRouter()
    router.routes.append(Mount("/static", routes=[Route("/leaf", leaf)]))
    app = cached_app(web_cache)
    app.include_router(router, prefix="/r")
    a, b = await _get_twice(app, "/r/static/leaf")
    assert a.text == "leaf 1"
    assert b.headers["x-cache"] == "HIT"


async def test_host_mount_and_router_sub_apps(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    def endpoint(name: str) -> Callable[[Request], Any]:
        @web_cache.response(ttl=60)
        async def handler(request: Request) -> Response:
            calls[name] += 1
            return PlainTextResponse(f"{name} {calls[name]}")

        return handler

    fastapi_sub = FastAPI()
    fastapi_sub.include_router(counted_router(web_cache, calls, prefix="/r"))
    app = wrap(
        Starlette(
            routes=[
                Host(
                    "api.example.com",
                    app=Router(
                        routes=[
                            Mount("/fa", app=fastapi_sub),
                            Mount("/st", app=Starlette(routes=[Route("/x", endpoint("st"))])),
                            Mount("/rt", app=Router(routes=[Route("/x", endpoint("rt"))])),
                        ]
                    ),
                ),
            ]
        ),
        web_cache,
    )
    headers = {"host": "api.example.com"}
    async with client_for(app) as client:
        results = {}
        for path in ("/fa/r/items/1", "/st/x", "/rt/x"):
            await client.get(path, headers=headers)
            results[path] = await client.get(path, headers=headers)
        other_host = await client.get("/st/x", headers={"host": "www.example.com"})
    assert {p: r.headers["x-cache"] for p, r in results.items()} == dict.fromkeys(results, "HIT")
    assert calls["item1"] == calls["st"] == calls["rt"] == 1
    assert other_host.status_code == 404
    assert "cache-status" not in other_host.headers


async def test_starlette_routes_mixed_into_an_api_router(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60)
    async def starlette_page(request: Request) -> Response:
        calls["page"] += 1
        return PlainTextResponse(f"page {calls['page']}")

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    # Starlette routes get the include prefix (not the router's own): no router prefix here.
    router = counted_router(web_cache, calls)
    router.add_route("/page", starlette_page, methods=["GET"])
    router.add_websocket_route("/ws", socket)
    router.routes.append(WebSocketRoute("/ws2", socket))
    app = cached_app(web_cache)
    app.include_router(router, prefix="/mix")
    async with client_for(app) as client:
        pages = [await client.get("/mix/page") for _ in range(2)]
        items = [await client.get("/mix/items/2") for _ in range(2)]
        ws_as_http = await client.get("/mix/ws")
    assert [r.headers["x-cache"] for r in pages + items] == ["MISS", "HIT", "MISS", "HIT"]
    assert calls["page"] == calls["item2"] == 1
    assert "cache-status" not in ws_as_http.headers


async def test_route_class_subclassing_api_route(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    class TimedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()

            async def timed(request: Request) -> Response:
                calls["timed"] += 1
                response: Response = await handler(request)
                return response

            return timed

    router = counted_router(web_cache, calls, prefix="/t", route_class=TimedRoute)
    app = cached_app(web_cache)
    app.include_router(router)
    a, b = await _get_twice(app, "/t/items/4")
    assert a.json() == {"id": 4, "calls": 1}
    assert b.headers["x-cache"] == "HIT"
    assert calls["item4"] == calls["timed"] == 1


async def test_a_route_that_matches_on_a_header_is_resolved_per_request(
    web_cache: Cache,
) -> None:
    # A custom matches() may look at more than the path: its resolution is never remembered.
    calls: Counter[str] = Counter()

    class BetaRoute(APIRoute):
        def matches(self, scope: Any) -> Any:
            match, child = super().matches(scope)
            beta = (b"x-beta", b"1") in scope.get("headers", [])
            return (match, child) if beta else (type(match).NONE, {})

    app = cached_app(web_cache)
    beta = APIRouter(route_class=BetaRoute)

    @beta.get("/feature")
    async def beta_feature() -> dict[str, str]:
        calls["beta"] += 1
        return {"v": "beta"}

    app.include_router(beta)

    @app.get("/feature")
    @web_cache.response(ttl=60)
    async def stable_feature() -> dict[str, str]:
        calls["stable"] += 1
        return {"v": "stable"}

    async with client_for(app) as client:
        b1 = await client.get("/feature", headers={"x-beta": "1"})
        s1 = await client.get("/feature")
        b2 = await client.get("/feature", headers={"x-beta": "1"})
        s2 = await client.get("/feature")
    assert b1.json() == b2.json() == {"v": "beta"}
    assert "cache-status" not in b2.headers
    assert s1.json() == s2.json() == {"v": "stable"}
    assert s2.headers["x-cache"] == "HIT"
    assert calls == {"beta": 2, "stable": 1}


async def test_first_full_match_wins(web_cache: Cache) -> None:
    # Two GET routes on one path: the router dispatches to the first one, which has no
    # policy, so nothing is cached even though the second one has one.
    calls: Counter[str] = Counter()
    app = cached_app(web_cache)
    first = APIRouter()

    @first.get("/dup")
    async def dup_first() -> dict[str, str]:
        calls["first"] += 1
        return {"v": "first"}

    second = APIRouter()

    @second.get("/dup")
    @web_cache.response(ttl=60)
    async def dup_second() -> dict[str, str]:
        calls["second"] += 1
        return {"v": "second"}

    app.include_router(first)
    app.include_router(second)
    async with client_for(app) as client:
        a = await client.get("/dup")
        b = await client.get("/dup")
    assert a.json() == b.json() == {"v": "first"}
    assert "cache-status" not in b.headers
    assert calls == {"first": 2}


async def test_a_partial_match_is_not_a_match(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    app = cached_app(web_cache)
    writes = APIRouter()

    @writes.post("/thing")
    @web_cache.response(ttl=60)  # a policy on a POST-only route: a GET only matches partially
    async def create_thing() -> dict[str, str]:
        return {}

    reads = APIRouter()

    @reads.get("/thing")
    @web_cache.response(ttl=60)
    async def read_thing() -> dict[str, int]:
        calls["read"] += 1
        return {"calls": calls["read"]}

    @reads.put("/only-put")
    @web_cache.response(ttl=60)
    async def only_put() -> dict[str, str]:
        return {}

    app.include_router(writes)
    app.include_router(reads)
    async with client_for(app) as client:
        a = await client.get("/thing")
        b = await client.get("/thing")
        not_allowed = [await client.get("/only-put") for _ in range(2)]
    assert a.headers["x-cache"] == "MISS"
    assert b.headers["x-cache"] == "HIT"
    assert calls["read"] == 1
    assert [r.status_code for r in not_allowed] == [405, 405]
    assert all("cache-status" not in r.headers for r in not_allowed)


async def test_router_routes_without_policy_cost_no_redis_command(
    redis_server: RedisServer, redis_url: str
) -> None:
    cache = make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT))
    calls: Counter[str] = Counter()
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)
    app.include_router(counted_router(cache, calls, prefix="/r"))
    async with client_for(app) as client:
        await client.get("/r/items/1")  # warm: connection, scripts, vary memory
        redis_server.command("CONFIG", "RESETSTAT")
        for _ in range(10):
            await client.get("/r/plain")
            await client.get("/r/plain/")  # a redirect (redirect_slashes): not a route
            await client.post("/r/plain")  # 405: nothing to invalidate
        idle = command_calls(redis_server)
        hit = await client.get("/r/items/1")
    await cache.backend.aclose()
    assert calls["plain"] == 10
    assert idle == {}
    assert hit.headers["x-cache"] == "HIT"


# -- endpoints that can never be resolved: one warning each ------------------------------------


def _no_wraps(func: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(item_id: int) -> Any:  # no functools.wraps: the policy stays on func
        return await func(item_id)

    return wrapper


async def test_warns_once_when_a_wrapper_hides_the_policy(
    web_cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    router = APIRouter()

    @router.get("/hidden/{item_id}")
    @_no_wraps
    @web_cache.response(ttl=60)
    async def hidden(item_id: int) -> dict[str, int]:
        calls["hidden"] += 1
        return {"id": item_id}

    app = cached_app(web_cache)
    app.include_router(router)
    with caplog.at_level(logging.WARNING, logger="asgi_cache.http"):
        async with client_for(app) as client:
            for _ in range(3):
                await client.get("/hidden/1")
    warnings = [r for r in caplog.records if "hidden" in r.getMessage()]
    assert len(warnings) == 1
    assert "never" in warnings[0].getMessage()
    assert "functools.wraps" in warnings[0].getMessage()
    assert calls["hidden"] == 3


async def test_warns_once_for_a_route_shape_it_cannot_see_into(
    web_cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()

    class OpaqueRoute(Route):
        """Dispatches to its handler but does not expose it as ``endpoint``."""

        def __init__(self, path: str, handler: Callable[..., Any]) -> None:
            async def outer(request: Request) -> Response:
                response: Response = await self.handler(request)
                return response

            super().__init__(path, outer)
            self.handler = handler

    @web_cache.response(ttl=60)
    async def secret_page(request: Request) -> Response:
        calls["page"] += 1
        return PlainTextResponse("page")

    @web_cache.response(ttl=60)
    async def seen_page(request: Request) -> Response:
        calls["seen"] += 1
        return PlainTextResponse("seen")

    app = wrap(
        Starlette(routes=[OpaqueRoute("/opaque", secret_page), Route("/seen", seen_page)]),
        web_cache,
    )
    with caplog.at_level(logging.WARNING, logger="asgi_cache.http"):
        async with client_for(app) as client:
            for _ in range(2):
                await client.get("/opaque")
                await client.get("/seen")
    messages = [r.getMessage() for r in caplog.records if r.name == "asgi_cache.http"]
    assert len([m for m in messages if "secret_page" in m]) == 1
    assert not [m for m in messages if "seen_page" in m]
    assert calls == {"page": 2, "seen": 1}


async def test_header_parameter_dependency_is_resolved_on_the_lower_bound_too(
    web_cache: Cache,
) -> None:
    # Smoke test of the FastAPI dependant shapes the analysis reads, on every FastAPI.
    calls: Counter[str] = Counter()
    router = APIRouter()

    @router.get("/lang")
    @web_cache.response(ttl=60)
    async def lang(x_lang: str = Header("en")) -> dict[str, str]:
        calls[x_lang] += 1
        return {"lang": x_lang}

    app = cached_app(web_cache)
    app.include_router(router, prefix="/i18n")
    async with client_for(app) as client:
        en = [await client.get("/i18n/lang") for _ in range(2)]
        fr = [await client.get("/i18n/lang", headers={"x-lang": "fr"}) for _ in range(2)]
    assert [r.json()["lang"] for r in en + fr] == ["en", "en", "fr", "fr"]
    assert [r.headers["x-cache"] for r in en + fr] == ["MISS", "HIT", "MISS", "HIT"]
    assert calls == {"en": 1, "fr": 1}
