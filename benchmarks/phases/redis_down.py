"""Phase 5, Redis down: every cache points at a port where nothing listens.

uvicorn (1 worker) serves each system; requests go one after another on one keep-alive
connection, over 20 keys, so each is a miss that must fall back to the origin. The figure
is the status codes and the mean latency added over ``nocache`` in the same run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..apps import System
from ..context import Context, log
from ..loadgen import sequential
from ..redis_proc import free_port
from ..server import Server


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Status counts and added mean latency per system."""
    p = ctx.profile
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    paths = [f"/item/{i % 20}" for i in range(p.down_requests)]
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for system in systems:
        if system.name == "bare" or (system.cached and not system.uses_redis):
            continue
        log(f"redis down: {system.name}")
        try:
            with Server(system, ctx.app_env(redis_url=dead_url)) as server:
                statuses, latencies, failures = asyncio.run(sequential(server.port, paths))
        except Exception as exc:  # e.g. the app refuses to start without Redis
            errors[system.name] = f"{type(exc).__name__}: {exc}"
            continue
        rows[system.name] = {
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "failures": failures,
            "all_200": failures == 0 and set(statuses) == {200},
            "mean_ms": sum(latencies) / len(latencies) / 1000 if latencies else None,
        }
    base = rows.get("nocache", {}).get("mean_ms")
    for row in rows.values():
        if base is not None and row["mean_ms"] is not None:
            row["added_ms"] = row["mean_ms"] - base
    return {"requests": p.down_requests, "dead_url": dead_url, "rows": rows, "errors": errors}
