"""Phase 2, end to end: uvicorn (1 worker, uvloop when installed) under wrk ``-c32``.

Every request is ``GET /item/1``: after the first one, a hit for the caching systems. A short
untimed warm-up run precedes the measured one. In full mode every system is measured in
several rounds, interleaved (all systems, then all again), and the best round is reported:
other load on the machine only ever slows a round down.
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
    for round_no in range(p.e2e_rounds):
        for system in systems:
            if system.name in errors:
                continue
            ctx.reset_redis()
            log(f"end to end: {system.name} (round {round_no + 1}/{p.e2e_rounds})")
            try:
                result = _measure(ctx, system)
            except Exception as exc:  # one system failing must not stop the run
                errors[system.name] = f"{type(exc).__name__}: {exc}"
                rows.pop(system.name, None)
                continue
            best = rows.get(system.name)
            rounds = [*(best["rounds_rps"] if best else []), result["rps"]]
            if best is None or result["rps"] > best["rps"]:
                best = result
            rows[system.name] = {**best, "rounds_rps": rounds}
    return {
        "seconds": p.e2e_seconds,
        "rounds": p.e2e_rounds,
        "connections": p.e2e_connections,
        "tool": ctx.load_tool,
        "server": f"uvicorn, 1 worker, --http {http_impl()}",
        "rows": rows,
        "errors": errors,
    }


def _measure(ctx: Context, system: System) -> dict[str, Any]:
    p = ctx.profile
    with Server(system, ctx.app_env()) as server:
        load(server.port, "/item/1", connections=p.e2e_connections,
             seconds=p.e2e_warmup_seconds, use_wrk=ctx.use_wrk)  # fmt: skip
        result = load(server.port, "/item/1", connections=p.e2e_connections,
                      seconds=p.e2e_seconds, use_wrk=ctx.use_wrk)  # fmt: skip
    return result.as_dict()
