"""Phase 7, where a Redis hit's time goes: one GET through successive client layers.

See ``benchmarks/hitpath.py``: a bare asyncio stream with hiredis, redis-py with its default
pool, with a bounded pool and socket timeout, through a Lua script, and asgi-cache's
``RedisBackend.get``; sequential calls, median of many, in this run's Redis.
"""

from __future__ import annotations

from typing import Any

from ..apps import System
from ..context import Context, log
from ..hitpath import measure
from ..loop import loop_name


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Median microseconds per layer."""
    del systems  # not per system
    calls = max(2000, ctx.profile.inproc_iterations)
    log("redis layers")
    ctx.reset_redis()
    try:
        layers = measure(ctx.redis.port, calls)
    except Exception as exc:  # a missing hiredis, say, must not stop the run
        return {"calls": calls, "rows": {}, "errors": {"layers": f"{type(exc).__name__}: {exc}"}}
    rows = {name: {"median_us": us} for name, us in layers.items()}
    return {"calls": calls, "loop": loop_name(), "rows": rows, "errors": {}}
