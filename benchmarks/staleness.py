"""How long another process's L1 near-cache serves a value after a write: two processes.

A reader process reads one key in a loop through a cache with the L1 near-cache on (one
``await asyncio.sleep(0)`` between reads, as a server yields between requests) and notes,
for every value, the last time it saw it. A writer process (its own cache, same namespace)
stores the values 1, 2, ... N with ``cache.set``, a few milliseconds apart, and notes when each
``set`` returned. The staleness of write ``i`` is the last time the reader saw a value older
than ``i`` minus the time write ``i`` returned (0 when the reader never saw an older value
afterwards). Times are ``time.monotonic()``, one clock for both processes on Linux.

With ``kill_every``, the writer kills every subscriber connection (``CLIENT KILL TYPE
pubsub``) just before every ``kill_every``-th write, so that write's message is likely
lost: what bounds the staleness then is how fast the reader notices and flushes its L1.

``invalidation`` is the L1's mode in both processes (``ASGI_CACHE_L1_INVALIDATION``):
``pubsub``, or ``tracking`` (Redis ``CLIENT TRACKING``; the listener connection is a
subscriber too, so ``kill_every`` kills it the same way).

``python -m benchmarks.staleness REDIS_URL [WRITES] [KILL_EVERY] [pubsub|tracking]`` prints
the result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import sys
import time
from typing import Any

L1_TTL = 2.0
NAMESPACE = "staleness"


def _cache(url: str, invalidation: str) -> Any:
    from asgi_cache import Cache

    return Cache.from_url(
        url, namespace=NAMESPACE, l1_ttl=L1_TTL, l1_invalidation=invalidation, op_timeout=2.0
    )


async def _reader(url: str, invalidation: str, ready: Any, stop: Any, out: Any) -> None:
    cache = _cache(url, invalidation)
    last_seen: dict[int, float] = {}
    reads = 0
    async with cache:
        await cache.get("k")  # the writer stored 0 before this process started
        ready.set()
        while not stop.is_set():
            value = await cache.get("k")
            if value is not None:
                last_seen[int(value)] = time.monotonic()
            reads += 1
            await asyncio.sleep(0)
        stats = cache.stats()
    out.put({"last_seen": last_seen, "reads": reads, "l1": stats.get("l1", {})})


def _read(url: str, invalidation: str, ready: Any, stop: Any, out: Any) -> None:
    asyncio.run(_reader(url, invalidation, ready, stop, out))


async def _writer(
    url: str, writes: int, kill_every: int, invalidation: str, ready: Any
) -> list[float]:
    import redis.asyncio as aioredis

    cache = _cache(url, invalidation)
    admin = aioredis.Redis.from_url(url)
    done: list[float] = [0.0]
    rnd = random.Random(5)
    async with cache:
        await asyncio.to_thread(ready.wait, 60)
        for i in range(1, writes + 1):
            await asyncio.sleep(rnd.uniform(0.002, 0.006))  # the reader refills its L1
            if kill_every and i % kill_every == 0:
                await admin.client_kill_filter(_type="pubsub")
            await cache.set("k", i, ttl=600)
            done.append(time.monotonic())
    await admin.aclose()
    return done


async def _first(url: str) -> None:
    from asgi_cache import Cache

    async with Cache.from_url(url, namespace=NAMESPACE, op_timeout=2.0) as cache:
        await cache.set("k", 0, ttl=600)


def measure(
    url: str, writes: int = 1000, kill_every: int = 0, invalidation: str = "pubsub"
) -> dict[str, Any]:
    """Staleness percentiles (ms) over ``writes`` writes; see the module docstring."""
    spawn = multiprocessing.get_context("spawn")
    ready, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
    asyncio.run(_first(url))
    reader = spawn.Process(target=_read, args=(url, invalidation, ready, stop, out), daemon=True)
    reader.start()
    try:
        done = asyncio.run(_writer(url, writes, kill_every, invalidation, ready))
        time.sleep(L1_TTL + 0.5)  # whatever the reader still serves, it serves by then
        stop.set()
        seen = out.get(timeout=60)
    finally:
        reader.join(timeout=30)
        if reader.is_alive():  # pragma: no cover - a hung reader must not outlive the run
            reader.kill()
    last_seen: dict[int, float] = seen["last_seen"]
    stale: list[float] = []
    latest_older = 0.0  # the last time any value below i was seen
    for i in range(1, writes + 1):
        latest_older = max(latest_older, last_seen.get(i - 1, 0.0))
        stale.append(max(0.0, latest_older - done[i]) * 1000)
    ordered = sorted(stale)
    return {
        "writes": writes,
        "kill_every": kill_every,
        "reads": seen["reads"],
        "stale_writes": sum(1 for s in stale if s > 0),
        "p50_ms": _percentile(ordered, 50),
        "p99_ms": _percentile(ordered, 99),
        "max_ms": ordered[-1] if ordered else 0.0,
        "l1_flushes": seen["l1"].get("flushes"),
        # The mode the reader's L1 ran in (tracking falls back to pubsub where refused).
        "invalidation": seen["l1"].get("invalidation", invalidation),
        "l1_tag_checks": seen["l1"].get("tag_checks", 0),
        "l1_ttl": L1_TTL,
    }


def _percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


if __name__ == "__main__":
    arguments = sys.argv[1:]
    result = measure(
        arguments[0],
        int(arguments[1]) if len(arguments) > 1 else 1000,
        int(arguments[2]) if len(arguments) > 2 else 0,
        arguments[3] if len(arguments) > 3 else "pubsub",
    )
    print(json.dumps(result))
