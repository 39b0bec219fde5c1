"""Failover under load: worker processes drive the middleware and get_or_load while a test
kills a Redis master (Cluster) or the primary (Sentinel).

Each worker is a spawned process (tests/workers.py) running a FastAPI app behind
``CacheMiddleware`` with three routes over a shared "database" (a ``multiprocessing.Array``
of item versions): ``GET /items/{i}`` (a cached response tagged ``items:{i}``), ``GET
/load/{i}`` (``get_or_load`` under ``lock=True``, tagged the same) and ``PUT /items/{i}``
(bumps the version, ``@cache.invalidates("items:{i}")``). :data:`CONCURRENCY` tasks per
worker send requests through ASGI until the test sets ``stop``; after every PUT the same task
reads both GET routes and checks that they show at least the version it wrote (read after
write). Each request is recorded with its wall-clock time, status and whether it was served
from the cache, and the worker samples nothing itself: the test counts the servers' client
connections while the load runs.

:func:`analyse` turns the records into the figures the tests assert and report: 5xx count,
stale reads, and the recovery time (from the kill to the first cache hit after the longest
stretch without one).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, NamedTuple

CONCURRENCY = 6
ITEMS = 24
Record = tuple[float, str, int, int, bool, bool]
"""(time, route, item, status, served from the cache, stale read after a write)"""


def worker(url: str, versions: Any, sent: Any, stop: Any, barrier: Any, results: Any) -> None:
    """Entry point of one worker process: ``sent`` counts the requests of every worker."""
    asyncio.run(_drive(url, versions, sent, stop, barrier, results))


async def _drive(url: str, versions: Any, sent: Any, stop: Any, barrier: Any, results: Any) -> None:
    import httpx
    from fastapi import FastAPI

    from asgi_cache import Cache, CacheMiddleware, CacheSettings

    settings = CacheSettings(
        url=url, namespace="fo", ttl_jitter=0.0, op_timeout=0.5, connect_timeout=0.5,
        lock_timeout=1.0,
    )  # fmt: skip
    cache = Cache(settings)
    app = FastAPI(lifespan=cache.lifespan)
    app.add_middleware(CacheMiddleware, cache=cache)

    @app.get("/items/{item_id}")
    @cache.response(ttl=30, tags=["items:{item_id}"])
    async def get_item(item_id: int) -> dict[str, int]:
        await asyncio.sleep(0.005)  # a query
        return {"id": item_id, "version": versions[item_id]}

    @app.get("/load/{item_id}")
    async def load_item(item_id: int) -> dict[str, Any]:
        loaded: list[bool] = []

        async def load() -> dict[str, int]:
            loaded.append(True)
            await asyncio.sleep(0.005)
            return {"id": item_id, "version": versions[item_id]}

        value = await cache.get_or_load(
            f"items:{item_id}:data", load, ttl=30, tags=[f"items:{item_id}"], lock=True
        )
        return {**value, "loaded": bool(loaded)}

    @app.put("/items/{item_id}")
    @cache.invalidates("items:{item_id}")
    async def put_item(item_id: int) -> dict[str, int]:
        with versions.get_lock():
            versions[item_id] += 1
            return {"id": item_id, "version": versions[item_id]}

    records: list[Record] = []

    async def one(client: httpx.AsyncClient, rng: random.Random) -> None:
        item = rng.randrange(ITEMS)
        roll = rng.random()
        if roll < 0.1:
            put = await client.put(f"/items/{item}")
            records.append((time.time(), "put", item, put.status_code, False, False))
            if put.status_code != 200:
                return
            written = put.json()["version"]
            for path in (f"/items/{item}", f"/load/{item}"):
                await get(client, path, item, written)
        elif roll < 0.55:
            await get(client, f"/items/{item}", item, 0)
        else:
            await get(client, f"/load/{item}", item, 0)

    async def get(client: httpx.AsyncClient, path: str, item: int, written: int) -> None:
        response = await client.get(path)
        route = path.split("/")[1]
        hit = False
        stale = False
        if response.status_code == 200:
            body = response.json()
            hit = response.headers.get("x-cache") == "HIT" or body.get("loaded") is False
            stale = body["version"] < written
        records.append((time.time(), route, item, response.status_code, hit, stale))
        with sent.get_lock():
            sent.value += 1

    async def loop(client: httpx.AsyncClient, seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            await one(client, rng)

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://w", timeout=30) as client,
    ):
        await asyncio.to_thread(barrier.wait)
        await asyncio.gather(*(loop(client, s) for s in range(CONCURRENCY)))
        stats = cache.stats()
    results.put({"records": records, "errors": stats["errors"]})


class Figures(NamedTuple):
    """What one failover run measured."""

    requests: int
    server_errors: int
    stale_reads: int
    recovery_seconds: float | None
    """From the kill to the first cache hit after the longest stretch without one (the
    outage as the clients saw it), or ``None`` if no hit came after the kill."""
    hits_before: float
    hits_after: float
    """Hit ratios before the kill and after recovery."""


def analyse(collected: list[dict[str, Any]], killed_at: float) -> Figures:
    """The figures of one run whose server was killed at ``killed_at`` (wall-clock)."""
    records = sorted(r for c in collected for r in c["records"])
    reads = [r for r in records if r[1] != "put"]
    hits = [r[0] for r in reads if r[4] and r[0] > killed_at - 1]
    resumed = None
    longest = -1.0
    for previous, current in zip([killed_at, *hits], hits, strict=False):
        if current > killed_at and current - previous > longest:
            longest, resumed = current - previous, current
    before = [r for r in reads if r[0] < killed_at]
    after = [r for r in reads if resumed is not None and r[0] > resumed]

    def ratio(rs: list[Record]) -> float:
        return sum(r[4] for r in rs) / len(rs) if rs else 0.0

    return Figures(
        requests=len(records),
        server_errors=sum(r[3] >= 500 for r in records),
        stale_reads=sum(r[5] for r in records),
        recovery_seconds=None if resumed is None else resumed - killed_at,
        hits_before=ratio(before),
        hits_after=ratio(after),
    )
