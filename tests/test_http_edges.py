"""Edge cases of the middleware: credentials vs stored entries, odd ASGI messages, locks."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_cache import Cache, CacheSettings
from asgi_cache.backends import MemoryBackend

from .http_support import Clock, client_for, wrap


async def test_stored_entry_is_not_served_to_a_request_with_credentials(
    web_cache: Cache,
) -> None:
    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60)
    async def page(request: Request) -> Response:
        calls["n"] += 1
        who = request.headers.get("authorization", "anon")
        return PlainTextResponse(f"page for {who}")

    app = wrap(Starlette(routes=[Route("/page", page)]), web_cache)
    async with client_for(app) as client:
        anon = await client.get("/page")
        alice = await client.get("/page", headers={"authorization": "Bearer alice"})
        anon2 = await client.get("/page")
    assert alice.text == "page for Bearer alice"
    assert alice.headers["x-cache"] == "BYPASS"
    assert anon2.text == anon.text == "page for anon"
    assert anon2.headers["x-cache"] == "HIT"


def raw_scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }


async def run_raw(mw: Any, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw(raw_scope(path), receive, send)
    return sent


async def test_trailers_and_unfinished_bodies_pass_through_unstored(web_cache: Cache) -> None:
    calls: Counter[str] = Counter()
    fresh = [(b"cache-control", b"max-age=60")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls[scope["path"]] += 1
        if scope["path"] == "/trailers":
            await send(
                {"type": "http.response.start", "status": 200, "headers": fresh, "trailers": True}
            )
            await send({"type": "http.response.body", "body": b"data"})
            await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})
        else:  # returns without its final chunk
            await send({"type": "http.response.start", "status": 200, "headers": fresh})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})

    mw = wrap(app, web_cache, cache_all=True)
    trailers = await run_raw(mw, "/trailers")
    unfinished = await run_raw(mw, "/unfinished")
    again = await run_raw(mw, "/unfinished")
    assert [m["type"] for m in trailers] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    assert trailers[0]["trailers"] is True
    assert dict(trailers[0]["headers"])[b"cache-status"] == b"asgi-cache; fwd=miss; detail=trailers"
    assert b"".join(m.get("body", b"") for m in trailers) == b"data"
    # A body in several chunks streams to the client as it comes (a copy kept to store);
    # the app that returned early is passed on as it was (the server ends the connection),
    # and nothing is stored.
    assert dict(unfinished[0]["headers"])[b"cache-status"] == (
        b"asgi-cache; fwd=miss; detail=streaming"
    )
    assert unfinished[-1] == {"type": "http.response.body", "body": b"part", "more_body": True}
    assert dict(again[0]["headers"])[b"x-cache"] == b"MISS"


async def test_revalidation_with_last_modified_only(web_cache: Cache, clock: Clock) -> None:
    seen: list[str | None] = []
    modified = "Wed, 21 Oct 2015 07:28:00 GMT"

    @web_cache.response(ttl=10)
    async def doc(request: Request) -> Response:
        since = request.headers.get("if-modified-since")
        seen.append(since)
        if since == modified:
            return Response(status_code=304)
        return PlainTextResponse("doc", headers={"last-modified": modified})

    app = wrap(Starlette(routes=[Route("/doc", doc)]), web_cache)
    async with client_for(app) as client:
        await client.get("/doc")
        clock.advance(11)
        revalidated = await client.get("/doc")
    assert seen == [None, modified]
    assert revalidated.text == "doc"
    assert revalidated.headers["last-modified"] == modified
    assert revalidated.headers["cache-status"].startswith("asgi-cache; fwd=stale; fwd-status=304")


async def test_heuristic_statuses_and_204(web_cache: Cache) -> None:
    from asgi_cache.http import HEURISTIC_STATUSES

    calls: Counter[str] = Counter()

    @web_cache.response(ttl=60, statuses=HEURISTIC_STATUSES)
    async def empty(request: Request) -> Response:
        calls["n"] += 1
        return Response(status_code=204)

    app = wrap(Starlette(routes=[Route("/e", empty)]), web_cache)
    async with client_for(app) as client:
        first, second = await client.get("/e"), await client.get("/e")
    assert (first.status_code, second.status_code) == (204, 204)
    assert second.headers["x-cache"] == "HIT"
    assert "content-length" not in second.headers
    assert calls["n"] == 1


async def test_bad_cache_tag_values_are_ignored(web_cache: Cache) -> None:
    @web_cache.response(ttl=60)
    async def tagged(request: Request) -> Response:
        return PlainTextResponse("t", headers={"cache-tag": f"ok {'x' * 2000} *"})

    app = wrap(Starlette(routes=[Route("/t", tagged)]), web_cache)
    async with client_for(app) as client:
        await client.get("/t")
        hit = await client.get("/t")
        await web_cache.invalidate_tags("ok")
        after = await client.get("/t")
    assert hit.headers["x-cache"] == "HIT"
    assert after.headers["x-cache"] == "MISS"


async def test_lock_held_elsewhere_times_out_to_the_origin() -> None:
    backend = MemoryBackend()
    cache = Cache(
        CacheSettings(namespace="web", ttl_jitter=0.0, lock_timeout=0.05), backend=backend
    )
    calls: Counter[str] = Counter()

    @cache.response(ttl=60, lock=True)
    async def slow(request: Request) -> Response:
        calls["n"] += 1
        return PlainTextResponse("computed")

    app = wrap(Starlette(routes=[Route("/x", slow)]), cache)
    async with client_for(app) as client:
        await client.get("/x")  # learn the key
        await cache.clear()
        # Another process holds the lock on this entry and never stores it.
        full_keys = list(app.context.vary_memory._local)
        assert len(full_keys) == 1
        key = next(k for k in backend._data if k.startswith("web:h:"))
        await backend.acquire_lock(cache.keys.lock(key), "someone-else", 30)
        r = await client.get("/x")
    assert r.text == "computed"
    assert r.headers["x-cache"] == "MISS"
    assert calls["n"] == 2
    assert cache.stats()["lock_waits"] == 1


async def test_odd_bodies_pass_through_unstored(web_cache: Cache) -> None:
    # One body message over the limit (no Content-Length to tell it first), a pathsend
    # right after the start, and a pathsend after a streamed chunk: each reaches the client
    # as sent, nothing is stored.
    calls: Counter[str] = Counter()
    fresh = [(b"cache-control", b"max-age=60")]
    pathsend = {"type": "http.response.pathsend", "path": "/etc/hostname"}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls[scope["path"]] += 1
        await send({"type": "http.response.start", "status": 200, "headers": fresh})
        if scope["path"] == "/huge":
            await send({"type": "http.response.body", "body": b"x" * 2000})
        elif scope["path"] == "/file":
            await send(pathsend)
        else:
            await send({"type": "http.response.body", "body": b"head", "more_body": True})
            await send(pathsend)

    mw = wrap(app, web_cache, cache_all=True, max_body_bytes=1000)
    sent = {path: await run_raw(mw, path) for path in ("/huge", "/file", "/mixed")}
    again = {path: await run_raw(mw, path) for path in ("/huge", "/file", "/mixed")}

    def status(messages: list[dict[str, Any]]) -> bytes:
        return dict(messages[0]["headers"])[b"cache-status"]

    assert status(sent["/huge"]) == b"asgi-cache; fwd=miss; detail=too-large"
    assert b"".join(m.get("body", b"") for m in sent["/huge"]) == b"x" * 2000
    assert status(sent["/file"]) == b"asgi-cache; fwd=miss; detail=unsupported"
    assert sent["/file"][-1] == pathsend
    assert status(sent["/mixed"]) == b"asgi-cache; fwd=miss; detail=streaming"
    assert [m["type"] for m in sent["/mixed"]][1:] == ["http.response.body", pathsend["type"]]
    assert {dict(m[0]["headers"])[b"x-cache"] for m in again.values()} == {b"MISS"}
    assert calls == {"/huge": 2, "/file": 2, "/mixed": 2}
