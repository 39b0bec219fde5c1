"""``asgi-cache diagnose``: check a Redis for use as this namespace's cache, with what to change.

One command reads what an operator would otherwise gather by hand: the server's version,
``maxmemory`` and its policy, persistence, the ping round trip (a few samples), ``LATENCY
LATEST``, the slow log entries whose arguments touch the namespace, and the namespace's
biggest keys by ``MEMORY USAGE``, sampled with ``SCAN`` (never ``KEYS``, which blocks the
server) up to ``--sample`` keys. Each finding says what it means and what to change; the
exit code is 1 when one is an ``error`` (the cache will misbehave), else 0.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Literal, NamedTuple, TextIO

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .. import Cache
from ..backends.redis import version_problem
from ._base import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    Parsers,
    dump,
    glob_escape,
    memory_text,
    positive_int,
    raw_client,
    redact,
    run_with_cache,
    size_text,
    table,
    unreachable,
)

Severity = Literal["error", "warning", "info"]

PINGS = 5
"""Ping round trips sampled."""
SLOW_PING = 0.005
"""A ping slower than this (5 ms) means the cache sits far from the app."""
BIG_KEY = 1 << 20
"""An entry above this (1 MiB) costs a round trip of its own on every hit."""
TOP_KEYS = 10
"""Biggest keys reported."""
NEAR_FULL = 0.9
"""Memory use above this share of maxmemory means evictions are near."""


class Finding(NamedTuple):
    """One thing ``diagnose`` found."""

    severity: Severity
    what: str
    change: str


def findings(report: dict[str, Any]) -> list[Finding]:
    """What ``report`` (the facts ``diagnose`` gathered) means, worst first."""
    out: list[Finding] = []
    server = report["server"]
    policy = server["maxmemory_policy"]
    if not server["maxmemory"]:
        out.append(
            Finding(
                "error",
                "maxmemory is 0: Redis grows until the machine runs out of memory",
                "set maxmemory (for example 75% of the memory Redis may use) and "
                "maxmemory-policy allkeys-lru",
            )
        )
    if policy == "noeviction":
        out.append(
            Finding(
                "error",
                "maxmemory-policy is noeviction: when memory is full every write fails with OOM",
                "set maxmemory-policy allkeys-lru (or allkeys-lfu for a skewed workload)",
            )
        )
    elif isinstance(policy, str) and policy.startswith("volatile"):
        out.append(
            Finding(
                "warning",
                f"maxmemory-policy is {policy}: only keys with a TTL are evicted; keys "
                "without one (other apps' data) fill memory first",
                "prefer allkeys-lru or allkeys-lfu for a server that is a cache",
            )
        )
    problem = version_problem(server["version"])
    if problem is not None:
        out.append(Finding("warning", problem, "upgrade Redis to 7 or later"))
    used, limit = server["used_memory"], server["maxmemory"]
    if limit and used / limit > NEAR_FULL:
        out.append(
            Finding(
                "warning",
                f"memory is {used / limit:.0%} full: evictions are near or running "
                f"({server['evicted_keys']} keys evicted so far)",
                "raise maxmemory, or shorten TTLs (default_ttl) so entries leave sooner",
            )
        )
    if server["aof_enabled"] or server["rdb_saves"]:
        out.append(
            Finding(
                "info",
                "persistence is on (AOF or RDB snapshots): a cache can always be rebuilt",
                "for a server that is only a cache: appendonly no, save '' (less disk I/O)",
            )
        )
    ping = report["latency"]["ping_ms_max"]
    if ping / 1000 > SLOW_PING:
        out.append(
            Finding(
                "warning",
                f"a ping takes up to {ping:.1f} ms: every cache hit pays this round trip",
                "run Redis near the app (same host or zone), or turn on the L1 (l1_ttl)",
            )
        )
    for event in report["latency"]["events"]:
        out.append(
            Finding(
                "warning",
                f"latency event {event['event']}: up to {event['max_ms']} ms",
                "see LATENCY DOCTOR on the server",
            )
        )
    if report["slowlog"]:
        commands = sorted({entry["command"] for entry in report["slowlog"]})
        out.append(
            Finding(
                "warning",
                f"{len(report['slowlog'])} slow log entries touch the namespace "
                f"({', '.join(commands)})",
                "look for big entries below, or large tag sets; see SLOWLOG GET",
            )
        )
    big = [k for k in report["biggest_keys"] if k["bytes"] > BIG_KEY]
    if big:
        out.append(
            Finding(
                "warning",
                f"{len(big)} sampled keys are above {size_text(BIG_KEY)} (largest "
                f"{size_text(big[0]['bytes'])})",
                "lower max_body_bytes, paginate the responses, or compress them",
            )
        )
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.severity])


async def gather(client: aioredis.Redis, prefix: str, sample: int) -> dict[str, Any]:
    """The facts about the server and the namespace ``prefix`` (SCAN, never KEYS)."""
    info = await client.info()
    pings = []
    for _ in range(PINGS):
        started = time.perf_counter()
        await client.ping()
        pings.append((time.perf_counter() - started) * 1000)
    try:
        events = [
            {"event": str(_text(e[0])), "max_ms": int(e[3])} for e in await client.latency_latest()
        ]
    except ResponseError:  # LATENCY disabled on some managed servers
        events = []
    return {
        "server": {
            "version": info.get("redis_version"),
            "used_memory": info.get("used_memory", 0),
            "maxmemory": info.get("maxmemory", 0),
            "maxmemory_policy": info.get("maxmemory_policy"),
            "evicted_keys": info.get("evicted_keys", 0),
            "aof_enabled": bool(info.get("aof_enabled", 0)),
            "rdb_saves": await _rdb_saves(client),
        },
        "latency": {
            "ping_ms_max": round(max(pings), 3),
            "ping_ms_min": round(min(pings), 3),
            "events": events,
        },
        "slowlog": await _slowlog(client, prefix),
        "biggest_keys": await _biggest(client, prefix, sample),
    }


async def _rdb_saves(client: aioredis.Redis) -> bool:
    try:
        save = await client.config_get("save")
    except ResponseError:  # CONFIG disabled (managed Redis): unknown, so not reported
        return False
    return bool(str(_text(save.get("save", ""))).strip())


async def _slowlog(client: aioredis.Redis, prefix: str) -> list[dict[str, Any]]:
    touching = []
    raw_prefix = prefix.encode()
    for entry in await client.slowlog_get(128):
        command = entry.get("command", b"")
        args = (command if isinstance(command, bytes) else str(command).encode()).split()
        if len(args) > 1 and any(a.startswith(raw_prefix) for a in args[1:]):
            touching.append(
                {
                    "command": args[0].decode(errors="replace").upper(),
                    "ms": entry["duration"] / 1000,
                }
            )
    return touching


async def _biggest(client: aioredis.Redis, prefix: str, sample: int) -> list[dict[str, Any]]:
    sizes: list[tuple[int, bytes | str]] = []
    cursor = 0
    seen = 0
    while seen < sample:
        cursor, keys = await client.scan(cursor=cursor, match=glob_escape(prefix) + "*", count=500)
        keys = keys[: sample - seen]
        seen += len(keys)
        if keys:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key)
            for key, size in zip(keys, await pipe.execute(), strict=True):
                if size is not None:
                    sizes.append((int(size), key))
        if int(cursor) == 0:
            break
    sizes.sort(reverse=True)
    return [{"key": str(_text(key)), "bytes": n} for n, key in sizes[:TOP_KEYS]]


def _persistence(server: dict[str, Any]) -> str:
    return "AOF" if server["aof_enabled"] else "RDB snapshots" if server["rdb_saves"] else "off"


def _text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def _diagnose(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    client = raw_client(cache.settings)
    try:
        report = await gather(client, cache.keys.prefix, args.sample)
    except (RedisError, OSError) as exc:
        raise unreachable(cache.settings, exc) from None
    finally:
        await client.aclose(close_connection_pool=True)
    found = findings(report)
    report["findings"] = [f._asdict() for f in found]
    code = EXIT_FAILED if any(f.severity == "error" for f in found) else EXIT_OK
    if args.json:
        print(dump(report), file=out)
        return code
    server, latency = report["server"], report["latency"]
    table(
        [
            ("redis", f"{server['version']} at {redact(cache.settings.url)}"),
            ("namespace", cache.keys.namespace),
            ("memory", memory_text(server["used_memory"], server["maxmemory"])),
            ("policy", server["maxmemory_policy"]),
            ("persistence", _persistence(server)),
            ("ping", f"{latency['ping_ms_min']:.2f} to {latency['ping_ms_max']:.2f} ms"),
            ("slow log", f"{len(report['slowlog'])} entries touching the namespace"),
        ],
        out,
    )
    if report["biggest_keys"]:
        print(f"biggest keys (of up to {args.sample} sampled with SCAN):", file=out)
        for key in report["biggest_keys"]:
            print(f"  {size_text(key['bytes']):>10}  {key['key']}", file=out)
    if not found:
        print("no findings: this Redis is fit for the cache", file=out)
    for f in found:
        print(f"{f.severity.upper()}: {f.what}\n  change: {f.change}", file=out)
    return code


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``diagnose`` parser."""
    diagnose: argparse.ArgumentParser = sub.add_parser(
        "diagnose", parents=[parents.common], help="check Redis for the cache: findings, fixes"
    )
    diagnose.add_argument("--json", action="store_true", help="print JSON")
    diagnose.add_argument(
        "--sample",
        type=positive_int,
        default=1000,
        help="namespace keys sampled with SCAN for MEMORY USAGE (1000)",
    )
    return diagnose


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the checks; exit 1 when a finding is an error."""
    return run_with_cache(_diagnose, args, out, err)


COMMAND = Command("diagnose", add, run)
