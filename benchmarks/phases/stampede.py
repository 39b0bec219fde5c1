"""Phase 3, cold-key stampede: bursts of simultaneous requests on a key nobody cached yet.

uvicorn runs 2 worker processes; each burst opens 200 connections first, then sends one
``GET /item/<fresh id>`` on all of them at once. The app counts its handler calls in Redis
(``HINCRBY`` per worker pid), so origin calls are counted across both workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..apps import System
from ..context import Context, log
from ..loadgen import burst
from ..server import Server
from ..workload import percentile


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Origin calls, non-200s and p99 per burst, per system."""
    p = ctx.profile
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for system in systems:
        if system.name == "bare":
            continue  # no origin wait, nothing to stampede
        ctx.reset_redis()
        log(f"stampede: {system.name}")
        try:
            with Server(system, ctx.app_env(count=True), workers=p.stampede_workers) as server:
                # Wake both workers' connection pools on another key before the bursts.
                asyncio.run(burst(server.port, "/item/0", count=20))
                rows[system.name] = _bursts(ctx, server.port)
        except Exception as exc:  # one system failing must not stop the run
            errors[system.name] = f"{type(exc).__name__}: {exc}"
    return {
        "bursts": p.stampede_bursts,
        "size": p.stampede_size,
        "workers": p.stampede_workers,
        "rows": rows,
        "errors": errors,
    }


def _bursts(ctx: Context, port: int) -> dict[str, Any]:
    p = ctx.profile
    per_burst: list[dict[str, Any]] = []
    latencies: list[float] = []
    for i in range(p.stampede_bursts):
        before = ctx.origin_calls()
        result = asyncio.run(burst(port, f"/item/{100_000 + i}", count=p.stampede_size))
        after = ctx.origin_calls()
        by_worker = {pid: n - before.get(pid, 0) for pid, n in after.items()}
        non200 = sum(n for status, n in result.statuses.items() if status != 200)
        per_burst.append(
            {
                "origin_calls": sum(by_worker.values()),
                "origin_calls_by_worker": {k: v for k, v in by_worker.items() if v},
                "non200": non200 + result.failures,
                "statuses": {str(k): v for k, v in result.statuses.items()},
                "p99_us": percentile(result.latencies_us, 99),
            }
        )
        latencies.extend(result.latencies_us)
    latencies.sort()
    calls = [b["origin_calls"] for b in per_burst]
    return {
        "origin_calls_min": min(calls),
        "origin_calls_max": max(calls),
        "origin_calls_mean": sum(calls) / len(calls),
        "non200": sum(b["non200"] for b in per_burst),
        "requests": p.stampede_bursts * p.stampede_size,
        "p50_us": percentile(latencies, 50),
        "p99_us": percentile(latencies, 99),
        "bursts": per_burst,
    }
