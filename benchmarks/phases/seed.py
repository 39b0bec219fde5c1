"""Phase 6, the seed workload: Zipf reads over 10,000 users, 10 % writes, a 100 ms database.

An open-loop generator sends the same seeded sequence of ``GET /users/{id}`` and
``PUT /users/{id}`` to each system at a fixed rate (latency counts from the scheduled send
time, so a slow server cannot hide its queue). The first part of the sequence warms the
cache and is not counted. Hit rate comes from ``X-Cache: HIT`` and, independently, from the
origin's read counter; the ideal hit rate of a perfect cache on the same sequence is the
ceiling (each write invalidates its user).

Stale reads are counted where the app says its row version (``X-User-Version``, the
asgi-cache apps): a GET sent after a PUT of its user was answered must carry at least the
version that PUT made.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ..apps import System
from ..context import Context, log
from ..http_client import Connection
from ..server import Server
from ..workload import ideal_hit_rate, percentile, seed_operations

MAX_CONNECTIONS = 512


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Hit rate and GET latency percentiles per system (asgi-cache and ``nocache``)."""
    p = ctx.profile
    warm = int(p.seed_rate * p.seed_warmup_seconds)
    total = warm + int(p.seed_rate * p.seed_seconds)
    ops = seed_operations(
        total, users=p.seed_users, s=p.seed_zipf_s, write_ratio=p.seed_write_ratio
    )
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for system in systems:
        if not system.seed:
            continue
        ctx.reset_redis()
        log(f"seed workload: {system.name}")
        try:
            env = ctx.app_env(db_ms=p.seed_db_ms, count=True)
            with Server(system, env) as server:
                rows[system.name] = asyncio.run(_drive(ctx, server.port, ops, warm, p.seed_rate))
        except Exception as exc:  # one system failing must not stop the run
            errors[system.name] = f"{type(exc).__name__}: {exc}"
    return {
        "users": p.seed_users,
        "zipf_s": p.seed_zipf_s,
        "write_ratio": p.seed_write_ratio,
        "db_ms": p.seed_db_ms,
        "rate": p.seed_rate,
        "warmup_requests": warm,
        "requests": total - warm,
        "ideal_hit_rate": ideal_hit_rate(ops, count_from=warm),
        "rows": rows,
        "errors": errors,
    }


async def _drive(
    ctx: Context, port: int, ops: list[tuple[str, int]], warm: int, rate: float
) -> dict[str, Any]:
    idle: list[Connection] = []
    limit = asyncio.Semaphore(MAX_CONNECTIONS)
    records: list[tuple[str, int, float, bool]] = []  # op, status, latency ms, hit
    origin_at_warm: list[int] = []
    committed: dict[int, int] = {}  # user -> the highest version a PUT answered so far
    checked = [0, 0]  # GETs whose version was checked, and those older than expected

    async def one(index: int, op: str, key: int, scheduled: float) -> None:
        expected = committed.get(key, 0)  # every PUT answered before this GET is sent
        async with limit:
            conn = idle.pop() if idle else Connection("127.0.0.1", port, timeout=30.0)
            try:
                response = await conn.request(op, f"/users/{key}", b"{}" if op == "PUT" else b"")
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                if index >= warm:
                    records.append((op, 0, (time.perf_counter() - scheduled) * 1000, False))
                return
            idle.append(conn)
        version = response.headers.get("x-user-version")
        if version is not None and response.status == 200:
            if op == "PUT":
                committed[key] = max(committed.get(key, 0), int(version))
            else:
                checked[0] += 1
                checked[1] += int(version) < expected
        if index >= warm:
            hit = response.headers.get("x-cache", "").upper() == "HIT"
            latency = (time.perf_counter() - scheduled) * 1000
            records.append((op, response.status, latency, hit))

    start = time.perf_counter() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for index, (op, key) in enumerate(ops):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if index == warm:
            await asyncio.gather(*tasks)  # the warm-up's reads are all counted before
            origin_at_warm.append(sum(ctx.origin_calls().values()))
            start += time.perf_counter() - scheduled  # the pause does not count as lateness
            scheduled = start + index / rate
        tasks.append(asyncio.create_task(one(index, op, key, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start - warm / rate
    origin_reads = sum(ctx.origin_calls().values()) - (origin_at_warm[0] if origin_at_warm else 0)
    for conn in idle:
        await conn.close()
    cache_stats = await _cache_stats(port)
    gets = sorted(lat for op, status, lat, _ in records if op == "GET" and status == 200)
    puts = sorted(lat for op, status, lat, _ in records if op == "PUT" and status == 200)
    hit_latencies = sorted(lat for op, status, lat, hit in records if op == "GET" and hit)
    n_gets = sum(1 for op, *_ in records if op == "GET")
    hits = sum(1 for op, _, _, hit in records if op == "GET" and hit)
    return {
        "gets": n_gets,
        "puts": len(records) - n_gets,
        "non2xx": sum(1 for _, status, _, _ in records if not 200 <= status < 300),
        "hit_rate": hits / n_gets if n_gets else 0.0,
        "origin_hit_rate": 1 - origin_reads / n_gets if n_gets else 0.0,
        "origin_reads": origin_reads,
        "achieved_rate": len(records) / elapsed if elapsed > 0 else 0.0,
        "get_p50_ms": percentile(gets, 50),
        "get_p95_ms": percentile(gets, 95),
        "get_p99_ms": percentile(gets, 99),
        "put_p50_ms": percentile(puts, 50),
        "hit_p50_ms": percentile(hit_latencies, 50),
        "hit_p99_ms": percentile(hit_latencies, 99),
        "versions_checked": checked[0],
        "stale_reads": checked[1] if checked[0] else None,
        "cache_stats": cache_stats,
    }


async def _cache_stats(port: int) -> dict[str, Any] | None:
    """The asgi-cache app's own counters (``cache.stats()``: backend errors, invalidations
    still queued, stale responses served), to explain a stale read; ``None`` for the others."""
    conn = Connection("127.0.0.1", port, timeout=10.0)
    try:
        response = await conn.request("GET", "/_bench/stats")
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return None
    finally:
        await conn.close()
    if response.status != 200:
        return None
    found: dict[str, Any] = json.loads(response.body)
    return found
