"""Stored gzip bodies: sent as they are to gzip clients, byte-identical identity to others."""

from __future__ import annotations

import dataclasses
import gzip
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import asgi_cache.http.middleware as middleware_module
from asgi_cache import Cache, CacheMiddleware, ConfigurationError
from asgi_cache._entries import EntryKind, decode_entry, encode_entry
from asgi_cache.backends._wire import decode_deps_header
from asgi_cache.http.encoding import accepts_gzip, add_vary_accept_encoding, gzip_etag
from asgi_cache.http.responses import StoredResponse

from .http_support import Clock, backend_for, make_cache

BODY = b'{"items":[' + b",".join(b'{"id":%d,"name":"item number %d"}' % (i, i) for i in range(40))
BODY += b"]}"


@dataclass
class Reply:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""


async def call(app: Any, path: str, *headers: tuple[bytes, bytes], method: str = "GET") -> Reply:
    """One request through ASGI with exactly ``headers`` (no client adds any of its own)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.com"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("example.com", 80),
    }
    reply = Reply()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            reply.status = message["status"]
            for name, value in message["headers"]:
                assert name not in reply.headers, f"duplicate header {name!r}"
                reply.headers[name] = value
        else:
            reply.body += message.get("body", b"")

    await app(scope, receive, send)
    return reply


class Origin:
    def __init__(self) -> None:
        self.calls = 0
        self.body = BODY
        self.headers: dict[str, str] = {"content-type": "application/json"}

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        return Response(self.body, headers=self.headers)


@pytest.fixture
async def web_cache(redis_url: str) -> AsyncIterator[Cache]:
    cache = make_cache(backend_for("redis", redis_url))
    yield cache
    await cache.backend.aclose()


def app_for(cache: Cache, origin: Origin, **options: Any) -> CacheMiddleware:
    async def endpoint(request: Request) -> Response:
        return await origin(request)

    route = cache.response(ttl=60)(endpoint)
    app = Starlette(routes=[Route("/data", route)])
    return CacheMiddleware(app, cache=cache, **options)


GZIP = (b"accept-encoding", b"gzip, deflate")


async def test_identity_and_gzip_clients_both_served_from_one_entry(web_cache: Cache) -> None:
    origin = Origin()
    app = app_for(web_cache, origin)
    miss = await call(app, "/data")
    assert miss.headers[b"x-cache"] == b"MISS"
    assert miss.body == BODY
    assert b"content-encoding" not in miss.headers
    assert miss.headers[b"content-length"] == b"%d" % len(BODY)
    assert miss.headers[b"vary"] == b"accept-encoding"
    etag = miss.headers[b"etag"]

    plain = await call(app, "/data")  # no Accept-Encoding at all
    assert plain.headers[b"x-cache"] == b"HIT"
    assert plain.body == BODY  # byte-identical to what the app sent
    assert b"content-encoding" not in plain.headers
    assert plain.headers[b"content-length"] == b"%d" % len(BODY)
    assert plain.headers[b"etag"] == etag
    assert plain.headers[b"vary"] == b"accept-encoding"

    coded = await call(app, "/data", GZIP)
    assert coded.headers[b"x-cache"] == b"HIT"
    assert coded.headers[b"content-encoding"] == b"gzip"
    assert len(coded.body) < len(BODY) // 2
    assert gzip.decompress(coded.body) == BODY
    assert coded.headers[b"content-length"] == b"%d" % len(coded.body)
    assert coded.headers[b"etag"] == gzip_etag(etag) != etag
    assert coded.headers[b"vary"] == b"accept-encoding"

    for refused in (b"gzip;q=0", b"br", b"identity", b"gzip;q=0, *"):
        reply = await call(app, "/data", (b"accept-encoding", refused))
        assert reply.body == BODY, refused
        assert b"content-encoding" not in reply.headers
    star = await call(app, "/data", (b"accept-encoding", b"*"))
    assert gzip.decompress(star.body) == BODY
    assert origin.calls == 1


async def test_a_gzip_miss_and_conditional_requests_per_representation(web_cache: Cache) -> None:
    origin = Origin()
    app = app_for(web_cache, origin)
    miss = await call(app, "/data", GZIP)
    assert miss.headers[b"content-encoding"] == b"gzip"
    assert gzip.decompress(miss.body) == BODY
    gz_etag = miss.headers[b"etag"]
    plain_etag = (await call(app, "/data")).headers[b"etag"]

    same = await call(app, "/data", GZIP, (b"if-none-match", gz_etag))
    assert same.status == 304
    assert same.body == b""
    assert same.headers[b"etag"] == gz_etag
    # The identity representation's ETag does not validate the gzip one, and vice versa.
    other = await call(app, "/data", GZIP, (b"if-none-match", plain_etag))
    assert other.status == 200
    assert (await call(app, "/data", (b"if-none-match", gz_etag))).status == 200
    assert (await call(app, "/data", (b"if-none-match", plain_etag))).status == 304

    head = await call(app, "/data", GZIP, method="HEAD")
    assert head.body == b""
    assert head.headers[b"content-length"] == miss.headers[b"content-length"]
    head_plain = await call(app, "/data", method="HEAD")
    assert head_plain.headers[b"content-length"] == b"%d" % len(BODY)
    assert origin.calls == 1


async def test_stored_bytes_shrink_in_redis(redis_url: str) -> None:
    cache = make_cache(backend_for("redis", redis_url))
    client = aioredis.Redis.from_url(redis_url)
    try:
        await call(app_for(cache, Origin()), "/data")
        sizes = [await client.strlen(k) async for k in client.scan_iter("web:h:*")]
        assert len(sizes) == 1
        assert sizes[0] < len(BODY) // 2  # the whole entry, headers and tag versions included

        await client.flushall()
        await call(app_for(cache, Origin(), compress_min_bytes=None), "/data")
        sizes = [await client.strlen(k) async for k in client.scan_iter("web:h:*")]
        assert sizes[0] > len(BODY)
    finally:
        await client.aclose()
        await cache.backend.aclose()


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-type": "application/json"}, b'{"a": 1}'),  # below the minimum
        ({"content-type": "image/png"}, BODY),  # not text-like
        ({"content-type": "application/json", "cache-control": "no-transform"}, BODY),
        ({"content-type": "application/json", "content-encoding": "br"}, BODY),  # app's own
        ({"content-type": "text/plain"}, random.Random(7).randbytes(1024)),  # does not shrink
    ],
)
async def test_bodies_left_as_sent(web_cache: Cache, headers: dict[str, str], body: bytes) -> None:
    origin = Origin()
    origin.headers = headers
    origin.body = body
    app = app_for(web_cache, origin)
    await call(app, "/data", GZIP)
    hit = await call(app, "/data", GZIP)
    assert hit.headers[b"x-cache"] == b"HIT"
    assert hit.body == body
    assert hit.headers.get(b"content-encoding", b"") == headers.get("content-encoding", "").encode()
    assert b"vary" not in hit.headers


async def test_the_memory_backend_keeps_bodies_as_sent() -> None:
    cache = make_cache(backend_for("memory"))
    origin = Origin()
    app = app_for(cache, origin)
    await call(app, "/data", GZIP)
    hit = await call(app, "/data", GZIP)
    assert hit.headers[b"x-cache"] == b"HIT"
    assert hit.body == BODY
    assert b"content-encoding" not in hit.headers


async def test_origin_vary_is_extended_not_replaced(web_cache: Cache) -> None:
    origin = Origin()
    origin.headers = {"content-type": "text/html", "vary": "Accept-Language"}
    app = app_for(web_cache, origin)
    await call(app, "/data", (b"accept-language", b"fr"))
    hit = await call(app, "/data", (b"accept-language", b"fr"), GZIP)
    assert hit.headers[b"x-cache"] == b"HIT"
    assert hit.headers[b"vary"] == b"Accept-Language, accept-encoding"
    assert gzip.decompress(hit.body) == BODY
    # The added Vary does not split the cache: other encodings share the entry.
    assert (await call(app, "/data", (b"accept-language", b"fr"))).headers[b"x-cache"] == b"HIT"
    assert origin.calls == 1


async def test_revalidated_gzip_entry_keeps_its_body(
    web_cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(middleware_module, "time", clock)

    async def endpoint(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(status_code=304, headers={"etag": '"v1"'})
        return Response(BODY, media_type="application/json", headers={"etag": '"v1"'})

    app = CacheMiddleware(
        Starlette(routes=[Route("/data", web_cache.response(ttl=10)(endpoint))]),
        cache=web_cache,
    )
    await call(app, "/data")
    clock.advance(20)
    revalidated = await call(app, "/data", GZIP)
    assert revalidated.headers[b"cache-status"].startswith(b"asgi-cache; fwd=stale; fwd-status=304")
    assert revalidated.headers[b"etag"] == b'"v1-gzip"', revalidated
    assert gzip.decompress(revalidated.body) == BODY
    again = await call(app, "/data")
    assert again.headers[b"x-cache"] == b"HIT"
    assert again.body == BODY
    assert again.headers[b"etag"] == b'"v1"'


async def test_a_corrupt_gzip_body_goes_to_the_origin(redis_url: str) -> None:
    cache = make_cache(backend_for("redis", redis_url))
    client = aioredis.Redis.from_url(redis_url)
    origin = Origin()
    app = app_for(cache, origin)
    try:
        await call(app, "/data")
        (key,) = [k async for k in client.scan_iter("web:h:*")]
        raw = await client.get(key)
        assert raw is not None
        ttl = await client.pttl(key)
        # The gzip trailer broken inside a well-formed entry (the entry's own checksum would
        # catch a broken copy of its bytes before the body is looked at).
        parsed = decode_deps_header(raw)
        assert parsed is not None
        entry = decode_entry(raw[parsed[1] :], key.decode())
        broken = dataclasses.replace(entry, body=entry.body[:-20] + b"\x00" * 20)
        await client.set(key, raw[: parsed[1]] + encode_entry(broken, key.decode()), px=ttl)
        reply = await call(app, "/data")
        assert reply.body == BODY
        assert reply.headers[b"cache-status"] == b"asgi-cache; fwd=miss; detail=corrupt"
        assert origin.calls == 2
    finally:
        await client.aclose()
        await cache.backend.aclose()


def test_accept_encoding_parsing() -> None:
    assert accepts_gzip("gzip")
    assert accepts_gzip("br;q=1.0, gzip;q=0.5")
    assert accepts_gzip("X-GZIP")
    assert accepts_gzip("*;q=0.1")
    assert not accepts_gzip("")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip;q=bad")
    assert not accepts_gzip("*;q=0")
    assert not accepts_gzip("gzip;q=0, *")  # gzip refused by name wins over the wildcard


def test_vary_and_etag_helpers() -> None:
    headers = [(b"vary", b"*")]
    add_vary_accept_encoding(headers)
    assert headers == [(b"vary", b"*")]
    headers = [(b"vary", b"Accept-Encoding")]
    add_vary_accept_encoding(headers)
    assert headers == [(b"vary", b"Accept-Encoding")]
    assert gzip_etag(b'W/"x"') == b'W/"x-gzip"'
    assert gzip_etag(b"unquoted") == b"unquoted"


def test_compress_min_bytes_is_validated() -> None:
    cache = Cache()
    for bad in (0, -1, True, "500"):
        with pytest.raises(ConfigurationError, match="compress_min_bytes"):
            CacheMiddleware(Starlette(), cache=cache, compress_min_bytes=bad)  # type: ignore[arg-type]


def test_stored_form_round_trips_and_rejects_foreign_blocks() -> None:
    stored = StoredResponse(
        status=200,
        headers=[(b"content-type", b"text/plain"), (b"x-a", b"")],
        body=b"body",
        created_at=1.0,
        fresh_until=2.0,
        stale_until=3.0,
        etag=b'"e"',
    )
    entry = stored.to_entry()
    back = StoredResponse.from_entry(entry)
    assert back is not None
    assert (back.headers, back.etag, back.body) == (stored.headers, b'"e"', b"body")
    empty = dataclasses.replace(stored, headers=[], etag=b"")
    decoded = StoredResponse.from_entry(empty.to_entry())
    assert decoded is not None
    assert (decoded.headers, decoded.etag) == ([], b"")
    for extra in (b"", b"\x00" + entry.extra[1:], entry.extra[:20], entry.extra + b"\x00odd"):
        assert StoredResponse.from_entry(dataclasses.replace(entry, extra=extra)) is None
    assert StoredResponse.from_entry(dataclasses.replace(entry, kind=EntryKind.JSON)) is None


async def test_vary_names_are_merged_case_insensitively(web_cache: Cache) -> None:
    # GZipMiddleware inside appends "Accept-Encoding" to the app's own "Accept-Encoding";
    # the policy names accept-encoding and accept-language in another case. The cached
    # answer names each once, in one field (RFC 9110 section 12.5.5).
    async def endpoint(request: Request) -> Response:
        return Response(BODY, media_type="application/json", headers={"vary": "Accept-Encoding"})

    policy = web_cache.response(ttl=60, vary=["ACCEPT-ENCODING", "Accept-Language"])
    gzip_inside = [Middleware(GZipMiddleware, minimum_size=10)]
    inner = Starlette(routes=[Route("/v", policy(endpoint))], middleware=gzip_inside)
    app = CacheMiddleware(inner, cache=web_cache)
    miss = await call(app, "/v", GZIP)  # call() refuses a header sent twice
    hit = await call(app, "/v", GZIP)
    assert hit.headers[b"x-cache"] == b"HIT"
    assert miss.headers[b"vary"] == hit.headers[b"vary"] == b"Accept-Encoding, accept-language"
    assert gzip.decompress(hit.body) == BODY
