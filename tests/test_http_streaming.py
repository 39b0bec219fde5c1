"""Bodies and concurrency: coalescing, large and failing streams, disconnects."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from asgi_cache import Cache

from .http_support import client_for, wrap


async def wait_until(predicate: Any) -> None:
    """Yield to the loop until ``predicate()`` holds (state polling, not timing)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


async def test_concurrent_misses_are_coalesced(web_cache: Cache) -> None:
    calls = Counter[str]()
    gate = asyncio.Event()

    @web_cache.response(ttl=60)
    async def slow(request: Request) -> Response:
        calls["slow"] += 1
        await gate.wait()
        return PlainTextResponse(f"body{calls['slow']}")

    app = wrap(Starlette(routes=[Route("/slow", slow)]), web_cache)
    async with client_for(app) as client:
        pending = asyncio.gather(*(client.get("/slow") for _ in range(50)))
        await wait_until(lambda: web_cache.stats()["misses"] == 50)
        gate.set()
        responses = await pending
    assert calls["slow"] == 1
    assert {r.text for r in responses} == {"body1"}
    statuses = Counter(r.headers["cache-status"] for r in responses)
    assert statuses == {
        "asgi-cache; fwd=miss; stored": 1,
        "asgi-cache; hit; detail=coalesced": 49,
    }
    # Counted as Cache-Status says: one miss, 49 hits (not 50 misses and 49 hits).
    stats = web_cache.stats()
    assert (stats["misses"], stats["hits"]) == (1, 49)


async def test_unstorable_leader_releases_waiters_to_the_origin(web_cache: Cache) -> None:
    calls = Counter[str]()
    gate = asyncio.Event()

    @web_cache.response(ttl=60)
    async def personal(request: Request) -> Response:
        calls["n"] += 1
        n = calls["n"]
        if n == 1:
            await gate.wait()
        return PlainTextResponse(f"for caller {n}", headers={"set-cookie": f"id={n}"})

    app = wrap(Starlette(routes=[Route("/p", personal)]), web_cache)
    async with client_for(app) as client:
        pending = asyncio.gather(*(client.get("/p") for _ in range(10)))
        await wait_until(lambda: web_cache.stats()["misses"] == 10)
        gate.set()
        responses = await pending
    assert calls["n"] == 10
    assert len({r.text for r in responses}) == 10  # nobody got someone else's response
    assert {r.headers["x-cache"] for r in responses} == {"MISS"}


async def test_stream_failing_midway_is_not_stored(web_cache: Cache) -> None:
    calls = Counter[str]()

    @web_cache.response(ttl=60)
    async def flaky(request: Request) -> Response:
        calls["n"] += 1
        fail = calls["n"] == 1

        async def body() -> AsyncIterator[bytes]:
            yield b"partial "
            if fail:
                raise RuntimeError("database went away")
            yield b"complete"

        return StreamingResponse(body())

    app = wrap(Starlette(routes=[Route("/s", flaky)]), web_cache)
    async with client_for(app) as client:
        # Starlette 0.37 (the lower bound) raises it inside an ExceptionGroup.
        with pytest.raises((RuntimeError, BaseExceptionGroup)) as raised:
            await client.get("/s")
        error: BaseException = raised.value
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        assert str(error) == "database went away"
        second = await client.get("/s")
        third = await client.get("/s")
    assert second.text == "partial complete"
    assert second.headers["x-cache"] == "MISS"
    assert third.headers["x-cache"] == "HIT"
    assert third.headers["content-length"] == str(len(b"partial complete"))


async def test_client_disconnect_during_a_miss_is_not_stored(web_cache: Cache) -> None:
    calls = Counter[str]()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls["n"] += 1
        await receive()  # the request body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"cache-control", b"max-age=60")],
            }
        )
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        message = await receive()
        rest = b" cut" if message["type"] == "http.disconnect" else b" whole"
        await send({"type": "http.response.body", "body": rest})

    mw = wrap(app, web_cache, cache_all=True)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/d",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "scheme": "http",
    }
    messages = iter(
        [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw(dict(scope), receive, send)
    assert b"".join(m.get("body", b"") for m in sent) == b"half cut"
    # The start went out with the first chunk, before the client left (a streamed miss).
    start = dict(sent[0]["headers"])
    assert start[b"cache-status"] == b"asgi-cache; fwd=miss; detail=streaming"
    async with client_for(mw) as client:
        again = await client.get("/d")
    assert again.headers["x-cache"] == "MISS"
    assert calls["n"] == 2


async def test_large_body_streams_through_unbuffered(web_cache: Cache) -> None:
    chunk_size, chunks = 64 * 1024, 80  # 5 MiB
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"cache-control", b"max-age=60")],
            }
        )
        for i in range(chunks):
            events.append(f"app{i}")
            await send({"type": "http.response.body", "body": bytes(chunk_size), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    mw = wrap(app, web_cache, cache_all=True, max_body_bytes=256 * 1024)
    received = 0
    status_headers: dict[bytes, bytes] = {}

    async def send(message: dict[str, Any]) -> None:
        nonlocal received
        if message["type"] == "http.response.start":
            status_headers.update(message["headers"])
        else:
            received += len(message.get("body", b""))
            if received and not any(e.startswith("client") for e in events):
                events.append("client-first")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/big",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }
    tracemalloc.start()
    try:
        await mw(scope, receive, send)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == chunk_size * chunks
    assert peak < 2 * 1024 * 1024  # never held the 5 MiB body
    # The client had bytes long before the app produced its last chunk.
    assert events.index("client-first") < events.index(f"app{chunks - 1}")
    # Streamed from the first chunk: whether it would fit was not known yet.
    assert status_headers[b"cache-status"] == b"asgi-cache; fwd=miss; detail=streaming"
    async with client_for(mw) as client:
        again = await client.head("/big")
    assert again.headers["x-cache"] == "MISS"


async def test_declared_large_body_passes_at_once(web_cache: Cache) -> None:
    @web_cache.response(ttl=60)
    async def big(request: Request) -> Response:
        return PlainTextResponse("x" * 5000)

    app = wrap(Starlette(routes=[Route("/b", big)]), web_cache, max_body_bytes=1000)
    async with client_for(app) as client:
        first = await client.get("/b")
        second = await client.get("/b")
    assert len(first.text) == 5000
    assert second.headers["cache-status"] == "asgi-cache; fwd=miss; detail=too-large"


async def test_coalesced_waiters_never_get_another_variant(web_cache: Cache) -> None:
    calls = Counter[str]()
    gate = asyncio.Event()

    @web_cache.response(ttl=60)
    async def greet(request: Request) -> Response:
        calls["n"] += 1
        await gate.wait()
        lang = request.headers["accept-language"]
        return PlainTextResponse(f"hello in {lang}", headers={"vary": "accept-language"})

    app = wrap(Starlette(routes=[Route("/g", greet)]), web_cache)
    langs = ["en", "fr", "en", "fr", "fr"]
    async with client_for(app) as client:
        leader = asyncio.ensure_future(client.get("/g", headers={"accept-language": "en"}))
        await wait_until(lambda: calls["n"] == 1)
        pending = asyncio.gather(
            *(client.get("/g", headers={"accept-language": lang}) for lang in langs)
        )
        await wait_until(lambda: web_cache.stats()["misses"] == len(langs) + 1)
        gate.set()
        first, responses = await leader, await pending
    assert first.text == "hello in en"
    assert [r.text for r in responses] == [f"hello in {lang}" for lang in langs]
    assert calls["n"] == 4  # the leader (en) and each fr waiter on its own
    coalesced = [
        r.headers["cache-status"] == "asgi-cache; hit; detail=coalesced" for r in responses
    ]
    assert coalesced == [True, False, True, False, False]


async def test_a_streamed_miss_reaches_the_client_as_it_comes_and_is_stored(
    web_cache: Cache,
) -> None:
    events: list[str] = []

    @web_cache.response(ttl=60)
    async def feed(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for part in (b"first ", b"second ", b"last"):
                events.append(f"app:{part.decode().strip()}")
                yield part

        return StreamingResponse(body(), media_type="text/plain")

    mw = wrap(Starlette(routes=[Route("/feed", feed)]), web_cache)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/feed",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "scheme": "http",
    }
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    connected = asyncio.Event()  # never set: the client stays until the end

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await connected.wait()
        return {"type": "http.disconnect"}  # pragma: no cover - the client never leaves

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            events.append(f"client:{message['body'].decode().strip()}")

    await mw(scope, receive, send)
    async with client_for(mw) as client:
        again = await client.get("/feed")
    # Each chunk reached the client before the app made the next one (no buffering).
    assert events == [
        "app:first",
        "client:first",
        "app:second",
        "client:second",
        "app:last",
        "client:last",
    ]
    assert dict(sent[0]["headers"])[b"cache-status"] == b"asgi-cache; fwd=miss; detail=streaming"
    # The copy was stored at the end: the next request is a hit with the whole body.
    assert again.headers["x-cache"] == "HIT"
    assert again.text == "first second last"
    assert again.headers["content-length"] == str(len("first second last"))


@pytest.mark.parametrize("limit", [1000, 10])
async def test_waiters_of_a_streaming_leader(web_cache: Cache, limit: int) -> None:
    # While the leader streams, identical misses wait for its copy: they are served it when
    # it is stored, or sent to the app as soon as it cannot be (larger than the limit).
    calls = Counter[str]()
    gate = asyncio.Event()

    @web_cache.response(ttl=60)
    async def feed(request: Request) -> Response:
        calls["n"] += 1
        n = calls["n"]

        async def body() -> AsyncIterator[bytes]:
            yield b"part one, "
            if n == 1:
                await gate.wait()
            yield b"part two"

        return StreamingResponse(body(), media_type="text/plain")

    app = wrap(Starlette(routes=[Route("/f", feed)]), web_cache, max_body_bytes=limit)
    async with client_for(app) as client:
        pending = asyncio.gather(*(client.get("/f") for _ in range(5)))
        await wait_until(lambda: web_cache.stats()["misses"] == 5 or calls["n"] > 1)
        gate.set()
        responses = await pending
    assert {r.text for r in responses} == {"part one, part two"}
    statuses = Counter(r.headers["cache-status"] for r in responses)
    if limit == 1000:
        assert calls["n"] == 1
        assert statuses == {
            "asgi-cache; fwd=miss; detail=streaming": 1,
            "asgi-cache; hit; detail=coalesced": 4,
        }
    else:
        assert calls["n"] == 5  # released when the copy was dropped, before the end
        assert statuses == {"asgi-cache; fwd=miss; detail=streaming": 5}
