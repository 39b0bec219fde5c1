"""Phase 4, Redis bytes per entry: ``MEMORY USAGE`` of what one cached 1007-byte body costs.

The app stores ``/item/7`` once (in process, a child process per system); every key it left
in the (otherwise empty) cache database is measured with ``MEMORY USAGE key SAMPLES 0``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..apps import System
from ..context import Context, log
from ..redis_proc import CACHE_DB
from ..workload import BODY_BYTES
from ._child import run_inproc


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Keys and bytes per stored entry, for the systems that store in Redis."""
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for system in systems:
        if not system.uses_redis:
            continue
        ctx.reset_redis()
        log(f"memory: {system.name}")
        result = run_inproc(["store", system.name, "--item", "7"], ctx.app_env(db_ms=0))
        if "error" in result:
            errors[system.name] = result["error"]
            continue
        keys = _usage(ctx)
        total = sum(keys.values())
        rows[system.name] = {
            "keys": len(keys),
            "bytes": total,
            "ratio_to_body": total / BODY_BYTES,
            "per_key": keys,
            "body_bytes": result["body_bytes"],
        }
    return {"body_bytes": BODY_BYTES, "rows": rows, "errors": errors}


def _usage(ctx: Context) -> dict[str, int]:
    with contextlib.closing(ctx.redis.client(CACHE_DB)) as client:
        return {
            key.decode(errors="replace"): int(client.memory_usage(key, samples=0) or 0)
            for key in client.scan_iter(count=1000)
        }
