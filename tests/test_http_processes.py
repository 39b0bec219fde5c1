"""Invalidation across real worker processes: a PUT in one process, a GET in another."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .http_support import client_for, command_calls, uvicorn_worker, worker_environment
from .http_worker_app import create_app
from .redis_server import RedisServer


@pytest.fixture
def worker_env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the worker processes (and of this process's copy of the app)."""
    return worker_environment(redis_url, tmp_path, monkeypatch)


@pytest.fixture
def worker(worker_env: dict[str, str]) -> Iterator[str]:
    """One worker process; yields its base URL."""
    with uvicorn_worker(worker_env) as base:
        yield base


@pytest.fixture
def two_workers(worker_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Two worker processes on the same Redis; yields their base URLs."""
    with uvicorn_worker(worker_env) as one, uvicorn_worker(worker_env) as two:
        yield one, two


async def test_put_in_one_process_invalidates_get_in_another(worker: str) -> None:
    local = create_app()
    async with httpx.AsyncClient(base_url=worker) as remote, client_for(local) as here:
        first = await remote.get("/users/1")
        hit = await remote.get("/users/1")
        put = await here.put("/users/1", params={"name": "ann2"})
        after = await remote.get("/users/1")
        other = await remote.get("/users/2")
        # And the other way round: the worker's PUT is seen here.
        await here.get("/users/2")
        await remote.put("/users/2", params={"name": "bob2"})
        here_after = await here.get("/users/2")
    await local.state.cache.aclose()
    assert first.headers["x-cache"] == "MISS"
    assert hit.headers["x-cache"] == "HIT"
    assert hit.json()["pid"] != os.getpid()
    assert put.status_code == 200
    assert after.headers["x-cache"] == "MISS"
    assert after.json()["name"] == "ann2"
    assert other.headers["x-cache"] == "MISS"
    assert here_after.headers["x-cache"] == "MISS"
    assert here_after.json()["name"] == "bob2"


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check()`` holds (state polling, bounded by a count, not by a clock)."""
    for _ in range(4000):
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_lock_waiters_and_later_misses_skip_the_queue_when_nothing_is_storable(
    two_workers: tuple[str, str], redis_server: RedisServer
) -> None:
    # Varnish's hit-for-pass: on a lock=True route whose response cannot be stored, the
    # waiter woken by the holder goes to the app at once (it does not queue on the lock
    # again), and the holder's "not storable" marker sends later misses straight to the app
    # until an invalidation (or lock_timeout) retires it.
    def calls() -> list[str]:
        return [str(c) for c in redis_server.client().lrange("test:calls", 0, -1)]

    base = command_calls(redis_server).get("publish", 0)

    def locks_held() -> int:
        # Every release of a held lock publishes once on the key's notify channel (and
        # nothing else publishes here: no L1).
        return command_calls(redis_server).get("publish", 0) - base

    host = {"host": "shop.test"}  # one site served by both workers: one key
    async with (
        httpx.AsyncClient(base_url=two_workers[0], headers=host, timeout=60) as one,
        httpx.AsyncClient(base_url=two_workers[1], headers=host, timeout=60) as two,
    ):

        async def lock_waits() -> int:
            stats = [(await c.get("/stats")).json() for c in (one, two)]
            return sum(s["lock_waits"] for s in stats)

        async def two_waits() -> bool:
            return await lock_waits() == 1

        async def one_has_called() -> bool:
            return len(calls()) == 1

        holder = asyncio.ensure_future(one.get("/pass/1", headers={"x-hold": "1"}))
        await until(one_has_called)  # worker one holds the lock, its app is running
        waiter = asyncio.ensure_future(two.get("/pass/1"))
        await until(two_waits)
        redis_server.client().rpush("test:gate", "1")
        held, woken = await holder, await waiter
        after_wait = locks_held()
        later = [await two.get("/pass/1"), await one.get("/pass/1")]
        after_marker = locks_held()
        # An unsafe request on the URL invalidates it, and the marker with it.
        assert (await one.put("/pass/1")).status_code == 200
        fresh = await two.get("/pass/1")
        after_invalidation = locks_held()
        waits = await lock_waits()
    for response in (held, woken, *later, fresh):
        assert response.text == "pass 1"
        assert response.headers["cache-status"] == "asgi-cache; fwd=miss; detail=no-store"
    assert len(calls()) == 5
    assert len(set(calls()[:2])) == 2  # the holder and the waiter: one call in each process
    # One lock held (the holder's); the woken waiter did not take a turn of its own.
    assert after_wait == 1
    # Later misses read the marker and skip the lock.
    assert after_marker == 1
    # After the invalidation the next miss takes the lock again.
    assert after_invalidation == 2
    assert waits == 1  # only the waiter ever queued
