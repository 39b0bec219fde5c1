"""The ``asgi-cache`` command: see and steer a cache from a shell.

::

    asgi-cache demo [--once]                    run the demo app and its workload
    asgi-cache health [--json]                  probe Redis: status, latency, memory, policy
    asgi-cache stats [--json]                   the namespace's keys and Redis's counters
    asgi-cache invalidate --tag T --key K --url U --prefix P   (each repeatable)
    asgi-cache inspect KEY [--json] [--value]   one entry's metadata (TTL, tags, size, ...)

Every command reads ``ASGI_CACHE_URL``, ``ASGI_CACHE_NAMESPACE`` and the other
``ASGI_CACHE_*`` variables; ``--url`` and ``--namespace`` take precedence. Exit codes: 0 on
success, 1 when the operation failed (Redis unreachable, no such entry, invalidation not
applied), 2 for bad input (the message says what is allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import Cache
from ._exceptions import BackendError, ConfigurationError
from ._urls import mask_url
from ._validate import Check, number, seconds, whole
from .entry_info import describe_entry, format_entry
from .keys import validate_key
from .settings import CacheSettings

EXIT_OK = 0
"""The command did what was asked."""
EXIT_FAILED = 1
"""The command ran but failed: Redis unreachable, no such entry, invalidation not applied."""
EXIT_USAGE = 2
"""Bad input: unknown option, invalid value, or a feature this install does not have."""


class CommandFailed(Exception):
    """A command cannot complete; the message is printed and the exit code returned."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asgi-cache`` command line and return its exit code.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when omitted.

    Returns:
        0 on success, 1 when the operation failed, 2 for bad input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "demo":
            return _run_demo(args)
        settings = _settings(args)
        command: Callable[[argparse.Namespace, Cache, TextIO, TextIO], Awaitable[int]]
        command = _COMMANDS[args.command]
        return asyncio.run(_with_cache(command, args, settings, out, err))
    except ConfigurationError as exc:
        print(f"asgi-cache: error: {exc}", file=err)
        return EXIT_USAGE
    except CommandFailed as exc:
        print(f"asgi-cache: {exc}", file=err)
        return exc.code
    except KeyboardInterrupt:
        print("asgi-cache: interrupted", file=err)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``asgi-cache`` command."""
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument(
        "--namespace",
        default=argparse.SUPPRESS,
        help="key namespace (default: $ASGI_CACHE_NAMESPACE, else 'cache')",
    )
    conn.add_argument(
        "--timeout",
        type=_seconds,
        default=argparse.SUPPRESS,
        help="seconds to wait for each Redis operation (default: 5)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[conn])
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help="Redis URL (default: $ASGI_CACHE_URL)"
    )
    parser = argparse.ArgumentParser(
        prog="asgi-cache",
        description="Inspect and steer an asgi-cache namespace, or run the demo app.",
        parents=[common],
        epilog="Exit codes: 0 success, 1 operation failed, 2 bad input.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the demo users service, benchmark it with and without the cache",
        description="Start the demo FastAPI app under uvicorn, drive a short workload at it "
        "once without and once with the cache, print the comparison, then keep serving.",
    )
    _add_demo_options(demo)

    health = sub.add_parser("health", parents=[common], help="probe the backend")
    health.add_argument("--json", action="store_true", help="print JSON")

    stats = sub.add_parser("stats", parents=[common], help="count the namespace's keys")
    stats.add_argument("--json", action="store_true", help="print JSON")

    inv = sub.add_parser(
        "invalidate",
        parents=[conn],
        help="invalidate tags, keys, URLs or key prefixes",
        description="Each option may be repeated; all given are applied in order: tags, "
        "keys, URLs, prefixes.",
    )
    inv.add_argument("--tag", action="append", default=[], metavar="T", help="a tag")
    inv.add_argument("--key", action="append", default=[], metavar="K", help="a data key")
    inv.add_argument(
        "--url",
        dest="target_urls",
        action="append",
        default=[],
        metavar="U",
        help="a cached page: a path (/users/42) or URL; every variant, query and host",
    )
    inv.add_argument(
        "--prefix",
        action="append",
        default=[],
        metavar="P",
        help="every data key starting with P (scans the keyspace)",
    )
    inv.add_argument(
        "--redis-url",
        dest="url",
        default=argparse.SUPPRESS,
        help="Redis URL (here --url names a page; default: $ASGI_CACHE_URL)",
    )
    inv.add_argument("--batch", type=_positive_int, default=500, help="keys per SCAN batch")

    inspect = sub.add_parser("inspect", parents=[common], help="show one entry's metadata")
    inspect.add_argument(
        "key", help="a data key (users:42:profile) or a full key (<namespace>:h:<digest>)"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument("--value", action="store_true", help="also print the decoded value")
    return parser


def _add_demo_options(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: free)")
    demo.add_argument(
        "--once", action="store_true", help="exit after the comparison instead of serving"
    )
    demo.add_argument(
        "--requests", type=_positive_int, default=600, help="measured requests per run"
    )
    demo.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=None,
        help="unmeasured requests that warm the cache first (default: twice --requests)",
    )
    demo.add_argument(
        "--users", type=_positive_int, default=None, help="rows in the user table (default: 100)"
    )
    demo.add_argument("--concurrency", type=_positive_int, default=20, help="parallel clients")
    demo.add_argument(
        "--think",
        type=_non_negative_seconds,
        default=0.1,
        help="mean pause of each client between requests, in seconds (default: 0.1)",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the workload and data")
    demo.add_argument(
        "--write-ratio",
        type=_fraction,
        default=0.03,
        help="share of requests that are writes (default: 0.03)",
    )
    demo.add_argument(
        "--time-limit", type=_seconds, default=60.0, help="longest time per run, in seconds"
    )


# -- argument types -------------------------------------------------------------------------


def _argument(convert: Callable[[str], Any], check: Check) -> Callable[[str], Any]:
    """An argparse type: ``convert(raw)``, accepted when it passes ``check``.

    argparse names the option itself ("argument --batch: '0' is not allowed: ..."), so the
    message quotes only what was typed, in the grammar of every other check.
    """

    def parse(raw: str) -> Any:
        try:
            value = convert(raw)
        except ValueError:
            value = None
        if value is None or not check.ok(value):
            raise argparse.ArgumentTypeError(f"{raw!r} is not allowed: expected {check.expected}")
        return value

    return parse


_positive_int = _argument(int, whole())
_non_negative_int = _argument(int, whole(minimum=0))
_seconds = _argument(float, seconds())
_non_negative_seconds = _argument(float, seconds(zero=True))
_port_number = _argument(int, Check(lambda v: v <= 65535, "a port 0-65535"))


def _port(raw: str) -> int:
    # Two messages: a non-number is told what a number is, a number what a port is.
    _non_negative_int(raw)
    value: int = _port_number(raw)
    return value


_fraction = _argument(float, number(minimum=0, below=1, words="a fraction 0-0.99"))


# -- plumbing -------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> CacheSettings:
    overrides: dict[str, Any] = {}
    if getattr(args, "url", None) is not None:
        overrides["url"] = args.url
    if getattr(args, "namespace", None) is not None:
        overrides["namespace"] = args.namespace
    timeout = getattr(args, "timeout", 5.0)
    # A person at a shell can wait longer than a request path should.
    overrides["op_timeout"] = overrides["connect_timeout"] = timeout
    overrides["pool_timeout"] = timeout
    settings = CacheSettings.from_env(os.environ, **overrides)
    if settings.backend_scheme == "memory":
        raise ConfigurationError(
            f"url={settings.url!r} is not allowed here: a memory:// cache lives inside the "
            "app's own process; give the Redis URL with --url or ASGI_CACHE_URL"
        )
    return settings


async def _with_cache(
    command: Callable[[argparse.Namespace, Cache, TextIO, TextIO], Awaitable[int]],
    args: argparse.Namespace,
    settings: CacheSettings,
    out: TextIO,
    err: TextIO,
) -> int:
    cache = Cache(settings)
    try:
        return await command(args, cache, out, err)
    finally:
        await cache.aclose()


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for printing."""
    return mask_url(url)


def _raw_client(settings: CacheSettings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.op_timeout,
        socket_connect_timeout=settings.connect_timeout,
    )


def _unreachable(settings: CacheSettings, exc: object) -> CommandFailed:
    return CommandFailed(f"cannot use Redis at {redact(settings.url)}: {exc}")


def _dump(data: Any) -> str:
    return orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode()


def _memory_text(used: Any, limit: Any) -> str:
    """``1.2 MiB used of 256.0 MiB (0.5%)``, or ``... of no limit`` when maxmemory is 0."""
    text = f"{_size(used)} used of {_size(limit) if limit else 'no limit'}"
    if isinstance(used, int) and isinstance(limit, int) and limit:
        text += f" ({used / limit:.1%})"
    return text


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _table(rows: Sequence[tuple[str, Any]], out: TextIO) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=out)


# -- commands -------------------------------------------------------------------------------


async def _health(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    report = await cache.health()
    if report.get("status") != "down":
        # The first probe paid for connecting; report the round trip an app would see.
        report = await cache.health()
    code = EXIT_FAILED if report.get("status") == "down" else EXIT_OK
    if args.json:
        print(_dump(report), file=out)
        return code
    rows: list[tuple[str, Any]] = [
        ("status", report["status"]),
        ("backend", f"{report['backend']} {report.get('version') or ''}".rstrip()),
        ("url", redact(cache.settings.url)),
        ("namespace", report["namespace"]),
    ]
    if report["status"] == "down":
        rows.append(("error", report.get("error", "")))
    else:
        memory = _memory_text(report.get("used_memory"), report.get("maxmemory"))
        rows += [
            ("latency", f"{report['latency_ms']:.2f} ms"),
            ("memory", memory),
            ("policy", report.get("maxmemory_policy") or "-"),
        ]
    if "breaker" in report:
        rows.append(("breaker", report["breaker"]))
    rows.append(("warnings", "; ".join(report.get("warnings") or []) or "-"))
    _table(rows, out)
    return code


_SPACES = {"d": "data", "h": "http", "v": "vary", "t": "tags", "l": "locks", "n": "notify"}


async def _stats(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    prefix = cache.keys.prefix
    counts = dict.fromkeys([*_SPACES.values(), "other"], 0)
    client = _raw_client(cache.settings)
    try:
        cursor = 0
        while True:
            cursor, found = await client.scan(cursor=cursor, match=_glob(prefix) + "*", count=1000)
            for key in found:
                raw_key = key if isinstance(key, bytes) else key.encode()
                space = raw_key[len(prefix) : len(prefix) + 2].decode(errors="replace")
                name = _SPACES.get(space[0]) if space.endswith(":") else None
                counts[name or "other"] += 1
            if int(cursor) == 0:
                break
        info = await client.info()
    except (RedisError, OSError) as exc:
        raise _unreachable(cache.settings, exc) from None
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
        print(_dump(report), file=out)
        return EXIT_OK
    server = report["redis"]
    _table(
        [
            ("namespace", f"{report['namespace']} at {redact(cache.settings.url)}"),
            ("keys", ", ".join(f"{k} {v}" for k, v in report["keys"].items())),
            ("memory", _memory_text(server["used_memory"], server["maxmemory"])),
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


async def _invalidate(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    if not (args.tag or args.key or args.target_urls or args.prefix):
        raise ConfigurationError(
            "invalidate needs at least one of --tag T, --key K, --url U or --prefix P"
        )
    status = await cache.health()
    if status["status"] == "down":
        raise CommandFailed(f"cannot use Redis at {redact(cache.settings.url)}: {status['error']}")
    errors = cache.stats()["errors"]

    def check(what: str) -> None:
        # The data API fails open (counts the error and returns 0); an operator must know.
        if cache.stats()["errors"] > errors:
            raise CommandFailed(f"{what} was not applied: Redis failed during the operation")

    if args.tag:
        live = await cache.invalidate_tags(*args.tag)
        check("tag invalidation")
        print(f"invalidated {len(args.tag)} tag(s); {live} had live entries", file=out)
    if args.key:
        deleted = await cache.delete(*args.key)
        check("key deletion")
        print(f"deleted {deleted} of {len(args.key)} key(s)", file=out)
    for url in args.target_urls:
        live = await cache.invalidate_url(url)
        check(f"invalidation of {url}")
        print(f"invalidated {url} ({'had' if live else 'no'} live responses)", file=out)
    for prefix in args.prefix:
        progress = _Progress(err, f"deleting {prefix}*")
        try:
            deleted = await cache.invalidate_prefix(prefix, batch=args.batch, progress=progress)
        except BackendError as exc:
            progress.done()
            raise _unreachable(cache.settings, exc) from None
        progress.done()
        print(f"deleted {deleted} entries under {prefix!r}", file=out)
    return EXIT_OK


class _Progress:
    """A one-line progress indicator on a terminal; silent when the stream is not one."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.live = stream.isatty()
        self.shown = False

    def __call__(self, count: int) -> None:
        if self.live:
            self.stream.write(f"\r{self.label}: {count} deleted")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


async def _inspect(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    keys = cache.keys
    full_key = args.key
    if not full_key.startswith((keys.prefix + "d:", keys.prefix + "h:")):
        full_key = keys.data(validate_key(args.key))
    client = _raw_client(cache.settings)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.get(full_key)
            pipe.pttl(full_key)
            raw, pttl = await pipe.execute()
        info = describe_entry(full_key, raw, pttl, keys, cache.serializer)
        if info.get("tags"):
            versions = await client.mget([t["tag_key"] for t in info["tags"]])
            for tag, current in zip(info["tags"], versions, strict=True):
                recorded = tag.pop("version").encode()
                if isinstance(current, str):
                    current = current.encode()
                tag["current"] = current == recorded
            if not all(t["current"] for t in info["tags"]):
                info["state"] = "invalidated"
    except (RedisError, OSError) as exc:
        raise _unreachable(cache.settings, exc) from None
    finally:
        await client.aclose(close_connection_pool=True)
    if not args.value:
        info.pop("value", None)
    if args.json:
        print(_dump(info), file=out)
    else:
        print(format_entry(info), file=out)
    if not info["exists"]:
        print(f"asgi-cache: no entry at {full_key!r}", file=err)
        return EXIT_FAILED
    return EXIT_FAILED if "error" in info else EXIT_OK


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _run_demo(args: argparse.Namespace) -> int:
    # Loaded on demand, not imported at the top: the demo needs the ``demo`` extra
    # (FastAPI, uvicorn, SQLAlchemy), which the other commands do without.
    try:
        demo = importlib.import_module("asgi_cache.demo.run")
    except ImportError as exc:
        raise CommandFailed(
            f"the demo needs its extra dependencies ({exc.name} is missing): "
            "pip install 'asgi-cache[demo]'",
            EXIT_USAGE,
        ) from None
    code: int = demo.run_demo(args)
    return code


_COMMANDS: dict[str, Callable[[argparse.Namespace, Cache, TextIO, TextIO], Awaitable[int]]] = {
    "health": _health,
    "stats": _stats,
    "invalidate": _invalidate,
    "inspect": _inspect,
}
