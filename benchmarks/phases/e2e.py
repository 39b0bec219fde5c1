"""Phase 2, end to end: uvicorn (1 worker, uvloop when installed) under wrk ``-c32``.

Every request is ``GET /item/1``: after the first one, a hit for the caching systems. A short
untimed warm-up run precedes the measured one.
"""

from __future__ import annotations

from typing import Any

from ..apps import System
from ..context import Context, log
from ..loadgen import load
from ..server import Server, http_impl


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Throughput and latency percentiles per system."""
    p = ctx.profile
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for system in systems:
        ctx.reset_redis()
        log(f"end to end: {system.name}")
        try:
            with Server(system, ctx.app_env()) as server:
                load(server.port, "/item/1", connections=p.e2e_connections,
                     seconds=p.e2e_warmup_seconds, use_wrk=ctx.use_wrk)  # fmt: skip
                result = load(server.port, "/item/1", connections=p.e2e_connections,
                              seconds=p.e2e_seconds, use_wrk=ctx.use_wrk)  # fmt: skip
        except Exception as exc:  # one system failing must not stop the run
            errors[system.name] = f"{type(exc).__name__}: {exc}"
            continue
        rows[system.name] = result.as_dict()
    return {
        "seconds": p.e2e_seconds,
        "connections": p.e2e_connections,
        "tool": ctx.load_tool,
        "server": f"uvicorn, 1 worker, --http {http_impl()}",
        "rows": rows,
        "errors": errors,
    }
