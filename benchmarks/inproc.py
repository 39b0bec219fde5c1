"""Child process of the in-process phases: one system, one measurement, JSON on stdout.

``python -m benchmarks.inproc hit SYSTEM --iterations N --warmup W`` times cached GETs
through the app's ASGI stack; ``python -m benchmarks.inproc store SYSTEM`` makes the app
store two entries and reports Redis memory after each (for the memory phase). Each system
runs in its own process so that global state in the peer libraries (class-level
configuration, connection pools bound to an event loop) never leaks from one system to the
next.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import statistics
import sys
import time
from typing import Any

from .apps import by_name
from .apps.common import AppConfig
from .asgi_call import Lifespan, call
from .loop import loop_name, run
from .workload import body_bytes


async def measure_hit(app: Any, origin: Any, iterations: int, warmup: int) -> dict[str, Any]:
    """Median and spread of one cached ``GET /item/1`` (after ``warmup`` untimed calls)."""
    path = "/item/1"
    first = await call(app, path)
    for _ in range(warmup):
        await call(app, path)
    calls_before = origin.calls
    samples: list[int] = []
    statuses: dict[int, int] = {}
    gc.collect()
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        reply = await call(app, path)
        samples.append(time.perf_counter_ns() - t0)
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
    samples.sort()
    return {
        "median_us": statistics.median(samples) / 1000,
        "p10_us": samples[len(samples) // 10] / 1000,
        "p90_us": samples[len(samples) * 9 // 10] / 1000,
        "mean_us": statistics.fmean(samples) / 1000,
        "iterations": iterations,
        "warmup": warmup,
        "statuses": {str(k): v for k, v in statuses.items()},
        "origin_calls_timed": origin.calls - calls_before,
        "first_status": first.status,
        "body_ok": json.loads(reply.body) == json.loads(body_bytes(1)),
        "body_bytes": len(reply.body),
        "x_cache": (reply.header(b"x-cache") or b"").decode(),
    }


def _memory_usage(url: str) -> dict[str, int]:
    """``MEMORY USAGE key SAMPLES 0`` of every key in the database at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {
            key.decode(errors="replace"): int(client.memory_usage(key, samples=0) or 0)
            for key in client.scan_iter(count=1000)
        }
    finally:
        client.close()


async def store_two(app: Any, url: str, first: int, second: int) -> dict[str, Any]:
    """Make the app store two entries; Redis memory (per key) after each."""
    usage: list[dict[str, int]] = []
    statuses: list[int] = []
    size = 0
    for item_id in (first, second):
        reply = await call(app, f"/item/{item_id}")
        statuses.append(reply.status)
        size = len(reply.body)
        await asyncio.sleep(0.2)  # writes some libraries finish after the response
        usage.append(_memory_usage(url))
    return {"statuses": statuses, "body_bytes": size, "after_first": usage[0],
            "after_second": usage[1]}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    system = by_name([args.system])[0]
    module = importlib.import_module(f"benchmarks.apps.{system.module}")
    config = AppConfig.from_env()
    app, origin = module.build(config)
    lifespan = Lifespan(app)
    await lifespan.start()
    try:
        if args.mode == "hit":
            result = await measure_hit(app, origin, args.iterations, args.warmup)
        else:
            result = await store_two(app, config.redis_url, args.item, args.item + 1)
    finally:
        await lifespan.stop()
    result["loop"] = loop_name()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inproc")
    parser.add_argument("mode", choices=["hit", "store"])
    parser.add_argument("system")
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--item", type=int, default=7)
    args = parser.parse_args(argv)
    result = run(lambda: main_async(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
