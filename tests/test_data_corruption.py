"""Corrupt data is always a miss: whatever any key of the namespace holds, nothing breaks.

A property-based test (hypothesis) on the suite's own redis-server: it fills a namespace the
way an app does (a value, a cache-aside model, a cached page with its Vary memory and tags),
then writes random bytes, truncated, extended or altered copies, entries with impossible
times and wrong Redis types into every key kind (entries, tag versions, the namespace tag,
Vary memory, locks, notify keys, the L1 channel key) and drives the data API,
``get_or_load``, ``cache.aside`` and the middleware. Reads are misses or the true value,
writes fail open, routes answer 200 from the origin, ``inspect`` describes every key, and no
raw exception ever escapes.

Bounded: a fixed number of examples, derandomized (a fixed seed) when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from asgi_cache import Cache, CacheMiddleware
from asgi_cache._entries import CorruptEntry, decode_entry, encode_entry
from asgi_cache.backends._wire import decode_deps_header
from asgi_cache.entry_info import describe_entry

from .redis_server import BEHAVIOUR_OP_TIMEOUT

pytestmark = pytest.mark.redis

NS = "corrupt"
EXAMPLES = 150


class Item(BaseModel):
    id: int
    name: str
    when: dt.datetime


ITEM = Item(id=1, name="one", when=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
RAW = {"a": 1, "b": [1, 2]}


class World:
    """One app (a cached page, a cache-aside route, an invalidating PUT) on one cache."""

    def __init__(self, url: str) -> None:
        self.cache = Cache.from_url(
            url,
            namespace=NS,
            ttl_jitter=0.0,
            lock_timeout=0.05,  # a foreign lock value makes misses wait this long
            op_timeout=2.0,  # a busy machine must not turn answers into fail-open misses
            breaker_threshold=0,
        )
        self.loads = 0
        self.origin = 0
        cache = self.cache
        app = FastAPI()

        async def load_item(item_id: int) -> Item:
            self.loads += 1
            return ITEM.model_copy(update={"id": item_id})

        self.load_item = load_item
        item_dep = cache.aside(load_item, key="items:{item_id}:model", tags=["items:{item_id}"])

        @app.get("/items/{item_id}")
        @cache.response(ttl=60, tags=["items:{item_id}"], vary=["accept-language"])
        async def page(item_id: int) -> dict[str, Any]:
            self.origin += 1
            return {"id": item_id}

        @app.put("/items/{item_id}")
        @cache.invalidates("items:{item_id}")
        async def update(item_id: int) -> dict[str, Any]:
            return {"id": item_id}

        @app.get("/aside/{item_id}")
        async def aside(item: Item = Depends(item_dep)) -> Item:  # noqa: B008
            return item

        app.add_middleware(CacheMiddleware, cache=cache)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    async def fill(self) -> None:
        """What an app leaves in Redis: a value, a model, a page, its Vary memory, tags."""
        assert await self.cache.set("items:1:raw", RAW, tags=["items:1"])
        await self.cache.get_or_load("items:1:model", lambda: self.load_item(1), returns=Item)
        for _ in range(2):
            assert (await self.http.get("/items/1", headers={"accept-language": "en"})).is_success
        assert (await self.http.get("/aside/1")).is_success

    async def drive(self) -> None:
        """Every read and write path; each must answer, none may raise."""
        cache = self.cache
        assert await cache.get("items:1:raw") in (None, RAW)
        assert await cache.get("items:1:model", returns=Item) in (None, ITEM)
        assert isinstance(await cache.set("items:2:raw", RAW, tags=["items:1"]), bool)
        loaded = await cache.get_or_load("items:1:model", lambda: self.load_item(1), returns=Item)
        assert loaded == ITEM
        assert type(loaded) is Item
        for _ in range(2):
            page = await self.http.get("/items/1", headers={"accept-language": "en"})
            assert page.status_code == 200, page.text
            assert page.json() == {"id": 1}
            aside = await self.http.get("/aside/1")
            assert aside.status_code == 200, aside.text
            assert Item.model_validate(aside.json()) == ITEM
        assert (await self.http.put("/items/1")).status_code == 200
        assert isinstance(await cache.invalidate_tags("items:1"), int)
        assert isinstance(await cache.delete("items:1:raw"), int)
        assert (await self.http.get("/items/1")).status_code == 200
        assert cache.stats()["hits"] >= 0


@dataclasses.dataclass(frozen=True)
class Corruption:
    """What to do to one key."""

    how: str
    data: Any = None

    async def apply(self, client: aioredis.Redis, key: bytes, full_key: str) -> None:
        current = await client.get(key) if await client.type(key) == b"string" else None
        if self.how == "bytes":
            await client.set(key, self.data)
        elif self.how == "type":
            await client.delete(key)
            if self.data == "list":
                await client.rpush(key, b"\xff", b"x")
            elif self.data == "hash":
                await client.hset(key, b"f", b"\xff")
            elif self.data == "set":
                await client.sadd(key, b"\xfe")
            elif self.data == "zset":
                await client.zadd(key, {b"m": 1.0})
            else:
                await client.xadd(key, {b"f": b"v"})
        elif not current:
            await client.set(key, b"\xac")  # nothing to alter: a one-byte foreign value
        elif self.how == "truncate":
            await client.set(key, current[: self.data % max(1, len(current))])
        elif self.how == "extend":
            await client.set(key, current + self.data)
        elif self.how == "flip":
            i, x = self.data
            i %= len(current)
            await client.set(key, current[:i] + bytes([current[i] ^ x]) + current[i + 1 :])
        else:  # "times": a well-formed entry (valid checksum) whose times are impossible
            await client.set(key, _with_times(current, full_key, self.data))


def _with_times(raw: bytes, full_key: str, times: tuple[str, float]) -> bytes:
    parsed = decode_deps_header(raw)
    head, offset = (b"", 0) if parsed is None else (raw[: parsed[1]], parsed[1])
    try:
        entry = decode_entry(raw[offset:], full_key)
    except CorruptEntry:
        return raw + b"\x00"
    field, value = times
    return head + encode_entry(dataclasses.replace(entry, **{field: value}), full_key)


TIMES = st.tuples(
    st.sampled_from(["created_at", "fresh_until", "stale_until", "load_time"]),
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e300, 2e11]),
)
CORRUPTIONS = st.one_of(
    st.binary(max_size=200).map(lambda b: Corruption("bytes", b)),
    st.sampled_from(["list", "hash", "set", "zset", "stream"]).map(lambda t: Corruption("type", t)),
    st.integers(0, 10_000).map(lambda n: Corruption("truncate", n)),
    st.binary(min_size=1, max_size=50).map(lambda b: Corruption("extend", b)),
    st.tuples(st.integers(0, 10_000), st.integers(1, 255)).map(lambda d: Corruption("flip", d)),
    TIMES.map(lambda t: Corruption("times", t)),
)


async def _key_kinds(client: aioredis.Redis, cache: Cache) -> list[bytes]:
    """Every key the app left, plus the names of the keys the cache uses only briefly or as
    channels (locks, notify channels, the L1 channel), one list per kind."""
    keys = cache.keys
    found = sorted([k async for k in client.scan_iter(match=f"{NS}:*")])
    data = keys.data("items:1:model")
    http_keys = [k.decode() for k in found if k.startswith(f"{NS}:h:".encode())]
    extra = [keys.lock(data), keys.notify(data), keys.l1_channel(), keys.l1_channel(data)]
    extra += [keys.lock(k) for k in http_keys]
    return found + [k.encode() for k in extra]


def _hypothesis_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        derandomize=bool(os.environ.get("CI")),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def test_whatever_any_key_holds_reads_miss_writes_fail_open_routes_answer(
    redis_url: str,
) -> None:
    with asyncio.Runner() as runner:
        world = World(redis_url)
        client = aioredis.Redis.from_url(redis_url)

        async def reset() -> list[bytes]:
            stale = [k async for k in client.scan_iter(match=f"{NS}:*")]
            if stale:
                await client.delete(*stale)
            await world.fill()
            return await _key_kinds(client, world.cache)

        async def example(picks: list[tuple[bytes, Corruption]]) -> None:
            for key, corruption in picks:
                await corruption.apply(client, key, key.decode("utf-8", "replace"))
            for key, _ in picks:  # what `asgi-cache inspect` shows of each
                value = await client.get(key) if await client.type(key) == b"string" else None
                describe_entry(key.decode(), value, -1, world.cache.keys, world.cache.serializer)
            await world.drive()

        keys = runner.run(reset())

        @_hypothesis_settings()
        @given(st.data())
        def check(data: st.DataObject) -> None:
            nonlocal keys
            picks = data.draw(
                st.lists(st.tuples(st.sampled_from(keys), CORRUPTIONS), min_size=1, max_size=4)
            )
            try:
                runner.run(example(picks))
            finally:
                keys = runner.run(reset())

        try:
            check()
        finally:
            runner.run(client.aclose())
            runner.run(world.http.aclose())
            runner.run(world.cache.aclose())
    assert world.loads > 0


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda k: k.tag("items:1"), id="tag version"),
        pytest.param(lambda k: k.all_tag, id="namespace tag"),
    ],
)
async def test_a_tag_version_that_is_not_utf8_is_a_miss_not_a_unicode_error(
    redis_url: str, corrupt: Callable[[Any], str]
) -> None:
    cache = Cache.from_url(
        redis_url,
        op_timeout=BEHAVIOUR_OP_TIMEOUT,
        namespace=NS,
        ttl_jitter=0.0,
        breaker_threshold=0,
    )
    client = aioredis.Redis.from_url(redis_url)
    loads = 0

    async def load() -> dict[str, int]:
        nonlocal loads
        loads += 1
        return {"n": loads}

    try:
        assert await cache.get_or_load("items:1:x", load, tags=["items:1"]) == {"n": 1}
        await client.set(corrupt(cache.keys), b"\xff\xfe garbage")
        # Was UnicodeDecodeError from the tag read: now the entry is a miss, the loader
        # runs, and the store under a version that matches nothing is refused.
        assert await cache.get_or_load("items:1:x", load, tags=["items:1"]) == {"n": 2}
        assert await cache.set("items:1:y", "v", tags=["items:1"]) is False
        assert await cache.get("items:1:x") is None
        assert await cache.invalidate_tags("items:1") >= 0
    finally:
        await client.aclose()
        await cache.aclose()
