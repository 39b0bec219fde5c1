"""Write-behind: atomic cache + log writes, the worker, versions, acknowledgement, retries.

Runs on ``memory://`` and on the suite's real Redis (the same semantics within a process);
what only Redis can show (durability, several processes) is in the other write-behind tests.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from asgi_cache import (
    BackendError,
    BacklogFullError,
    Cache,
    CacheSettings,
    Change,
    ConfigurationError,
    WriteBehind,
)
from asgi_cache.backends import MemoryBackend, RedisBackend
from asgi_cache.backends._streams import StreamKeys

from .redis_server import BEHAVIOUR_OP_TIMEOUT


class Database:
    """A handler that records every batch and applies changes as an upsert on
    (key, version), the way the docs say a handler should."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, Any]] = {}
        self.batches: list[list[Change]] = []
        self.fail_keys: set[str] = set()
        self.calls = 0

    async def __call__(self, batch: list[Change]) -> None:
        self.calls += 1
        if any(c.key in self.fail_keys for c in batch):
            raise RuntimeError(f"cannot save {[c.key for c in batch]}")
        self.batches.append(list(batch))
        for c in batch:
            held = self.rows.get(c.key)
            if held is None or held[0] < c.version:
                self.rows[c.key] = (c.version, None if c.deleted else c.value)


@pytest.fixture(params=["memory", "redis"])
async def wcache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """A started cache on memory and on the suite's Redis, with a generous op budget."""
    if request.param == "memory":
        backend: Any = MemoryBackend()
    else:
        backend = RedisBackend(
            request.getfixturevalue("redis_url"), op_timeout=BEHAVIOUR_OP_TIMEOUT
        )
    cache = Cache(CacheSettings(namespace="wb", ttl_jitter=0.0), backend=backend)
    async with cache:
        yield cache
    await backend.aclose()


async def test_write_caches_at_once_and_the_worker_applies_in_batches(wcache: Cache) -> None:
    db = Database()
    wb = wcache.write_behind("visits", handler=db, batch_size=10)
    versions = [await wb.write(f"pages:{i % 3}:views", i) for i in range(9)]
    for key in range(3):  # each key's versions grow with every write of it
        assert versions[key] < versions[key + 3] < versions[key + 6]
    assert await wcache.get("pages:2:views") == 8  # cached before the database saw it
    assert db.calls == 0
    assert await wb.drain() == 9
    # One batch; the newest change of each key only (six database writes saved).
    assert db.calls == 1
    assert sorted((c.key, c.version, c.value) for c in db.batches[0]) == [
        ("pages:0:views", versions[6], 6),
        ("pages:1:views", versions[7], 7),
        ("pages:2:views", versions[8], 8),
    ]
    status = await wb.probe()
    assert (status["written"], status["applied"], status["coalesced"]) == (9, 3, 6)
    assert (status["backlog"], status["pending"]) == (0, 0)
    assert wcache.stats()["write_behind"]["visits"]["applied"] == 3
    assert (await wcache.health())["write_behind"]["visits"]["backlog"] == 0


async def test_delete_removes_the_entry_and_reaches_the_handler(wcache: Cache) -> None:
    db = Database()
    wb = wcache.write_behind("profiles", handler=db)
    first = await wb.write("users:1:name", "ada", tags=["users:1"])
    version = await wb.delete("users:1:name")
    assert version > first
    assert await wcache.get("users:1:name") is None
    await wb.drain()
    (change,) = db.batches[0]
    assert (change.deleted, change.version, change.value) == (True, version, None)
    assert db.rows == {"users:1:name": (version, None)}


async def test_without_coalescing_every_change_reaches_the_handler(wcache: Cache) -> None:
    db = Database()
    wb = wcache.write_behind("log", handler=db, coalesce=False)
    versions = [await wb.write("k", i) for i in range(4)]
    await wb.drain()
    assert [c.version for b in db.batches for c in b] == versions == sorted(versions)
    assert len({c.id for b in db.batches for c in b}) == 4  # one idempotency id per change


async def test_only_what_the_handler_committed_is_acknowledged(wcache: Cache) -> None:
    seen: list[str] = []

    async def half(batch: list[Change]) -> list[Change]:
        seen.extend(c.key for c in batch)
        return [c for c in batch if c.key != "b"] if len(seen) < 4 else list(batch)

    wb = wcache.write_behind("partial", handler=half, retry_backoff=0.01)
    for key in "abc":
        await wb.write(key, 1)
    await wb.drain()
    assert seen == ["a", "b", "c", "b"]  # b was delivered again, alone
    assert (await wb.probe())["backlog"] == 0
    assert wb.status()["retries"] == 1


async def test_a_poison_change_goes_to_the_dead_letter_and_the_rest_flows(wcache: Cache) -> None:
    db = Database()
    db.fail_keys = {"bad"}
    wb = wcache.write_behind("poison", handler=db, max_deliveries=3, retry_backoff=0.01)
    versions = {key: await wb.write(key, key.upper()) for key in ("a", "bad", "b")}
    await wb.drain()
    assert set(db.rows) == {"a", "b"}
    (dead,) = await wb.dead_letters()
    assert dead.change is not None
    assert (dead.change.key, dead.deliveries) == ("bad", 3)
    assert dead.reason == "RuntimeError: cannot save ['bad']"
    status = await wb.probe()
    assert (status["dead_letters"], status["dead_lettered"], status["backlog"]) == (1, 1, 0)
    # Fixed the database: the replayed change keeps its version and idempotency id.
    db.fail_keys = set()
    assert await wb.replay() == 1
    await wb.drain()
    assert db.rows["bad"] == (versions["bad"], "BAD")
    assert db.batches[-1][0].id == dead.change.id
    assert await wb.dead_letters() == []


async def test_a_full_backlog_is_refused_with_a_clear_error(wcache: Cache) -> None:
    wb = wcache.write_behind("bounded", handler=Database(), max_backlog=2, on_backlog="refuse")
    await wb.write("a", 1)
    await wb.write("b", 1)
    with pytest.raises(BacklogFullError, match=r"max_backlog=2 .*'c' was refused"):
        await wb.write("c", 1)
    assert await wcache.get("c") is None  # nothing cached either
    assert wb.status()["refused"] == 1


async def test_a_full_backlog_writes_through_to_the_handler_inline(wcache: Cache) -> None:
    db = Database()
    wb = wcache.write_behind("through", handler=db, max_backlog=1)
    queued = await wb.write("a", 1)
    inline = await wb.write("a", 2)  # inline: saved and cached now
    assert inline > queued
    assert db.rows == {"a": (inline, 2)}
    assert await wcache.get("a") == 2
    await wb.drain()  # the queued change is older than the row: the upsert skips it
    assert db.rows == {"a": (inline, 2)}
    assert wb.status()["inline"] == 1


async def test_started_worker_runs_in_the_background_and_stops(wcache: Cache) -> None:
    db = Database()
    wb = wcache.write_behind("bg", handler=db, poll=0.05)
    wb.start()
    version = await wb.write("x", 1)
    for _ in range(400):
        if db.rows:
            break
        await _tick()
    assert db.rows == {"x": (version, 1)}
    assert wb.status()["running"]
    await wb.stop()
    assert not wb.status()["running"]


async def _tick() -> None:
    await anyio.sleep(0.01)


def test_options_are_checked_with_the_option_named() -> None:
    cache = Cache.from_url("memory://")
    db = Database()
    with pytest.raises(ConfigurationError, match="batch_size=0 is not allowed"):
        cache.write_behind("n", handler=db, batch_size=0)
    with pytest.raises(ConfigurationError, match="on_backlog='drop' is not allowed"):
        cache.write_behind("n", handler=db, on_backlog="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=re.escape("name='a{b}' is not allowed")):
        cache.write_behind("a{b}", handler=db)
    with pytest.raises(ConfigurationError, match="handler=3 is not allowed"):
        cache.write_behind("n", handler=3)  # type: ignore[arg-type]
    wb = cache.write_behind("n", handler=db)
    assert cache.write_behind("n", handler=db) is wb
    with pytest.raises(ConfigurationError, match="another handler"):
        cache.write_behind("n", handler=Database())
    assert isinstance(wb, WriteBehind)


async def test_keys_share_one_hash_tag(redis_url: str) -> None:
    cache = Cache.from_url(redis_url, namespace="shop", op_timeout=BEHAVIOUR_OP_TIMEOUT)
    wb = cache.write_behind("user-visits", handler=Database())
    async with cache:
        await wb.write("users:1:visits", 3)
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = sorted(k.decode() for k in await client.keys("shop:w:*"))
        finally:
            await client.aclose()
    assert keys == ["shop:w:{user-visits}:s", "shop:w:{user-visits}:v"]
    dead = StreamKeys.of(cache.keys.write_behind("user-visits")).dead
    assert len({key_slot(k.encode()) for k in [*keys, dead]}) == 1


async def test_redis_down_makes_write_raise(own_redis: Any) -> None:
    cache = Cache.from_url(own_redis.url, namespace="down", op_timeout=BEHAVIOUR_OP_TIMEOUT)
    wb = cache.write_behind("w", handler=Database(), write_timeout=0.5)
    async with cache:
        own_redis.stop()
        with pytest.raises(BackendError):
            await wb.write("k", 1)
        assert (await wb.probe())["error"]
    assert cache.stats()["write_behind"]["w"]["written"] == 0


async def test_a_restarted_worker_takes_its_own_pending_changes_back_first(
    wcache: Cache,
) -> None:
    entered = anyio.Event()
    calls = 0

    async def hang_first(batch: list[Change]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            await anyio.sleep_forever()

    wb = wcache.write_behind("own", handler=hang_first, lease=300.0)
    await wb.write("k", 1)
    async with anyio.create_task_group() as group:
        group.start_soon(partial(wb.run, consumer="w1"))
        await entered.wait()
        group.cancel_scope.cancel()  # stopped mid-batch: the change stays pending with w1
    assert (await wb.probe())["pending"] == 1
    assert await wb.drain(consumer="w2") == 0  # another worker waits for the lease
    assert await wb.drain(consumer="w1") == 1  # w1 again: it takes the change back at once
    assert calls == 2
    assert wb.status()["reclaimed"] == 0
