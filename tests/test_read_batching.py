"""Concurrent reads share round trips (``batch_reads``) and each caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from asgi_cache import BackendError, BackendReplyError, Cache, CacheMiddleware, CacheSettings
from asgi_cache.backends import RedisBackend
from asgi_cache.backends.batching import ReadBatcher

from .http_support import client_for, command_calls
from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer

N = 24


def _connected_clients(server: RedisServer) -> int:
    for line in server.command("INFO", "clients").decode().splitlines():
        if line.startswith("connected_clients:"):
            return int(line.split(":")[1])
    raise AssertionError("no connected_clients in INFO")  # pragma: no cover


async def _fill(backend: RedisBackend, keys: Sequence[str]) -> None:
    deps = list(zip(["ns:t:all"], await backend.versions(["ns:t:all"], 30), strict=True))
    for i, key in enumerate(keys):
        assert await backend.set(key, f"value-{i}".encode(), 30, deps)


def _batched(url: str) -> RedisBackend:
    """A backend on a client of its own: reads go through the batcher and redis-py (the path of
    ``rediss://``, Sentinel and a client handed in), not the lean read connection."""
    client = aioredis.Redis.from_url(url)
    return RedisBackend(url, client=client, owns_client=True, op_timeout=BEHAVIOUR_OP_TIMEOUT)


async def test_concurrent_reads_are_pipelined_on_one_connection(
    redis_server: RedisServer, redis_url: str
) -> None:
    keys = [f"ns:d:{i}" for i in range(N)]
    backend = RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    try:
        await _fill(backend, keys)
        base_clients = _connected_clients(redis_server)
        before = command_calls(redis_server).get("evalsha", 0)
        reads = backend.reads
        assert reads is not None
        assert backend.read_batcher is None

        # The first ones find no connection yet: they share the one being opened.
        results = await asyncio.gather(*(backend.get(k) for k in keys))

        assert results == [f"value-{i}".encode() for i in range(N)]
        assert command_calls(redis_server)["evalsha"] - before == N  # one read per key...
        assert reads.connects == 1  # ...on one connection
        assert _connected_clients(redis_server) - base_clients == 1

        writes = reads.writes
        results = await asyncio.gather(*(backend.get(k) for k in reversed(keys)))
        assert results == [f"value-{i}".encode() for i in reversed(range(N))]
        assert reads.writes - writes == 2  # one alone, then the rest together
        assert reads.connects == 1
    finally:
        await backend.aclose()


async def test_concurrent_reads_share_round_trips(
    redis_server: RedisServer, redis_url: str
) -> None:
    keys = [f"ns:d:{i}" for i in range(N)]
    batched = _batched(redis_url)
    unbatched = RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, batch_reads=False)
    try:
        await _fill(batched, keys)
        base_clients = _connected_clients(redis_server)
        before = command_calls(redis_server).get("evalsha", 0)

        results = await asyncio.gather(*(batched.get(k) for k in keys))

        assert results == [f"value-{i}".encode() for i in range(N)]
        assert command_calls(redis_server)["evalsha"] - before == N  # one read per key...
        batcher = batched.read_batcher
        assert batcher is not None
        assert batched.reads is None
        assert batcher.round_trips <= 3  # ...in a few round trips: one alone, then batches
        assert batcher.batches >= 1
        # ...over at most two connections: the one kept for reads and one for the pipeline.
        assert _connected_clients(redis_server) - base_clients <= 2

        assert unbatched.read_batcher is None
        assert unbatched.reads is None
        base_clients = _connected_clients(redis_server)
        results = await asyncio.gather(*(unbatched.get(k) for k in keys))
        assert results == [f"value-{i}".encode() for i in range(N)]
        # Without batching every concurrent read takes a pooled connection of its own.
        assert _connected_clients(redis_server) - base_clients > 2
    finally:
        await batched.aclose()
        await unbatched.aclose()


@pytest.mark.parametrize("path", ["lean", "batched"])
async def test_one_failing_read_fails_only_its_caller(redis_url: str, path: str) -> None:
    if path == "lean":
        backend = RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    else:
        backend = _batched(redis_url)
    cache = Cache(CacheSettings(namespace="ns"), backend=backend)
    keys = [f"ns:d:{i}" for i in range(N)]
    plain = aioredis.Redis.from_url(redis_url)
    try:
        await _fill(backend, keys)
        await plain.delete(keys[5])
        await plain.rpush(keys[5], b"not a string")  # GET on it fails with WRONGTYPE

        results = await asyncio.gather(*(backend.get(k) for k in keys), return_exceptions=True)

        assert isinstance(results[5], BackendReplyError)
        assert "WRONGTYPE" in str(results[5])
        assert [r for i, r in enumerate(results) if i != 5] == [
            f"value-{i}".encode() for i in range(N) if i != 5
        ]
        if backend.reads is not None:
            assert backend.reads.writes < N
            assert backend.reads.connects == 1
        else:
            assert backend.read_batcher is not None
            assert backend.read_batcher.batches >= 1
        # Through the cache the failure is a miss, counted as an error, never raised.
        entries = await asyncio.gather(*(cache._store.read(k) for k in keys))
        assert entries[5] is None
        assert cache.stats()["errors"] == 1
    finally:
        await plain.aclose()
        await backend.aclose()


async def test_reads_survive_a_script_flush(redis_server: RedisServer, redis_url: str) -> None:
    backend = RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    plain = aioredis.Redis.from_url(redis_url)
    keys = [f"ns:d:{i}" for i in range(N)]
    try:
        await _fill(backend, keys)
        await plain.script_flush()
        evals = command_calls(redis_server).get("eval", 0)
        assert await backend.get(keys[0]) == b"value-0"  # alone
        assert command_calls(redis_server)["eval"] - evals == 1  # NOSCRIPT, then EVAL
        await plain.script_flush()
        results = await asyncio.gather(*(backend.get(k) for k in keys))  # pipelined
        assert results == [f"value-{i}".encode() for i in range(N)]
        batched = _batched(redis_url)
        await plain.script_flush()
        results = await asyncio.gather(*(batched.get(k) for k in keys))  # one pipeline
        assert results == [f"value-{i}".encode() for i in range(N)]
        await batched.aclose()
        unbatched = RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, batch_reads=False)
        await plain.script_flush()
        assert await unbatched.get(keys[1]) == b"value-1"
        await unbatched.aclose()
    finally:
        await plain.aclose()
        await backend.aclose()


@pytest.mark.parametrize("path", ["lean", "batched"])
async def test_kept_connection_recovers_after_redis_restarts(
    own_redis: RedisServer, path: str
) -> None:
    if path == "lean":
        backend = RedisBackend(own_redis.url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    else:
        backend = _batched(own_redis.url)
    try:
        await _fill(backend, ["ns:d:0"])
        assert await backend.get("ns:d:0") == b"value-0"
        own_redis.stop()
        with pytest.raises(BackendError):
            await backend.get("ns:d:0")
        own_redis.start()
        await _fill(backend, ["ns:d:0"])
        assert await backend.get("ns:d:0") == b"value-0"
        if backend.reads is not None:
            assert backend.reads.connects == 2
    finally:
        await backend.aclose()


async def test_batched_reads_on_fakeredis() -> None:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    backend = RedisBackend(client=client, owns_client=True)
    keys = [f"ns:d:{i}" for i in range(8)]
    try:
        assert backend.reads is None  # a client handed in: reads go through it
        await _fill(backend, keys)
        results = await asyncio.gather(*(backend.get(k) for k in keys))
        assert results == [f"value-{i}".encode() for i in range(8)]
    finally:
        await backend.aclose()


async def test_concurrent_hits_through_the_middleware(redis_url: str) -> None:
    cache = Cache(
        CacheSettings(
            url=redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace="web", ttl_jitter=0.0
        )
    )
    calls: dict[int, int] = {}
    app = FastAPI()

    @app.get("/items/{item_id}")
    @cache.response(ttl=60)
    async def item(item_id: int) -> dict[str, int]:
        calls[item_id] = calls.get(item_id, 0) + 1
        return {"id": item_id}

    wrapped = CacheMiddleware(app, cache=cache)
    async with cache, client_for(wrapped) as client:
        for i in range(N):
            assert (await client.get(f"/items/{i}")).headers["x-cache"] == "MISS"
        backend = getattr(cache.backend, "inner", cache.backend)  # behind the breaker
        assert isinstance(backend, RedisBackend)
        assert backend.reads is not None
        writes = backend.reads.writes
        replies = await asyncio.gather(*(client.get(f"/items/{i}") for i in range(N)))
        assert [r.json() for r in replies] == [{"id": i} for i in range(N)]
        assert {r.headers["x-cache"] for r in replies} == {"HIT"}
        assert backend.reads.writes - writes < N
        assert backend.reads.connects == 1
        assert calls == dict.fromkeys(range(N), 1)


# -- the batcher on its own: ordering, failures, cancellation ----------------------------------


class _Store:
    """Fake reads: one gate per round trip so a test decides when each returns."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.batches: list[list[str]] = []
        self.fail_round_trip = False

    async def one(self, key: str) -> Any:
        self.batches.append([key])
        await asyncio.sleep(0)  # a round trip always suspends its caller
        await self.gate.wait()
        if key == "bad":
            raise ValueError("bad key")
        return key.upper()

    async def many(self, keys: Sequence[str]) -> list[Any]:
        self.batches.append(list(keys))
        await asyncio.sleep(0)
        await self.gate.wait()
        if self.fail_round_trip:
            raise ConnectionError("lost")
        return [ValueError("bad key") if k == "bad" else k.upper() for k in keys]


async def _started(batcher: ReadBatcher, keys: Sequence[str]) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.create_task(batcher.read(k)) for k in keys]
    for _ in range(3):
        await asyncio.sleep(0)  # let each task reach the batcher
    return tasks


async def test_batcher_queues_behind_the_read_in_flight() -> None:
    store = _Store()
    batcher = ReadBatcher(store.one, store.many, timeout=5)
    tasks = await _started(batcher, ["a", "b", "bad", "c"])
    assert store.batches == [["a"]]  # the first goes at once; the others wait for it
    store.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [results[0], results[1], results[3]] == ["A", "B", "C"]
    assert isinstance(results[2], ValueError)
    assert store.batches == [["a"], ["b", "bad", "c"]]
    assert (batcher.round_trips, batcher.batches) == (2, 1)


async def test_a_failed_round_trip_fails_every_caller_in_it() -> None:
    store = _Store()
    store.fail_round_trip = True
    batcher = ReadBatcher(store.one, store.many, timeout=5)
    tasks = await _started(batcher, ["a", "b", "c"])
    store.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == "A"
    assert all(isinstance(r, ConnectionError) for r in results[1:])
    # The batcher is free again afterwards.
    store.fail_round_trip = False
    assert await batcher.read("d") == "D"


async def test_a_caller_giving_up_leaves_the_others_their_answers() -> None:
    store = _Store()
    batcher = ReadBatcher(store.one, store.many, timeout=5)
    tasks = await _started(batcher, ["a", "b", "c", "d"])
    tasks[2].cancel()
    store.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [results[0], results[1], results[3]] == ["A", "B", "D"]
    assert isinstance(results[2], asyncio.CancelledError)
    assert store.batches == [["a"], ["b", "d"]]


async def test_a_lone_waiter_is_read_alone_and_a_stuck_batch_times_out() -> None:
    store = _Store()
    batcher = ReadBatcher(store.one, store.many, timeout=0.05)
    tasks = await _started(batcher, ["a", "b"])
    # "a" never returns (the gate stays shut): "b" waits behind it, then times out alone.
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[1], TimeoutError)
    assert store.batches == [["a"], ["b"]]
    assert batcher.batches == 0


async def test_closing_waits_for_batches_in_flight() -> None:
    store = _Store()
    batcher = ReadBatcher(store.one, store.many, timeout=5)
    tasks = await _started(batcher, ["a", "b", "c"])
    store.gate.set()
    await tasks[0]
    await batcher.aclose()
    assert [t.result() for t in tasks] == ["A", "B", "C"]


async def test_callers_of_a_batch_reading_again_form_one_batch() -> None:
    store = _Store()
    store.gate.set()
    batcher = ReadBatcher(store.one, store.many, timeout=5)

    async def twice(key: str) -> list[Any]:
        return [await batcher.read(key), await batcher.read(key + "2")]

    results = await asyncio.gather(*(twice(k) for k in "abcd"))
    assert results == [[k.upper(), k.upper() + "2"] for k in "abcd"]
    # The first read goes alone; the second reads of all four share one round trip (not the
    # first caller's alone, then the other three's).
    assert store.batches == [["a"], ["b", "c", "d"], ["a2", "b2", "c2", "d2"]]
    # Once the burst is over, a lone caller reads alone again without waiting a tick.
    assert await batcher.read("e") == "E"
    assert await batcher.read("f") == "F"
    assert store.batches[-2:] == [["e"], ["f"]]


async def test_a_queued_read_is_bounded_from_when_it_was_asked() -> None:
    store = _Store()  # the gate stays shut: Redis never answers
    batcher = ReadBatcher(store.one, store.many, timeout=0.05)
    tasks = await _started(batcher, ["a", "b"])
    with pytest.raises(TimeoutError):
        await tasks[0]
    # "b" was asked with "a" in flight: its budget ran out with "a"'s, so it does not get a
    # fresh timeout of its own once its round trip starts.
    for _ in range(5):
        await asyncio.sleep(0)
    assert tasks[1].done()
    assert isinstance(tasks[1].exception(), TimeoutError)
