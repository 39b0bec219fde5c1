"""RFC 9111 / 5861 semantics through the app: validators, revalidation, Vary, stale, privacy."""

from __future__ import annotations

import asyncio
from collections import Counter
from email.utils import formatdate
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_cache import Cache

from .http_support import Clock, backend_for, client_for, make_cache, wrap

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


class Origin:
    """A configurable origin: each route's next response is set by the test."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seen: list[dict[str, str]] = []
        self.version = "v1"
        self.etag: str | None = '"v1"'
        self.status = 200
        self.raise_error = False
        self.headers: dict[str, str] = {}
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, request: Request) -> Response:
        self.calls[request.url.path] += 1
        self.seen.append(dict(request.headers))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.raise_error:
            raise RuntimeError("origin down")
        headers = dict(self.headers)
        if self.etag:
            headers["etag"] = self.etag
            if request.headers.get("if-none-match") == self.etag:
                return Response(status_code=304, headers=headers)
        body = f"{self.version}:{request.headers.get('accept-language', '-')}"
        return PlainTextResponse(body, status_code=self.status, headers=headers)


def build(cache: Cache, origin: Origin, **policy: Any) -> Any:
    return wrap(Starlette(routes=[Route("/r", cache.response(**policy)(handler(origin)))]), cache)


def handler(obj: Any) -> Any:
    """A plain function endpoint calling ``obj(request)``."""

    async def endpoint(request: Request) -> Response:
        response: Response = await obj(request)
        return response

    return endpoint


async def test_304_on_hit_and_on_fresh_miss_for_both_validators(web_cache: Cache) -> None:
    origin = Origin()
    origin.etag = None
    origin.headers = {"last-modified": LAST_MODIFIED}
    app = build(web_cache, origin, ttl=60)
    async with client_for(app) as client:
        first = await client.get("/r")
        etag = first.headers["etag"]  # derived from the body: the origin sent none
        miss_304 = await client.get("/r?x=1", headers={"if-none-match": etag})
        hit_304 = await client.get("/r", headers={"if-none-match": f'"nope", W/{etag}'})
        hit_200 = await client.get("/r", headers={"if-none-match": '"other"'})
        ims_304 = await client.get("/r", headers={"if-modified-since": LAST_MODIFIED})
        ims_200 = await client.get(
            "/r", headers={"if-modified-since": "Tue, 20 Oct 2015 07:28:00 GMT"}
        )
    assert etag.startswith('"')
    assert len(etag) == 18  # a quoted 64-bit hex digest of the body
    assert miss_304.status_code == 304
    assert miss_304.content == b""
    assert miss_304.headers["cache-status"] == "asgi-cache; fwd=miss; stored"
    assert hit_304.status_code == 304
    assert hit_304.headers["etag"] == etag
    assert hit_304.headers["x-cache"] == "HIT"
    assert "content-type" not in hit_304.headers
    assert hit_304.headers["last-modified"] == LAST_MODIFIED
    assert hit_200.status_code == 200
    assert hit_200.text == "v1:-"
    assert ims_304.status_code == 304
    assert ims_200.status_code == 200
    # The app never saw the client's validators: the cache answers conditionals itself.
    assert all("if-none-match" not in seen for seen in origin.seen)
    assert origin.calls["/r"] == 2


async def test_revalidation_with_304_freshens_the_entry(web_cache: Cache, clock: Clock) -> None:
    origin = Origin()
    origin.headers = {"x-version": "1"}
    app = build(web_cache, origin, ttl=10)
    async with client_for(app) as client:
        await client.get("/r")
        clock.advance(11)
        origin.headers = {"x-version": "2"}
        revalidated = await client.get("/r")
        hit = await client.get("/r")
    assert origin.seen[1]["if-none-match"] == '"v1"'
    assert revalidated.status_code == 200
    assert revalidated.text == "v1:-"
    assert revalidated.headers["cache-status"] == "asgi-cache; fwd=stale; fwd-status=304; stored"
    assert revalidated.headers["x-version"] == "2"  # headers updated from the 304
    assert hit.headers["x-cache"] == "HIT"
    assert hit.headers["x-version"] == "2"
    assert origin.calls["/r"] == 2


async def test_revalidation_with_200_replaces_the_entry(web_cache: Cache, clock: Clock) -> None:
    origin = Origin()
    app = build(web_cache, origin, ttl=10)
    async with client_for(app) as client:
        await client.get("/r")
        clock.advance(11)
        origin.version, origin.etag = "v2", '"v2"'
        replaced = await client.get("/r")
        hit = await client.get("/r")
    assert replaced.text == "v2:-"
    assert replaced.headers["cache-status"] == "asgi-cache; fwd=stale; fwd-status=200; stored"
    assert hit.text == "v2:-"
    assert hit.headers["etag"] == '"v2"'


async def test_no_cache_response_is_stored_but_always_revalidated(web_cache: Cache) -> None:
    origin = Origin()
    origin.headers = {"cache-control": "no-cache"}
    app = build(web_cache, origin, ttl=60)
    async with client_for(app) as client:
        await client.get("/r")
        second = await client.get("/r")
        third = await client.get("/r")
        origin.etag = None
        origin.headers = {"cache-control": "no-cache"}
        no_validator = await client.get("/r?other")
    assert second.headers["cache-status"].startswith("asgi-cache; fwd=stale; fwd-status=304")
    assert third.text == "v1:-"
    assert origin.calls["/r"] == 4
    assert no_validator.headers["cache-status"] == "asgi-cache; fwd=miss; detail=no-cache"


async def test_response_vary_gives_one_entry_per_variant(web_cache: Cache) -> None:
    origin = Origin()
    origin.etag = None
    origin.headers = {"vary": "Accept-Language"}
    app = build(web_cache, origin, ttl=60)
    async with client_for(app) as client:
        en = await client.get("/r", headers={"accept-language": "en"})
        fr = await client.get("/r", headers={"accept-language": "fr"})
        en2 = await client.get("/r", headers={"accept-language": "en"})
        fr2 = await client.get("/r", headers={"accept-language": "fr"})
        none = await client.get("/r")
    assert (en.text, fr.text, en2.text, fr2.text) == ("v1:en", "v1:fr", "v1:en", "v1:fr")
    assert fr.headers["x-cache"] == "MISS"
    assert en2.headers["x-cache"] == fr2.headers["x-cache"] == "HIT"
    assert none.text == "v1:-"
    assert origin.calls["/r"] == 3


async def test_vary_memory_is_shared_through_the_backend(web_cache: Cache) -> None:
    origin = Origin()
    origin.etag = None
    origin.headers = {"vary": "accept-language"}
    async with client_for(build(web_cache, origin, ttl=60)) as client:
        await client.get("/r", headers={"accept-language": "en"})
    # A second middleware (another process) learns the URL's Vary names from the backend.
    async with client_for(build(web_cache, origin, ttl=60)) as client:
        en = await client.get("/r", headers={"accept-language": "en"})
        fr = await client.get("/r", headers={"accept-language": "fr"})
    assert en.headers["x-cache"] == "HIT"
    assert en.text == "v1:en"
    assert fr.text == "v1:fr"


async def test_policy_vary_and_accept_encoding_normalization(web_cache: Cache) -> None:
    origin = Origin()
    app = build(web_cache, origin, ttl=60, vary=["Accept-Encoding", "accept-language"])
    async with client_for(app) as client:
        a = await client.get("/r", headers={"accept-encoding": "gzip, br"})
        b = await client.get("/r", headers={"accept-encoding": "br;q=0.9,  GZIP"})
        c = await client.get("/r", headers={"accept-encoding": "gzip, br, identity"})
        d = await client.get("/r", headers={"accept-encoding": "gzip"})
        e = await client.get("/r", headers={"accept-encoding": "gzip, br;q=0"})
        f = await client.get("/r", headers={"accept-encoding": "gzip", "accept-language": "de"})
    assert [r.headers["x-cache"] for r in (a, b, c, d, e, f)] == [
        "MISS",
        "HIT",
        "HIT",
        "MISS",
        "HIT",
        "MISS",
    ]
    assert "accept-encoding" in a.headers["vary"].lower()


async def test_freshness_from_response_headers(web_cache: Cache, clock: Clock) -> None:
    origin = Origin()
    origin.etag = None
    app = build(web_cache, origin)  # no policy ttl: the response decides
    async with client_for(app) as client:
        origin.headers = {"cache-control": "max-age=100, s-maxage=20"}
        await client.get("/r?s")
        origin.headers = {"cache-control": "max-age=30"}
        await client.get("/r?m")
        origin.headers = {"expires": formatdate(clock.time() + 40, usegmt=True)}
        await client.get("/r?e")
        origin.headers = {"expires": "0"}
        bad = await client.get("/r?bad")
        origin.headers = {}
        await client.get("/r?default")
        clock.advance(25)
        s, m, e, d = [await client.get(f"/r?{q}") for q in ("s", "m", "e", "default")]
    assert bad.headers["cache-status"] == "asgi-cache; fwd=miss; detail=expired"
    assert s.headers["x-cache"] == "MISS"  # s-maxage wins for a shared cache
    assert m.headers["x-cache"] == "HIT"
    assert m.headers["age"] == "25"
    assert e.headers["x-cache"] == "HIT"
    assert d.headers["x-cache"] == "HIT"  # default_ttl is 60


async def test_policy_max_age_is_added_for_clients(web_cache: Cache) -> None:
    origin = Origin()
    async with client_for(build(web_cache, origin, ttl=60, max_age=15)) as client:
        first = await client.get("/r")
        hit = await client.get("/r")
    assert first.headers["cache-control"] == hit.headers["cache-control"] == "max-age=15"


async def test_stale_while_revalidate_runs_one_refresh(web_cache: Cache, clock: Clock) -> None:
    origin = Origin()
    origin.etag = None
    app = build(web_cache, origin, ttl=10, stale_while_revalidate=30)
    async with client_for(app) as client:
        await client.get("/r")
        clock.advance(15)
        origin.version = "v2"
        origin.gate = asyncio.Event()
        origin.entered = asyncio.Event()
        stale = await asyncio.gather(*(client.get("/r") for _ in range(20)))
        await origin.entered.wait()  # the one background refresh is inside the app
        origin.gate.set()
        await app.drain()
        fresh = await client.get("/r")
    assert {r.text for r in stale} == {"v1:-"}
    assert {r.headers["cache-status"] for r in stale} == {
        "asgi-cache; fwd=stale; detail=stale-while-revalidate"
    }
    assert {r.headers["x-cache"] for r in stale} == {"STALE"}
    assert origin.calls["/r"] == 2  # exactly one refresh for twenty stale hits
    assert fresh.text == "v2:-"
    assert fresh.headers["x-cache"] == "HIT"


async def test_stale_if_error_serves_stale_on_500_and_exception(
    web_cache: Cache, clock: Clock
) -> None:
    origin = Origin()
    origin.etag = None
    app = build(web_cache, origin, ttl=10, stale_if_error=100)
    async with client_for(app) as client:
        await client.get("/r")
        clock.advance(20)
        origin.status = 500
        on_500 = await client.get("/r")
        origin.status = 200
        origin.raise_error = True
        on_exception = await client.get("/r")
        clock.advance(200)  # beyond the window: the error reaches the client
        with pytest.raises(RuntimeError):
            await client.get("/r")
    assert on_500.status_code == 200
    assert on_500.text == "v1:-"
    assert on_500.headers["cache-status"] == (
        "asgi-cache; fwd=stale; fwd-status=500; detail=stale-if-error"
    )
    assert on_500.headers["x-cache"] == "STALE"
    assert on_exception.status_code == 200
    assert on_exception.text == "v1:-"
    assert on_exception.headers["cache-status"] == "asgi-cache; fwd=stale; detail=stale-if-error"


async def test_must_revalidate_is_never_served_stale(web_cache: Cache, clock: Clock) -> None:
    origin = Origin()
    origin.etag = None
    origin.headers = {"cache-control": "must-revalidate"}
    app = build(web_cache, origin, ttl=10, stale_while_revalidate=30, stale_if_error=30)
    async with client_for(app) as client:
        await client.get("/r")
        clock.advance(15)
        origin.status = 500
        failed = await client.get("/r")
    assert failed.status_code == 500


class Users:
    """An origin answering with the caller's identity."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        who = request.headers.get("authorization") or request.cookies.get("session") or "anon"
        return PlainTextResponse(f"hello {who}")


async def test_credentials_bypass_by_default(web_cache: Cache) -> None:
    users = Users()
    app = wrap(
        Starlette(routes=[Route("/me", web_cache.response(ttl=60)(handler(users)))]), web_cache
    )
    async with client_for(app) as client:
        alice = await client.get("/me", headers={"authorization": "Bearer alice"})
        bob = await client.get("/me", headers={"authorization": "Bearer bob"})
        carol = await client.get("/me", headers={"cookie": "session=carol"})
        dave = await client.get("/me", headers={"cookie": "session=dave"})
        anon = await client.get("/me")
    assert alice.text == "hello Bearer alice"
    assert bob.text == "hello Bearer bob"
    assert carol.text == "hello carol"
    assert dave.text == "hello dave"
    assert alice.headers["cache-status"] == "asgi-cache; fwd=bypass; detail=authorization"
    assert carol.headers["cache-status"] == "asgi-cache; fwd=bypass; detail=cookie"
    assert alice.headers["x-cache"] == "BYPASS"
    assert anon.text == "hello anon"
    assert anon.headers["x-cache"] == "MISS"


async def test_vary_on_authorization_gives_per_user_entries(web_cache: Cache) -> None:
    users = Users()
    endpoint = web_cache.response(ttl=60, vary=["authorization"])(handler(users))
    app = wrap(Starlette(routes=[Route("/me", endpoint)]), web_cache)
    async with client_for(app) as client:
        results = [
            await client.get("/me", headers={"authorization": f"Bearer {who}"})
            for who in ("alice", "bob", "alice", "bob")
        ]
    assert [r.text for r in results] == [
        "hello Bearer alice",
        "hello Bearer bob",
        "hello Bearer alice",
        "hello Bearer bob",
    ]
    assert [r.headers["x-cache"] for r in results] == ["MISS", "MISS", "HIT", "HIT"]
    assert users.calls == 2


async def test_public_route_and_explicitly_shareable_response(web_cache: Cache) -> None:
    users = Users()
    public = web_cache.response(ttl=60, public=True)(handler(users))

    async def shareable(request: Request) -> Response:
        users.calls += 1
        return PlainTextResponse("same for all", headers={"cache-control": "public, max-age=60"})

    routes = [Route("/pub", public), Route("/share", web_cache.response()(shareable))]
    app = wrap(Starlette(routes=routes), web_cache)
    async with client_for(app) as client:
        a = await client.get("/pub", headers={"authorization": "Bearer alice"})
        b = await client.get("/pub", headers={"authorization": "Bearer bob"})
        c = await client.get("/share", headers={"authorization": "Bearer alice"})
        d = await client.get("/share", headers={"authorization": "Bearer bob"})
    assert b.text == a.text
    assert b.headers["x-cache"] == "HIT"
    assert d.headers["x-cache"] == "HIT"
    assert c.text == d.text == "same for all"
    assert users.calls == 2


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_jitter_only_shortens_freshness(kind: str, clock: Clock, request: Any) -> None:
    # With a wide jitter, 40 responses stored together: none is served as fresh past its
    # max-age, and no hit advertises more ttl than the policy gave or than is left.
    url = request.getfixturevalue("redis_url") if kind == "redis" else None
    cache = make_cache(backend_for(kind, url), ttl_jitter=0.5)

    async def origin_max_age(request: Request) -> Response:
        return PlainTextResponse("short", headers={"cache-control": "max-age=2"})

    async def policy_ttl(request: Request) -> Response:
        return PlainTextResponse("long")

    routes = [
        Route("/short/{n}", cache.response()(origin_max_age)),
        Route("/long/{n}", cache.response(ttl=3600)(policy_ttl)),
    ]
    app = wrap(Starlette(routes=routes), cache)
    paths = [f"/{kind}/{n}" for kind in ("short", "long") for n in range(40)]
    async with client_for(app) as client:
        for path in paths:
            await client.get(path)
        hits = [await client.get(f"/long/{n}") for n in range(40)]
        clock.advance(2.1)
        late = [await client.get(f"/short/{n}") for n in range(40)]
    await cache.backend.aclose()
    ttls = [int(r.headers["cache-status"].rpartition("ttl=")[2]) for r in hits]
    assert all(r.headers["x-cache"] == "HIT" for r in hits)
    assert max(ttls) <= 3599  # 3600 s at most, a moment already gone
    assert min(ttls) >= 1799  # shortened by at most half
    assert len(set(ttls)) > 1  # and spread
    assert [r.headers["x-cache"] for r in late] == ["MISS"] * 40
