"""The middleware in real setups: FastAPI, mounts, lifespans, cache_all, Redis cost and faults."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from asgi_cache import Cache, CacheMiddleware, CacheSettings, ConfigurationError
from asgi_cache.backends import RedisBackend

from .http_support import client_for, command_calls, make_cache, wrap
from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer
from .test_loading_get_or_load import until


def fastapi_app(cache: Cache, calls: Counter[str]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)

    @app.get("/users/{user_id}")
    @cache.response(ttl=60, tags=["users:{user_id}"])
    async def get_user(user_id: int) -> dict[str, Any]:
        calls[f"user{user_id}"] += 1
        return {"id": user_id, "calls": calls[f"user{user_id}"]}

    @app.get("/plain")
    async def plain() -> dict[str, int]:
        calls["plain"] += 1
        return {"calls": calls["plain"]}

    return app


async def test_fastapi_route_with_tags_from_path_params(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    async with client_for(fastapi_app(web_cache, calls)) as client:
        a = await client.get("/users/1")
        b = await client.get("/users/1")
        c = await client.get("/users/2")
        head = await client.head("/users/1")
        await web_cache.invalidate_tags("users:1")
        d = await client.get("/users/1")
        e = await client.get("/users/2")
        p = await client.get("/plain")
    assert a.json() == b.json() == {"id": 1, "calls": 1}
    assert b.headers["x-cache"] == "HIT"
    assert c.headers["x-cache"] == "MISS"
    # FastAPI routes have no HEAD, yet HEAD is answered from the GET entry.
    assert head.status_code == 200
    assert head.headers["x-cache"] == "HIT"
    assert d.json() == {"id": 1, "calls": 2}
    assert d.headers["x-cache"] == "MISS"
    assert e.headers["x-cache"] == "HIT"
    assert "cache-status" not in p.headers


async def test_route_inside_a_mount(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60)
    async def inner(request: Request) -> Response:
        calls["inner"] += 1
        return PlainTextResponse(f"inner {request.path_params['name']} {calls['inner']}")

    api = Starlette(routes=[Route("/things/{name}", inner)])
    app = wrap(Starlette(routes=[Mount("/api", app=api)]), web_cache)
    async with client_for(app) as client:
        a = await client.get("/api/things/x")
        b = await client.get("/api/things/x")
        c = await client.get("/api/things/y")
    assert a.text == b.text == "inner x 1"
    assert b.headers["x-cache"] == "HIT"
    assert c.text == "inner y 2"


async def test_cache_all_on_a_bare_asgi_app(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        calls[path] += 1
        headers = {
            "/fresh": [(b"cache-control", b"public, max-age=60")],
            "/none": [],
            "/validator": [(b"etag", b'"e1"')],
        }[path]
        status = 304 if dict(scope["headers"]).get(b"if-none-match") == b'"e1"' else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if status == 304 else b"ok"})

    mw = wrap(app, web_cache, cache_all=True)
    async with client_for(mw) as client:
        results = {p: [await client.get(p) for _ in range(2)] for p in ("/fresh", "/none")}
        validator = [await client.get("/validator") for _ in range(2)]
    assert results["/fresh"][1].headers["x-cache"] == "HIT"
    assert calls["/fresh"] == 1
    assert results["/none"][1].headers["cache-status"] == (
        "asgi-cache; fwd=miss; detail=no-freshness"
    )
    # Only a validator: stored and revalidated on every use (no heuristic freshness).
    assert validator[1].text == "ok"
    assert calls["/validator"] == 2
    assert validator[1].headers["cache-status"].startswith("asgi-cache; fwd=stale; fwd-status=304")


async def test_non_http_scopes_pass_through(web_cache: Cache) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    mw = wrap(app, web_cache, cache_all=True)

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    await mw({"type": "websocket", "path": "/ws", "headers": []}, nothing, ignore)
    assert seen == ["websocket"]


async def test_lifespan_starts_and_stops_the_cache() -> None:
    cache = Cache.from_url("memory://", namespace="life")
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            events.append(f"{kind}:{cache._runtime._started}")
            await send({"type": f"{message['type']}.complete"})
            if kind == "shutdown":
                return

    mw = wrap(app, cache)
    inbox = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(inbox)

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])

    await mw({"type": "lifespan"}, receive, send)
    assert events == [
        "startup:True",
        "lifespan.startup.complete",
        "shutdown:True",  # the app's own shutdown may still use the cache
        "lifespan.shutdown.complete",
    ]
    assert cache._runtime._started is False


async def test_uncached_route_costs_no_redis_command(
    redis_server: RedisServer, redis_url: str
) -> None:
    cache = make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT))
    calls: Counter[str] = Counter()
    app = fastapi_app(cache, calls)
    async with client_for(app) as client:
        await client.get("/users/1")  # warm: connection, scripts, vary memory
        redis_server.command("CONFIG", "RESETSTAT")
        for _ in range(20):
            await client.get("/plain")
            await client.post("/plain")  # 405 from FastAPI: nothing to invalidate
        idle = command_calls(redis_server)
        hit = await client.get("/users/1")
        hit_cost = command_calls(redis_server)
    await cache.backend.aclose()
    assert calls["plain"] == 20
    assert idle == {}
    assert hit.headers["x-cache"] == "HIT"
    # A hit is one round trip: one script call, inside which Redis reads the entry and the
    # versions of its three tags (namespace, users:1, the URL); nothing else is sent.
    assert hit_cost == {"evalsha": 1, "get": 4}


async def test_keys_never_hold_raw_header_values(redis_url: str) -> None:
    cache = make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT))

    @cache.response(ttl=60, vary=["authorization", "accept-language"])
    async def me(request: Request) -> Response:
        return PlainTextResponse("hi", headers={"vary": "x-secret-token"})

    app = wrap(Starlette(routes=[Route("/me", me)]), cache)
    async with client_for(app) as client:
        headers = {
            "authorization": "Bearer sup3rsecret",
            "accept-language": "tlh",
            "x-secret-token": "hunter2",
        }
        await client.get("/me", headers=headers)
        hit = await client.get("/me", headers=headers)
    client_redis = aioredis.Redis.from_url(redis_url)
    keys = [k.decode() async for k in client_redis.scan_iter("*")]
    await client_redis.aclose()
    await cache.backend.aclose()
    assert hit.headers["x-cache"] == "HIT"
    assert keys
    assert all(k.startswith("web:") for k in keys)
    for secret in ("sup3rsecret", "tlh", "hunter2", "/me"):
        assert not any(secret in k for k in keys)


async def test_redis_down_fails_open(own_redis: RedisServer) -> None:
    cache = make_cache(RedisBackend(own_redis.url, op_timeout=0.2, connect_timeout=0.2))
    calls: Counter[str] = Counter()
    app = fastapi_app(cache, calls)
    async with client_for(app) as client:
        first = await client.get("/users/1")
        own_redis.stop()
        down = [await client.get("/users/1") for _ in range(3)]
        other = await client.get("/users/7")
    await cache.backend.aclose()
    assert first.headers["x-cache"] == "MISS"
    assert [r.status_code for r in down] == [200, 200, 200]
    assert [r.json()["calls"] for r in down] == [2, 3, 4]
    assert other.status_code == 200
    assert other.json() == {"id": 7, "calls": 1}
    assert cache.stats()["errors"] >= 4


async def test_lock_coalesces_across_processes(redis_url: str) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    entered = asyncio.Event()
    caches = [
        make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)) for _ in range(2)
    ]
    reads: Counter[str] = Counter()
    waiter_backend = caches[1].backend
    original_get = waiter_backend.get

    async def counting_get(key: str) -> bytes | None:
        reads["n"] += 1
        return await original_get(key)

    waiter_backend.get = counting_get  # type: ignore[method-assign]

    def build(cache: Cache) -> Any:
        @cache.response(ttl=60, lock=True)
        async def expensive(request: Request) -> Response:
            calls["n"] += 1
            entered.set()
            await gate.wait()
            return PlainTextResponse(f"computed {calls['n']}")

        return wrap(Starlette(routes=[Route("/x", expensive)]), cache)

    apps = [build(c) for c in caches]
    async with client_for(apps[0]) as one, client_for(apps[1]) as two:
        first = asyncio.ensure_future(one.get("/x"))
        await entered.wait()
        second = asyncio.ensure_future(two.get("/x"))
        for _ in range(10_000):
            if caches[1].stats()["lock_waits"]:
                break
            await asyncio.sleep(0.001)
        reads_before = reads["n"]
        # Hold the lock a while: a waiter that polled would read again and again meanwhile.
        await asyncio.sleep(0.3)
        reads_while_held = reads["n"] - reads_before
        gate.set()
        a, b = await first, await second
    for c in caches:
        await c.backend.aclose()
    assert calls["n"] == 1
    assert a.text == b.text == "computed 1"
    assert b.headers["cache-status"] == "asgi-cache; hit; detail=lock"
    # The waiter slept on the holder's notification instead of polling Redis.
    assert reads_while_held <= 1


async def test_disabled_cache_passes_through() -> None:
    cache = Cache(CacheSettings(enabled=False))
    calls: Counter[str] = Counter()
    async with client_for(fastapi_app(cache, calls)) as client:
        a = await client.get("/users/1")
        b = await client.get("/users/1")
    assert (a.json()["calls"], b.json()["calls"]) == (1, 2)
    assert "cache-status" not in b.headers


async def test_bad_tag_template_does_not_cache(web_cache: Cache) -> None:
    @web_cache.response(ttl=60, tags=["users:{missing}"])
    async def wrong(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = wrap(Starlette(routes=[Route("/w", wrong)]), web_cache)
    async with client_for(app) as client:
        r = await client.get("/w")
    assert r.text == "ok"
    assert r.headers["cache-status"] == "asgi-cache; fwd=bypass; detail=tag-template"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"ttl": 0}, "ttl=0"),
        ({"ttl": "5"}, "ttl='5'"),
        ({"tags": "users"}, "tags='users'"),
        ({"tags": ["users:{"]}, "users:{"),
        ({"tags": ["users:{0}"]}, "path parameter"),
        ({"vary": "accept"}, "vary='accept'"),
        ({"vary": [""]}, "vary entry"),
        ({"statuses": [99]}, "statuses=[99]"),
        ({"statuses": []}, "statuses=[]"),
        ({"public": "yes"}, "public='yes'"),
        ({"stale_if_error": -1}, "stale_if_error=-1"),
    ],
)
def test_policy_options_are_validated(options: dict[str, Any], needle: str) -> None:
    cache = Cache()
    with pytest.raises(ConfigurationError, match="not allowed") as info:
        cache.response(**options)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"cache": object()}, "cache="),
        ({"cache_all": 1}, "cache_all=1"),
        ({"cache_tag_header": ""}, "cache_tag_header"),
        ({"max_body_bytes": 0}, "max_body_bytes=0"),
        ({"allowed_hosts": "example.com"}, "allowed_hosts"),
        ({"statuses": [1000]}, "statuses"),
    ],
)
def test_middleware_options_are_validated(options: dict[str, Any], needle: str) -> None:
    kwargs: dict[str, Any] = {"cache": Cache(), **options}
    with pytest.raises(ConfigurationError) as info:
        CacheMiddleware(Starlette(), **kwargs)
    assert needle in str(info.value)


def test_decorator_returns_the_endpoint_itself() -> None:
    cache = Cache()

    async def endpoint() -> None:
        return None

    assert cache.response(ttl=5)(endpoint) is endpoint


async def test_redis_paused_fails_open(own_redis: RedisServer) -> None:
    cache = make_cache(RedisBackend(own_redis.url, op_timeout=0.1, connect_timeout=0.2))
    calls: Counter[str] = Counter()
    app = fastapi_app(cache, calls)
    async with client_for(app) as client:
        await client.get("/users/1")
        own_redis.pause()  # SIGSTOP: commands hang instead of failing
        try:
            frozen = await client.get("/users/1")
            new = await client.get("/users/3")
        finally:
            own_redis.resume()
    await cache.backend.aclose()
    assert frozen.status_code == 200
    assert frozen.json() == {"id": 1, "calls": 2}
    assert frozen.headers["x-cache"] == "MISS"
    assert new.json() == {"id": 3, "calls": 1}
    assert cache.stats()["errors"] >= 2


async def test_custom_ignored_query_params(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60)
    async def page(request: Request) -> Response:
        calls["n"] += 1
        return PlainTextResponse(f"p{calls['n']}")

    routes = [Route("/p", page)]
    app = wrap(Starlette(routes=routes), web_cache, ignored_query_params=["session_*", "ts"])
    async with client_for(app) as client:
        a = await client.get("/p?x=1&session_id=9&ts=5")
        b = await client.get("/p?x=1")
        c = await client.get("/p?x=1&utm_source=mail")  # no longer ignored
    assert b.headers["x-cache"] == "HIT"
    assert a.text == b.text
    assert c.headers["x-cache"] == "MISS"


async def test_host_routes_are_resolved_per_request(web_cache: Cache) -> None:
    from starlette.routing import Host, Router

    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60)
    async def api(request: Request) -> Response:
        calls["api"] += 1
        return PlainTextResponse(f"api{calls['api']}")

    async def www(request: Request) -> Response:
        calls["www"] += 1
        return PlainTextResponse(f"www{calls['www']}")

    routes = [
        Host("api.example.com", app=Router(routes=[Route("/x", api)])),
        Host("www.example.com", app=Router(routes=[Route("/x", www)])),
    ]
    app = wrap(Starlette(routes=routes), web_cache)
    async with client_for(app) as client:
        results = [
            await client.get("/x", headers={"host": host})
            for host in ("api.example.com", "www.example.com", "api.example.com", "www.example.com")
        ]
    assert [r.text for r in results] == ["api1", "www1", "api1", "www2"]
    assert results[2].headers["x-cache"] == "HIT"
    assert "x-cache" not in results[3].headers


async def test_cold_process_hit_is_one_round_trip(
    redis_server: RedisServer, redis_url: str
) -> None:
    warm, cold = (
        make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)) for _ in range(2)
    )
    async with client_for(fastapi_app(warm, Counter())) as client:
        await client.get("/users/1")
    # Another process that has never seen this URL: its first hit must not read the Vary
    # memory first.
    async with client_for(fastapi_app(cold, Counter())) as client:
        await cold.backend.ping()  # connect outside the measurement
        redis_server.command("CONFIG", "RESETSTAT")
        hit = await client.get("/users/1")
        cost = command_calls(redis_server)
    for c in (warm, cold):
        await c.backend.aclose()
    assert hit.headers["x-cache"] == "HIT"
    assert cost == {"evalsha": 1, "get": 4}


async def test_lock_holder_serves_what_the_previous_holder_stored(redis_url: str) -> None:
    # A request misses, and before it takes the lock another process stores the response and
    # releases: the new holder must serve that entry, not call its app again.
    calls: Counter[str] = Counter()
    caches = [
        make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)) for _ in range(2)
    ]

    def build(cache: Cache) -> Any:
        @cache.response(ttl=60, lock=True)
        async def expensive(request: Request) -> Response:
            calls["n"] += 1
            return PlainTextResponse(f"computed {calls['n']}")

        return wrap(Starlette(routes=[Route("/x", expensive)]), cache)

    apps = [build(c) for c in caches]
    late = caches[0].backend
    real_acquire = late.acquire_lock
    async with client_for(apps[0]) as one, client_for(apps[1]) as two:

        async def acquire_after_the_other_process(key: str, token: str, ttl: float) -> bool:
            first = await two.get("/x")  # the other process misses, stores and releases
            assert first.headers["x-cache"] == "MISS"
            return await real_acquire(key, token, ttl)

        late.acquire_lock = acquire_after_the_other_process  # type: ignore[method-assign]
        response = await one.get("/x")
    for c in caches:
        await c.backend.aclose()
    assert calls["n"] == 1
    assert response.text == "computed 1"
    assert response.headers["cache-status"] == "asgi-cache; hit; detail=lock"


async def test_request_no_cache_on_a_locked_route_reaches_the_app(redis_url: str) -> None:
    # The lock holder's re-read must not answer a client that asked for the origin.
    calls: Counter[str] = Counter()
    cache = make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT))

    @cache.response(ttl=60, lock=True)
    async def expensive(request: Request) -> Response:
        calls["n"] += 1
        return PlainTextResponse(f"computed {calls['n']}")

    app = wrap(Starlette(routes=[Route("/x", expensive)]), cache)
    async with client_for(app) as client:
        await client.get("/x")
        forced = await client.get("/x", headers={"cache-control": "no-cache"})
        after = await client.get("/x")
    await cache.backend.aclose()
    assert calls["n"] == 2
    assert forced.text == "computed 2"
    assert forced.headers["cache-status"] == "asgi-cache; fwd=request; stored"
    assert after.text == "computed 2"


async def test_waiters_woken_by_a_failed_holder_go_to_the_app_at_once(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    # Three processes miss together. The holder's app fails (nothing stored); the two waiters
    # are woken without a response and call their apps at once, as a reverse proxy's waiting
    # list does (cache-aside instead lets one waiter take over: a failed load is retried by
    # one process). No "not storable" marker is left: an exception says nothing of the next
    # response, so the next miss takes the lock again.
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    entered = asyncio.Event()
    caches = [
        make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)) for _ in range(3)
    ]

    def build(cache: Cache) -> Any:
        @cache.response(ttl=60, lock=True)
        async def flaky(request: Request) -> Response:
            calls["n"] += 1
            if calls["n"] == 1:
                entered.set()
                await gate.wait()
                raise RuntimeError("origin failed")
            return PlainTextResponse("computed", headers={"cache-control": "no-store"})

        return wrap(Starlette(routes=[Route("/x", flaky)]), cache)

    apps = [build(c) for c in caches]
    transport = httpx.ASGITransport(app=apps[0], raise_app_exceptions=False)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as one,
        client_for(apps[1]) as two,
        client_for(apps[2]) as three,
    ):
        first = asyncio.ensure_future(one.get("/x"))
        await entered.wait()
        waiting = [asyncio.ensure_future(c.get("/x")) for c in (two, three)]
        await until(lambda: all(c.stats()["lock_waits"] for c in caches[1:]))
        gate.set()
        failed = await first
        answers = [await w for w in waiting]
        markers = await redis_client.keys("web:p:*")
    for c in caches:
        await c.backend.aclose()
    assert failed.status_code == 500
    assert calls["n"] == 3  # the failed holder, then each waiter on its own, at once
    assert [r.text for r in answers] == ["computed", "computed"]
    assert {r.headers["cache-status"] for r in answers} == {"asgi-cache; fwd=miss; detail=no-store"}
    assert sum(c.stats()["lock_waits"] for c in caches) == 2  # nobody queued twice
    assert markers == []


async def test_not_storable_marker_skips_the_lock_until_a_tag_invalidation(
    redis_url: str, redis_server: RedisServer
) -> None:
    calls: Counter[str] = Counter()
    cache = make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT))

    @cache.response(ttl=60, lock=True, tags=["items"])
    async def listing(request: Request) -> Response:
        calls["n"] += 1
        return PlainTextResponse("fresh", headers={"cache-control": "private"})

    base = command_calls(redis_server).get("publish", 0)

    def locks_held() -> int:
        return command_calls(redis_server).get("publish", 0) - base  # one per release

    app = wrap(Starlette(routes=[Route("/items", listing)]), cache)
    async with client_for(app) as client:
        held = [await client.get("/items"), locks_held()]
        skipped = [await client.get("/items"), await client.get("/items"), locks_held()]
        await cache.invalidate_tags("items")
        again = [await client.get("/items"), locks_held()]
    await cache.backend.aclose()
    assert calls["n"] == 4
    assert held[0].headers["cache-status"] == "asgi-cache; fwd=miss; detail=private"
    assert held[1] == 1
    assert skipped[2] == 1  # the marker sent both misses past the lock
    assert again[1] == 2  # the invalidation retired the marker: the lock is taken again
    assert cache.stats()["lock_waits"] == 0


async def test_head_on_a_cold_fastapi_get_route(web_cache: Cache) -> None:
    # FastAPI GET routes refuse HEAD (405). A cold HEAD is fetched as a GET, stored, and
    # answered without its body; a response that cannot be stored reaches the HEAD client
    # without its body too, streamed or not.
    seen: list[str] = []
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=web_cache)

    @app.get("/report")
    @web_cache.response(ttl=60)
    async def report(request: Request) -> dict[str, str]:
        seen.append(request.method)
        return {"rows": "x" * 100}

    @app.get("/private")
    @web_cache.response(ttl=60)
    async def private(request: Request) -> Response:
        seen.append(request.method)
        return PlainTextResponse("mine", headers={"cache-control": "private"})

    @app.get("/stream")
    @web_cache.response(ttl=60)
    async def stream(request: Request) -> Response:
        seen.append(request.method)

        async def chunks() -> Any:
            yield b"one "
            yield b"two"

        return StreamingResponse(chunks(), headers={"cache-control": "no-store"})

    async with client_for(app) as client:
        cold = await client.head("/report")
        get = await client.get("/report")
        private_head = await client.head("/private")
        stream_head = await client.head("/stream")
    assert cold.status_code == 200
    assert cold.content == b""
    assert cold.headers["cache-status"] == "asgi-cache; fwd=miss; stored"
    assert cold.headers["content-length"] == get.headers["content-length"]
    assert get.headers["x-cache"] == "HIT"
    assert get.json() == {"rows": "x" * 100}
    assert private_head.status_code == stream_head.status_code == 200
    assert private_head.content == stream_head.content == b""
    assert private_head.headers["cache-status"] == "asgi-cache; fwd=miss; detail=private"
    assert stream_head.headers["cache-status"] == "asgi-cache; fwd=miss; detail=no-store"
    assert seen == ["GET", "GET", "GET"]  # the app saw GETs only, one per URL
