"""One contract, three backends: memory, fakeredis and the suite's real Redis."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from asgi_cache import BackendError, BackendReplyError
from asgi_cache.backends import Backend, MemoryBackend, RedisBackend
from asgi_cache.backends._wire import decode_deps_header, encode_deps_header

from .redis_server import BEHAVIOUR_OP_TIMEOUT


async def test_set_get_delete_round_trip(backend: Backend) -> None:
    assert await backend.get("ns:d:a") is None
    assert await backend.set("ns:d:a", b"\x00value\xff", 10) is True
    assert await backend.get("ns:d:a") == b"\x00value\xff"
    assert await backend.delete("ns:d:a", "ns:d:missing") == 1
    assert await backend.get("ns:d:a") is None
    assert await backend.delete() == 0


async def test_entries_expire(backend: Backend) -> None:
    await backend.set("ns:d:short", b"x", 0.05)
    await backend.set("ns:d:long", b"y", 30)
    await asyncio.sleep(0.12)
    assert await backend.get("ns:d:short") is None
    assert await backend.get("ns:d:long") == b"y"


async def test_dependencies_gate_reads(backend: Backend) -> None:
    v1, v2 = await backend.versions(["ns:t:a", "ns:t:b"], 10)
    assert v1 != v2
    assert await backend.versions(["ns:t:a"], 10) == [v1]  # stable until invalidated
    deps = [("ns:t:a", v1), ("ns:t:b", v2)]
    assert await backend.set("ns:d:e", b"payload", 10, deps)
    assert await backend.get("ns:d:e") == b"payload"
    assert await backend.invalidate(["ns:t:b"]) == 1
    assert await backend.get("ns:d:e") is None
    # A fresh version is created, never the old one again.
    (v2_new,) = await backend.versions(["ns:t:b"], 10)
    assert v2_new != v2
    assert await backend.invalidate(["ns:t:never"]) == 0


async def test_set_refuses_dependencies_that_moved_on(backend: Backend) -> None:
    (v,) = await backend.versions(["ns:t:a"], 10)
    await backend.invalidate(["ns:t:a"])  # invalidated while "loading"
    assert await backend.set("ns:d:e", b"stale", 10, [("ns:t:a", v)]) is False
    assert await backend.get("ns:d:e") is None


async def test_dependencies_outlive_their_entries(backend: Backend) -> None:
    (v,) = await backend.versions(["ns:t:a"], 0.05)
    assert await backend.set("ns:d:e", b"x", 0.4, [("ns:t:a", v)])
    await asyncio.sleep(0.15)  # past the tag's own initial expiry: set() extended it
    assert await backend.get("ns:d:e") == b"x"
    assert await backend.versions(["ns:t:a"], 0.05) == [v]


async def test_raw_bookkeeping(backend: Backend) -> None:
    assert await backend.get_raw("ns:v:x") is None
    await backend.set_raw("ns:v:x", b"accept-language", 10)
    assert await backend.get_raw("ns:v:x") == b"accept-language"


async def test_delete_prefix(backend: Backend) -> None:
    for i in range(25):
        await backend.set(f"ns:d:users:{i}:profile", b"x", 10)
    await backend.set("ns:d:orders:1", b"x", 10)
    await backend.set("other:d:users:1", b"x", 10)
    assert await backend.delete_prefix("ns:d:users:", batch=7) == 25
    assert await backend.get("ns:d:orders:1") == b"x"
    assert await backend.get("other:d:users:1") == b"x"
    assert await backend.get("ns:d:users:3:profile") is None


async def test_delete_prefix_treats_glob_characters_literally(backend: Backend) -> None:
    await backend.set("ns:d:a*b", b"x", 10)
    await backend.set("ns:d:aXb", b"x", 10)
    assert await backend.delete_prefix("ns:d:a*") == 1
    assert await backend.get("ns:d:aXb") == b"x"


async def test_locks(backend: Backend) -> None:
    assert await backend.acquire_lock("ns:l:k", "t1", 10)
    assert not await backend.acquire_lock("ns:l:k", "t2", 10)
    assert not await backend.extend_lock("ns:l:k", "t2", 10)
    assert await backend.extend_lock("ns:l:k", "t1", 10)
    assert not await backend.release_lock("ns:l:k", "t2")
    assert await backend.release_lock("ns:l:k", "t1")
    assert await backend.acquire_lock("ns:l:k", "t2", 0.05)
    await asyncio.sleep(0.12)
    assert await backend.acquire_lock("ns:l:k", "t3", 10)  # the expired lock is free again


async def test_ping_and_info(backend: Backend, request: pytest.FixtureRequest) -> None:
    assert await backend.ping() >= 0
    if "fakeredis" in request.node.name:
        pytest.skip("fakeredis does not implement INFO")
    info = await backend.info()
    assert {"backend", "used_memory", "maxmemory", "maxmemory_policy"} <= set(info)


@pytest.mark.parametrize("deps", [[], [("ns:t:users:1", "abc"), ("ns:t:*", "0123456789abcdef")]])
def test_deps_header_round_trip(deps: list[tuple[str, str]]) -> None:
    raw = encode_deps_header(deps) + b"entry"
    parsed = decode_deps_header(raw)
    assert parsed is not None
    assert parsed[0] == deps
    assert raw[parsed[1] :] == b"entry"


@pytest.mark.parametrize("raw", [b"", b"\xacD", b"\xacD\x00\x01\x00\x05ab", b"plain"])
def test_bad_deps_headers_are_rejected(raw: bytes) -> None:
    assert decode_deps_header(raw) is None


async def test_every_key_redis_holds_has_an_expiry(redis_url: str) -> None:
    backend = RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    versions = await backend.versions(["ns:t:a", "ns:t:b"], 5)
    await backend.set("ns:d:x", b"x", 5, list(zip(["ns:t:a", "ns:t:b"], versions, strict=True)))
    await backend.set_raw("ns:v:x", b"x", 5)
    await backend.acquire_lock("ns:l:x", "t", 5)
    client = aioredis.Redis.from_url(redis_url)
    keys = await client.keys("*")
    assert len(keys) == 5
    for key in keys:
        assert await client.pttl(key) > 0, key
    await client.aclose()
    await backend.aclose()


async def test_memory_backend_is_bounded_by_entries_and_bytes() -> None:
    b = MemoryBackend(max_entries=3, max_bytes=10_000)
    for i in range(5):
        await b.set(f"k{i}", b"x", 10)
    assert len(b) == 3
    assert await b.get("k0") is None
    assert await b.get("k4") == b"x"
    assert b.evictions == 2

    small = MemoryBackend(max_entries=100, max_bytes=1000)
    await small.set("a", b"x" * 300, 10)
    await small.set("b", b"x" * 300, 10)
    await small.get("a")  # touch: a becomes more recently used than b
    await small.set("c", b"x" * 300, 10)  # over budget: evict the least recently used (b)
    assert await small.get("a") is not None
    assert await small.get("b") is None
    assert small.used_bytes <= 1000
    assert await small.set("huge", b"x" * 5000, 10) is False


async def test_memory_backend_sweeps_expired_entries() -> None:
    now = [0.0]
    b = MemoryBackend(clock=lambda: now[0])
    await b.set("old", b"x", 1)
    (v,) = await b.versions(["t"], 1)
    now[0] = 5.0
    for i in range(256):  # writes trigger a sweep of expired entries and tags
        await b.set(f"k{i}", b"y", 100)
    assert "old" not in list(b._data)
    assert await b.versions(["t"], 1) != [v]
    assert await b.delete("k1", "t") == 2


async def test_redis_errors_are_mapped_with_their_cause() -> None:
    # The boundary raises BackendError *from* what redis-py raised: the cause stays in the
    # traceback for whoever debugs the outage.
    unreachable = RedisBackend("redis://127.0.0.1:1/0", connect_timeout=0.5, op_timeout=1.0)
    try:
        with pytest.raises(BackendError) as info:
            await unreachable.ping()
    finally:
        await unreachable.aclose()
    assert isinstance(info.value.__cause__, (RedisError, OSError))
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    backend = RedisBackend(client=client, owns_client=True)
    try:
        await client.rpush("ns:t:list", "x")  # a foreign value under a tag key
        with pytest.raises(BackendReplyError) as reply:
            await backend.versions(["ns:t:list"], 10)
    finally:
        await backend.aclose()
    assert isinstance(reply.value.__cause__, ResponseError)
