"""Where a Redis hit's time goes: one GET of a 1.6 KB value through successive layers.

``python -m benchmarks.hitpath`` (inside .venv-bench) starts its own redis-server and times,
sequentially (median of many calls, uvloop when installed; each layer in three interleaved
rounds, the lowest round median kept):

1. a bare asyncio stream sending ``GET`` and parsing the reply with hiredis (the floor);
2. redis-py ``GET`` with a default connection pool and no timeouts;
3. redis-py ``GET`` through a ``BlockingConnectionPool`` with ``socket_timeout`` set;
4. the same client running a one-line Lua ``GET`` via ``EVALSHA`` (``register_script``);
5. ``asgi_cache.backends.RedisBackend.get`` (its GET script, timeout and error mapping).

The differences between rows are what each layer costs. The main run includes these
figures as its ``redis_layers`` phase.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .loop import loop_name, run
from .redis_proc import BenchRedis

VALUE = b"x" * 1600
KEY = "bench:hitpath"


async def _median_us(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(min(300, n)):
        await fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000


def measure(port: int, calls: int) -> dict[str, float]:
    """Median microseconds per layer (see the module docstring), on Redis at ``port``."""
    return run(lambda: _layers(port, calls))


async def _layers(port: int, n: int, rounds: int = 3) -> dict[str, float]:
    # Every layer is timed in several rounds, interleaved, and its lowest round median kept:
    # other load on the machine only ever slows a round down.
    import hiredis
    import redis.asyncio as aioredis

    url = f"redis://127.0.0.1:{port}/0"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parser = hiredis.Reader()
    command = f"*2\r\n$3\r\nGET\r\n${len(KEY)}\r\n{KEY}\r\n".encode()

    async def raw_get() -> Any:
        writer.write(command)
        while True:
            reply = parser.gets()
            if reply is not False:
                return reply
            parser.feed(await reader.read(65536))

    plain = aioredis.Redis.from_url(url)
    await plain.set(KEY, VALUE)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=64, timeout=0.05, socket_timeout=0.25
    )
    bounded = aioredis.Redis.from_pool(pool)
    script = bounded.register_script("return redis.call('GET', KEYS[1])")
    layers: dict[str, Callable[[], Awaitable[Any]]] = {
        "asyncio stream + hiredis GET": raw_get,
        "redis-py GET, default pool": lambda: plain.get(KEY),
        "redis-py GET, BlockingConnectionPool + socket_timeout": lambda: bounded.get(KEY),
        "redis-py EVALSHA (GET in Lua), same pool": lambda: script(keys=[KEY]),
    }
    backend: Any = None
    try:
        from asgi_cache.backends import RedisBackend
    except ImportError:  # pragma: no cover - the project is installed in .venv-bench
        pass
    else:
        backend = RedisBackend(url)
        await backend.set(KEY + ":entry", VALUE, 600.0)
        layers["asgi_cache RedisBackend.get"] = lambda: backend.get(KEY + ":entry")
    best: dict[str, float] = {}
    try:
        for _ in range(rounds):
            for name, fn in layers.items():
                us = await _median_us(fn, max(1, n // rounds))
                best[name] = min(us, best.get(name, us))
    finally:
        writer.close()
        await plain.aclose()
        await bounded.aclose()
        if backend is not None:
            await backend.aclose()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hitpath")
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args(argv)
    with BenchRedis() as redis:
        layers = measure(redis.port, args.calls)
        version = redis.version()
    print(f"median of {args.calls:,} sequential calls, {loop_name()}, Redis {version}")
    previous = None
    for name, us in layers.items():
        delta = "" if previous is None else f"  ({us - previous:+.1f})"
        print(f"{us:8.1f} us  {name}{delta}")
        previous = us
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
