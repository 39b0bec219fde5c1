"""``asgi-cache-cluster``: the asgi-cache app on a 3-master Redis Cluster against one node.

``python -m benchmarks.cluster`` (from the repository root, in ``.venv-bench`` or the
project's venv) starts its own ``redis-server`` (single node) and its own 3-master Redis
Cluster (the test suite's harness, tests/redis_cluster.py, in a temporary directory), then,
in the same run, for ``asgi-cache-redis`` (``redis://``) and ``asgi-cache-cluster`` (the same
app on ``redis+cluster://``):

1. **hit path in process**: the median of many cached ``GET /item/1`` through the app's ASGI
   stack (no server, no HTTP), as the main run's ``hit_cost`` phase does;
2. **end to end**: the app under uvicorn, a closed-loop load on the cached ``/item/1``
   (throughput and latency percentiles);
3. **memory per entry**: ``MEMORY USAGE`` of every key the app wrote for ``--entries``
   distinct items (entries, tag versions, Vary memory), summed over the nodes, divided by the
   number of items.

Ratios compare the two systems within this run (same machine, same moment); absolute figures
move with the machine's load. Results go to stdout (markdown) and to
``benchmarks/results/<UTC time>-cluster.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from .apps import System
from .apps.asgi_cache_app import build_for
from .apps.common import AppConfig
from .asgi_call import Lifespan, call
from .inproc import measure_hit
from .loadgen import load, wrk_version
from .loop import run
from .redis_proc import BenchRedis
from .server import Server

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SINGLE = System(
    "asgi-cache-redis", "asgi_cache_redis", cached=True, uses_redis=True,
    note="CacheMiddleware + @cache.response on one Redis node (redis://)",
)  # fmt: skip
CLUSTER = System(
    "asgi-cache-cluster", "asgi_cache_redis", cached=True, uses_redis=True,
    note="the same app on a 3-master Redis Cluster (redis+cluster://)",
)  # fmt: skip


async def _in_process(url: str, iterations: int, entries: int) -> dict[str, Any]:
    app, origin = build_for(url, AppConfig(redis_url=url, db_seconds=0.0))
    lifespan = Lifespan(app)
    await lifespan.start()
    try:
        hit = await measure_hit(app, origin, iterations, warmup=max(100, iterations // 10))
        for item in range(100, 100 + entries):
            await call(app, f"/item/{item}")
        await asyncio.sleep(0.3)  # stores that finish after the response
    finally:
        await lifespan.stop()
    return hit


def _memory(nodes: list[tuple[str, int]]) -> tuple[int, int]:
    """(keys, bytes) of the benchmark's namespace over ``nodes``."""
    keys = size = 0
    for host, port in nodes:
        client = redis.Redis(host=host, port=port)
        try:
            for key in client.scan_iter(match="bench:*", count=1000):
                keys += 1
                size += int(client.memory_usage(key, samples=0) or 0)
        finally:
            client.close()
    return keys, size


def _end_to_end(system: System, url: str, seconds: float, connections: int) -> dict[str, Any]:
    server = Server(system, {"BENCH_REDIS_URL": url, "BENCH_DB_MS": "10"})
    server.start()
    try:
        load(server.port, "/item/1", connections=4, seconds=1.0, use_wrk=False)  # warm, stored
        result = load(
            server.port, "/item/1", connections=connections, seconds=seconds,
            use_wrk=wrk_version() is not None,
        )  # fmt: skip
    finally:
        server.close()
    return result.as_dict()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the module docstring, for both systems."""
    sys.path.insert(0, str(REPO))
    from tests.redis_cluster import LocalCluster  # the suite's harness, not a package module

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found on PATH")
    directory = Path(tempfile.mkdtemp(prefix="asgi-cache-bench-cluster-"))
    cluster = LocalCluster(binary, directory, masters=3)
    out: dict[str, Any] = {"entries": args.entries, "iterations": args.iterations}
    with BenchRedis() as single:
        cluster.start()
        try:
            targets = {
                SINGLE.name: (single.url(), [("127.0.0.1", single.port)]),
                CLUSTER.name: (cluster.url, cluster.startup_nodes),
            }
            for system in (SINGLE, CLUSTER):
                url, nodes = targets[system.name]
                hit = run(lambda u=url: _in_process(u, args.iterations, args.entries))
                keys, size = _memory(nodes)
                e2e = _end_to_end(system, url, args.seconds, args.connections)
                out[system.name] = {
                    "note": system.note,
                    "hit": hit,
                    "keys": keys,
                    "bytes_per_entry": size / (args.entries + 1),
                    "e2e": e2e,
                }
        finally:
            cluster.close()
            shutil.rmtree(directory, ignore_errors=True)
    s, c = out[SINGLE.name], out[CLUSTER.name]
    out["ratios"] = {
        "hit_median_cluster_over_single": c["hit"]["median_us"] / s["hit"]["median_us"],
        "e2e_rps_cluster_over_single": c["e2e"]["rps"] / s["e2e"]["rps"],
        "e2e_p50_cluster_over_single": c["e2e"]["p50_us"] / s["e2e"]["p50_us"],
        "memory_cluster_over_single": c["bytes_per_entry"] / s["bytes_per_entry"],
    }
    return out


def render(out: dict[str, Any]) -> str:
    """The results as a markdown table."""
    rows = [
        "| system | hit in process, median µs | e2e req/s | e2e p50 µs | e2e p99 µs "
        "| bytes per entry |",
        "| :-- | --: | --: | --: | --: | --: |",
    ]
    for name in (SINGLE.name, CLUSTER.name):
        r = out[name]
        rows.append(
            f"| {name} | {r['hit']['median_us']:.0f} | {r['e2e']['rps']:.0f} "
            f"| {r['e2e']['p50_us']:.0f} | {r['e2e']['p99_us']:.0f} "
            f"| {r['bytes_per_entry']:.0f} |"
        )
    ratios = ", ".join(f"{k} = {v:.2f}" for k, v in out["ratios"].items())
    return "\n".join(rows) + f"\n\nratios: {ratios}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    began = time.time()
    out = measure(args)
    out["seconds"] = time.time() - began
    out["cpus"] = os.cpu_count()
    out["load_average"] = os.getloadavg()
    print(render(out))
    if not args.no_save:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{stamp}-cluster.json"
        path.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"saved {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
