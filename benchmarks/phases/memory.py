"""Phase 4, Redis bytes per entry: ``MEMORY USAGE`` of what one cached 1007-byte body costs.

The app stores ``/item/7`` (in process, a child process per system); every key it left in the
(otherwise empty) cache database is measured with ``MEMORY USAGE key SAMPLES 0``. Then it
stores ``/item/8`` and the growth is measured again: that *marginal* cost is the per-entry
figure, since keys shared by all entries (a namespace-wide tag version, say) are paid once.
"""

from __future__ import annotations

from typing import Any

from ..apps import System
from ..context import Context, log
from ..workload import BODY_BYTES, gzip_ratio
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
        keys, both = result["after_first"], result["after_second"]
        marginal = sum(both.values()) - sum(keys.values())
        rows[system.name] = {
            "keys": len(keys),
            "bytes_first": sum(keys.values()),
            "bytes": marginal,
            "keys_per_entry": len(both) - len(keys),
            "ratio_to_body": marginal / BODY_BYTES,
            "per_key": keys,
            "body_bytes": result["body_bytes"],
        }
    return {"body_bytes": BODY_BYTES, "gzip_ratio": gzip_ratio(7), "rows": rows, "errors": errors}
