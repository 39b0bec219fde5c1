"""Phase 8, write-behind: page-view counts written through ``wb.write`` vs one database write
per request, on SQLite and on PostgreSQL.

The write is the demo's (``asgi_cache.demo``): a view count per user, Zipf-distributed over
1,000 users. Three measurements per database, in this process (asyncio, ``concurrency``
writers):

1. **direct**: every count is its own upsert transaction (what an app without write-behind
   does); writes per second and database round trips (transactions).
2. **write-behind**: every count is a ``wb.write`` (one Lua script on this run's Redis) while a
   worker in the same process saves batches (``batch_size`` 500) with one upsert per batch;
   writes per second acknowledged, database transactions once it caught up, and the time to
   catch up after the last write.
3. **sustained**: ``wb.write`` at a fixed rate for a few seconds; the lag (age of the oldest
   change not yet saved, ``health()["write_behind"]``) sampled every 100 ms.

PostgreSQL is ``BENCH_POSTGRES_URL`` (default ``postgresql://127.0.0.1:5432/test``); when it
does not answer its rows are replaced by the error.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..apps import System
from ..context import Context, log
from ..redis_proc import CACHE_DB
from ..workload import Zipf, percentile

USERS = 1000
CONCURRENCY = 16


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Writes per second, database round trips and lag, per database."""
    del systems  # not per system
    quick = ctx.profile.name == "quick"
    writes = 2000 if quick else 10_000
    rate, seconds = (500.0, 3.0) if quick else (1000.0, 10.0)
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-wb-") as tmp:
        databases = {
            "sqlite": f"sqlite:///{Path(tmp) / 'views.db'}",
            "postgresql": os.environ.get("BENCH_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"),
        }
        for name, url in databases.items():
            log(f"write_behind: {name}")
            ctx.reset_redis()
            try:
                rows[name] = asyncio.run(
                    _measure(ctx.redis.url(CACHE_DB), url, writes, rate, seconds)
                )
            except Exception as exc:  # a database that is not there must not stop the run
                errors[name] = f"{type(exc).__name__}: {exc}"
    params = {"writes": writes, "users": USERS, "concurrency": CONCURRENCY, "rate": rate,
              "sustained_seconds": seconds}  # fmt: skip
    return {**params, "rows": rows, "errors": errors}


async def _measure(redis_url: str, db_url: str, writes: int, rate: float, seconds: float) -> Any:
    # Imported here: the demo's store needs SQLAlchemy and the drivers, which only this
    # phase does; a missing one becomes this phase's error, not the run's.
    from asgi_cache import Cache, Change
    from asgi_cache.demo.db import UserStore

    # SQLite takes one writer at a time: one connection, the writers queue for it (with more,
    # they fail with "database is locked" under load instead).
    pool = 1 if db_url.startswith("sqlite") else CONCURRENCY
    store = UserStore(db_url, delay=0.0, pool_size=pool)
    await store.prepare(1, reset=True)
    zipf = Zipf(USERS, 1.0, seed=8)
    ids = [zipf.draw() for _ in range(writes)]
    counts: dict[int, int] = {}
    try:
        start = time.perf_counter()
        await _parallel([lambda u=u: store.add_view(u) for u in ids])
        direct_s = time.perf_counter() - start
        direct_trips = store.writes

        async def save(batch: list[Change]) -> None:
            await store.save_views([(int(c.key[6:]), int(c.value), c.version) for c in batch])

        cache = Cache.from_url(redis_url, namespace="bench-wb", op_timeout=2.0)
        wb = cache.write_behind("views", handler=save, batch_size=500, poll=0.05)
        async with cache:
            before = store.writes

            def view(u: int) -> Any:
                counts[u] = counts.get(u, 0) + 1
                return wb.write(f"views:{u}", counts[u])

            wb.start()
            start = time.perf_counter()
            await _parallel([lambda u=u: view(u) for u in ids])
            wb_s = time.perf_counter() - start
            caught_up = await _caught_up(wb)
            wb_trips = store.writes - before
            lags = await _sustained(wb, zipf, counts, rate, seconds)
            await wb.stop()
    finally:
        await store.aclose()
    return {
        "direct_writes_per_s": writes / direct_s,
        "direct_round_trips": direct_trips,
        "wb_writes_per_s": writes / wb_s,
        "wb_round_trips": wb_trips,
        "round_trips_saved": 1 - wb_trips / direct_trips if direct_trips else None,
        "speedup": direct_s / wb_s,
        "catch_up_s": caught_up,
        "lag_p50_s": percentile(lags, 50) if lags else None,
        "lag_max_s": max(lags) if lags else None,
    }


async def _parallel(jobs: list[Any]) -> None:
    queue = iter(jobs)

    async def writer() -> None:
        for job in queue:
            await job()

    await asyncio.gather(*(writer() for _ in range(CONCURRENCY)))


async def _caught_up(wb: Any) -> float:
    start = time.perf_counter()
    while True:  # polls the backlog in Redis: there is no event to wait for
        if not (await wb.probe())["backlog"]:
            return time.perf_counter() - start
        await asyncio.sleep(0.01)


async def _sustained(
    wb: Any, zipf: Zipf, counts: dict[int, int], rate: float, seconds: float
) -> list[float]:
    lags: list[float] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(0.1)
            lags.append((await wb.probe())["lag_seconds"])

    sampler = asyncio.create_task(sample())
    start = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            u = zipf.draw()
            counts[u] = counts.get(u, 0) + 1
            await wb.write(f"views:{u}", counts[u])
            sent += 1
        await asyncio.sleep(0.001)
    sampler.cancel()
    return lags
