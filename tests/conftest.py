"""Fixtures shared by the whole suite: real Redis servers, fakeredis and caches on each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest
import redis.asyncio as aioredis

import asgi_cache.http.exchange as exchange_module
from asgi_cache import Cache, CacheSettings
from asgi_cache.backends import Backend, MemoryBackend, RedisBackend

from .http_support import Clock, backend_for, make_cache
from .redis_server import INSTALL_HINT, RedisServer, redis_binary

BACKENDS = ["memory", "fakeredis", "redis"]
CONTRACT_OP_TIMEOUT = 2.0


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's shared real Redis, started by the suite on a free port."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    server = RedisServer(binary)
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the shared real Redis, emptied after the test."""
    yield redis_server.url
    if redis_server.proc is None:  # a test stopped it: bring it back for the next one
        redis_server.start()
    redis_server.command("FLUSHALL")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A real Redis for this test alone, for tests that kill, pause or reconfigure it."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    server = RedisServer(binary)
    server.start()
    yield server
    server.close()


def make_backend(kind: str, request: pytest.FixtureRequest) -> Backend:
    """A fresh backend of ``kind``: memory, fakeredis or redis (the suite's own server)."""
    if kind == "memory":
        return MemoryBackend()
    if kind == "fakeredis":
        return RedisBackend(
            client=fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), owns_client=True
        )
    url = request.getfixturevalue("redis_url")
    # Contract tests are about behaviour, not time budgets: a generous op timeout keeps a
    # busy machine from turning a slow answer into a fail-open miss. Fault tests set their own.
    return RedisBackend(url, op_timeout=CONTRACT_OP_TIMEOUT)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each backend in turn, so all obey one contract."""
    b = make_backend(request.param, request)
    yield b
    await b.aclose()


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """A started :class:`Cache` on each backend in turn (no TTL jitter)."""
    c = Cache(
        CacheSettings(namespace="test", ttl_jitter=0.0),
        backend=make_backend(request.param, request),
    )
    async with c:
        yield c
    await c.backend.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client on the suite's Redis, for inspecting what the cache wrote."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def web_cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """A cache for the HTTP tests, on memory and on the suite's Redis."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    cache = make_cache(backend_for(request.param, url))
    yield cache
    await cache.backend.aclose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A settable clock standing in for the middleware's ``time`` module."""
    c = Clock()
    monkeypatch.setattr(exchange_module, "time", c)
    return c
