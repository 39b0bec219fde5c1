"""``asgi-cache stats``: count the namespace's keys by kind, with Redis's own counters."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from redis.exceptions import RedisError

from .. import Cache
from ._base import (
    EXIT_OK,
    Command,
    Parsers,
    dump,
    glob_escape,
    memory_text,
    raw_client,
    redact,
    run_with_cache,
    table,
    unreachable,
)

_SPACES = {"d": "data", "h": "http", "v": "vary", "t": "tags", "l": "locks", "n": "notify"}


async def _stats(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    prefix = cache.keys.prefix
    counts = dict.fromkeys([*_SPACES.values(), "other"], 0)
    client = raw_client(cache.settings)
    try:
        cursor = 0
        while True:
            cursor, found = await client.scan(
                cursor=cursor, match=glob_escape(prefix) + "*", count=1000
            )
            for key in found:
                raw_key = key if isinstance(key, bytes) else key.encode()
                space = raw_key[len(prefix) : len(prefix) + 2].decode(errors="replace")
                name = _SPACES.get(space[0]) if space.endswith(":") else None
                counts[name or "other"] += 1
            if int(cursor) == 0:
                break
        info = await client.info()
    except (RedisError, OSError) as exc:
        raise unreachable(cache.settings, exc) from None
    finally:
        await client.aclose(close_connection_pool=True)
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    report: dict[str, Any] = {
        "namespace": cache.keys.namespace,
        "keys": {**counts, "total": sum(counts.values())},
        "redis": {
            "version": info.get("redis_version"),
            "used_memory": info.get("used_memory"),
            "maxmemory": info.get("maxmemory"),
            "maxmemory_policy": info.get("maxmemory_policy"),
            "evicted_keys": info.get("evicted_keys"),
            "expired_keys": info.get("expired_keys"),
            "keyspace_hits": hits,
            "keyspace_misses": misses,
            "keyspace_hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
            "connected_clients": info.get("connected_clients"),
        },
    }
    if args.json:
        print(dump(report), file=out)
        return EXIT_OK
    server = report["redis"]
    table(
        [
            ("namespace", f"{report['namespace']} at {redact(cache.settings.url)}"),
            ("keys", ", ".join(f"{k} {v}" for k, v in report["keys"].items())),
            ("memory", memory_text(server["used_memory"], server["maxmemory"])),
            ("policy", server["maxmemory_policy"]),
            ("evicted", server["evicted_keys"]),
            ("expired", server["expired_keys"]),
            ("redis hit rate", f"{server['keyspace_hit_rate']:.1%} (whole server, every GET)"),
        ],
        out,
    )
    print(
        "The app's own hit/miss counters live in its process: see its health endpoint.",
        file=out,
    )
    return EXIT_OK


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``stats`` parser."""
    stats: argparse.ArgumentParser = sub.add_parser(
        "stats", parents=[parents.common], help="count the namespace's keys"
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    return stats


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the command against the namespace the arguments name."""
    return run_with_cache(_stats, args, out, err)


COMMAND = Command("stats", add, run)
"""The ``stats`` command."""
