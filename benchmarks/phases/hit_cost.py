"""Phase 1, in-process hit cost: one cached ``GET /item/1`` through each app's ASGI stack.

No HTTP and no server: a minimal ASGI caller drives the app in a child process (uvloop when
installed), warms the entry, then times each of many calls; the median is reported, with
``bare`` (FastAPI without cache or database wait) as the reference.
"""

from __future__ import annotations

from typing import Any

from ..apps import System
from ..context import Context, log
from ._child import run_inproc


def run(ctx: Context, systems: list[System]) -> dict[str, Any]:
    """Measure every system except ``nocache`` (whose every request waits for the database)."""
    p = ctx.profile
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for system in systems:
        if system.name == "nocache":
            continue
        ctx.reset_redis()
        log(f"hit cost: {system.name}")
        result = run_inproc(
            ["hit", system.name, "--iterations", str(p.inproc_iterations),
             "--warmup", str(p.inproc_warmup)],
            ctx.app_env(),
        )  # fmt: skip
        if "error" in result:
            errors[system.name] = result["error"]
        else:
            rows[system.name] = result
    return {
        "iterations": p.inproc_iterations,
        "warmup": p.inproc_warmup,
        "rows": rows,
        "errors": errors,
    }
