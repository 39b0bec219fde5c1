"""What metrics cost a cache hit: the same hit path with the metrics tally on and off.

``python -m benchmarks.metrics_overhead`` (from the repository root, in the project's .venv)
drives ``GET /item/1`` through ``CacheMiddleware`` in process (ASGI calls, no sockets, so
the figure is the cache's own work, not the network's) on ``memory://``, and reports:

1. **instructions** per hit from ``valgrind --tool=callgrind`` (when valgrind is installed):
   each mode runs twice, with ``N`` and ``2N`` hits, and the difference is divided by ``N``,
   so start-up and warm-up cancel out. Instruction counts do not depend on what else the
   machine runs, so they are the figure to trust on a shared machine;
2. **wall time** per hit: the median of interleaved rounds of each mode in one process (the
   lowest round median kept; other load only slows a round down).

"on" is ``cache.metrics_route()`` built (the tally installed as the events' observer: what
every exporter reads); "off" is the same cache without it. Exit code 0; the target (under
5 % of a hit's cost) is printed next to the figure, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_cache import Cache, CacheMiddleware

from .callgrind import instructions

TARGET = 0.05
"""The budget: metrics may add at most 5 % to a hit."""


def build(metrics: bool) -> tuple[Cache, Any]:
    """A cached route behind the middleware; with ``metrics``, the metrics route built."""
    cache = Cache.from_url("memory://", namespace="bench", ttl_jitter=0.0)

    @cache.response(ttl=3600)
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"], "body": "x" * 1000})

    app = CacheMiddleware(Starlette(routes=[Route("/item/{item_id}", item)]), cache=cache)
    if metrics:
        cache.metrics_route()
    return cache, app


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/item/1",
        "raw_path": b"/item/1",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


async def hits(app: Any, n: int) -> None:
    """``n`` requests of the one cached page (the first one stores it)."""
    for _ in range(n):
        await app(_scope(), _receive, _send)


async def _wall(rounds: int, n: int) -> dict[str, float]:
    apps = {mode: build(mode == "on") for mode in ("off", "on")}
    best: dict[str, float] = {}
    for cache, app in apps.values():
        await cache.start()
        await hits(app, 200)  # store the page, warm every path
    for _ in range(rounds):
        for mode, (_, app) in apps.items():
            samples = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                await app(_scope(), _receive, _send)
                samples.append(time.perf_counter_ns() - t0)
            median = statistics.median(samples) / 1000
            best[mode] = min(best.get(mode, median), median)
    for cache, _ in apps.values():
        await cache.aclose()
    return best


def _child(mode: str, n: int) -> None:
    cache, app = build(mode == "on")

    async def main() -> None:
        async with cache:
            await hits(app, n)

    asyncio.run(main())


def _instructions(mode: str, n: int) -> int:
    return instructions("benchmarks.metrics_overhead", "--child", mode, str(n))


def callgrind(n: int) -> dict[str, float]:
    """Instructions per hit in each mode: (Ir(2n) - Ir(n)) / n."""
    return {
        mode: (_instructions(mode, 2 * n) - _instructions(mode, n)) / n for mode in ("off", "on")
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print both figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=2000, help="hits per callgrind run (N)")
    parser.add_argument("--rounds", type=int, default=5, help="wall-time rounds per mode")
    parser.add_argument("--calls", type=int, default=2000, help="hits per wall-time round")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    rows = []
    if shutil.which("valgrind"):
        ir = callgrind(args.hits)
        rows.append(("instructions per hit (callgrind)", ir["off"], ir["on"], "{:,.0f}"))
    else:
        print("valgrind not installed: instruction counts skipped (apt-get install valgrind)")
    wall = asyncio.run(_wall(args.rounds, args.calls))
    rows.append(("microseconds per hit (wall, median)", wall["off"], wall["on"], "{:.2f}"))
    print("| measure | metrics off | metrics on | overhead | target |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, off, on, fmt in rows:
        overhead = on / off - 1
        verdict = "met" if overhead < TARGET else "missed"
        print(
            f"| {name} | {fmt.format(off)} | {fmt.format(on)} | {overhead:+.1%} | "
            f"< {TARGET:.0%} ({verdict}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
