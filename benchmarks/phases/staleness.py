"""Phase 8, L1 staleness across processes: a write in one process, the last stale L1 hit in
another (``benchmarks/staleness.py``), over 1,000 writes, then the same with every subscriber
connection killed (``CLIENT KILL TYPE pubsub``) before every 50th write; each in both L1
invalidation modes (``pubsub`` and ``tracking``).
"""

from __future__ import annotations

from typing import Any

from ..apps import System
from ..context import Context, log
from ..staleness import measure

WRITES = 1000
KILL_EVERY = 50
VARIANTS = (
    ("pub/sub", 0, "pubsub"),
    ("pub/sub, subscriber killed", KILL_EVERY, "pubsub"),
    ("tracking", 0, "tracking"),
    ("tracking, listener killed", KILL_EVERY, "tracking"),
)
"""Row name, kill every n-th write's subscribers (0: never), L1 invalidation mode."""


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Staleness percentiles in milliseconds, with and without killed subscribers."""
    del systems  # not per system: asgi-cache's L1 only
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kill_every, mode in VARIANTS:
        log(f"staleness: {name}")
        ctx.reset_redis()
        try:
            rows[name] = measure(ctx.redis.url(), WRITES, kill_every, mode)
        except Exception as exc:  # one variant failing must not stop the run
            errors[name] = f"{type(exc).__name__}: {exc}"
    return {"writes": WRITES, "kill_every": KILL_EVERY, "rows": rows, "errors": errors}
