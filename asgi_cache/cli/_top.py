"""``asgi-cache top``: a live terminal view of a cache, refreshing until ``q`` or Ctrl-C.

Redis's side comes from ``INFO`` (memory against ``maxmemory``, evictions, operations per
second, the server's keyspace hit rate). The app's side lives in the app's processes, so
``--dashboard URL`` names the app's dashboard mount (``cache.dashboard_route()``), whose
``data.json`` gives the hit rate, hit and origin latency, the top routes, the breaker, the
invalidation queue, the L1 and write-behind. ``--once`` prints one frame and exits (for
scripts); the live view needs a terminal. Needs the ``cli`` extra (``rich``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import Any, TextIO

import httpx
from redis.exceptions import RedisError

from .. import Cache
from ._base import (
    EXIT_OK,
    EXIT_USAGE,
    Command,
    CommandFailed,
    Parsers,
    memory_text,
    raw_client,
    redact,
    run_with_cache,
    seconds_arg,
)

NEEDS_RICH = "asgi-cache top needs rich: pip install 'asgi-cache[cli]'"


def _rich() -> Any:
    try:
        import rich.console  # the optional extra: imported when the command runs
        import rich.live
        import rich.table
    except ImportError as exc:
        raise CommandFailed(NEEDS_RICH, EXIT_USAGE) from exc
    return rich


async def _redis_side(cache: Cache) -> dict[str, Any]:
    client = raw_client(cache.settings)
    try:
        info = await client.info()
        keys = await client.dbsize()
    except (RedisError, OSError) as exc:
        return {"error": str(exc)}
    finally:
        await client.aclose(close_connection_pool=True)
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    return {
        "version": info.get("redis_version"),
        "used_memory": info.get("used_memory"),
        "maxmemory": info.get("maxmemory"),
        "policy": info.get("maxmemory_policy"),
        "evicted_keys": info.get("evicted_keys"),
        "ops_per_sec": info.get("instantaneous_ops_per_sec"),
        "clients": info.get("connected_clients"),
        "keys": keys,
        "hit_rate": hits / (hits + misses) if hits + misses else None,
    }


async def _app_side(client: httpx.AsyncClient | None, url: str) -> dict[str, Any] | None:
    if client is None:
        return None
    try:
        response = await client.get(url)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": f"{url}: {exc}"}
    return data


def _percent(value: Any) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, int | float) else "-"


def _ms(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "-"


def frame(rich: Any, cache: Cache, redis: dict[str, Any], app: dict[str, Any] | None) -> Any:
    """One screen of ``top``: a rich renderable."""
    table = rich.table.Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    title = f"asgi-cache top: {cache.keys.namespace} at {redact(cache.settings.url)}"
    table.add_row("", f"[bold]{title}[/] (q quits)")
    if "error" in redis:
        table.add_row("redis", f"[red]unreachable: {redis['error']}[/]")
    else:
        table.add_row(
            "redis", f"{redis['version']}, {redis['keys']} keys, {redis['clients']} clients"
        )
        table.add_row("memory", memory_text(redis["used_memory"], redis["maxmemory"]))
        table.add_row("policy", str(redis["policy"]))
        table.add_row("evicted", str(redis["evicted_keys"]))
        table.add_row("ops/s", str(redis["ops_per_sec"]))
        table.add_row("redis hit rate", f"{_percent(redis['hit_rate'])} (whole server)")
    if app is None:
        table.add_row("app", "pass --dashboard URL (the app's dashboard mount) for its figures")
    elif "error" in app:
        table.add_row("app", f"[red]{app['error']}[/]")
    else:
        _app_rows(table, app)
    return table


def _app_rows(table: Any, app: dict[str, Any]) -> None:
    counts = app.get("counts", {})
    table.add_row("hit rate", f"[bold green]{_percent(app.get('hit_rate'))}[/]")
    table.add_row(
        "lookups",
        f"{counts.get('hits', 0)} hits, {counts.get('stale', 0)} stale, "
        f"{counts.get('misses', 0)} misses, {counts.get('errors', 0)} errors",
    )
    for kind in ("hit", "origin"):
        lat = app.get("latency", {}).get(kind, {})
        table.add_row(
            f"{kind} ms",
            f"p50 {_ms(lat.get('p50'))}  p90 {_ms(lat.get('p90'))}  p99 {_ms(lat.get('p99'))}"
            f"  ({lat.get('count', 0)} requests)",
        )
    for row in app.get("routes_by_traffic", [])[:5]:
        table.add_row("route", f"{row['route']}: {row['cached']} cached, {row['origin']} origin")
    breaker = app.get("breaker")
    table.add_row("breaker", breaker["state"] if breaker else "none")
    inv = app.get("invalidations", {})
    table.add_row("invalidations", f"{inv.get('pending', 0)} pending")
    l1 = app.get("l1")
    table.add_row("L1", f"{l1['entries']} entries, {l1['hits']} hits" if l1 else "off")
    for name, status in (app.get("write_behind") or {}).items():
        table.add_row("write-behind", f"{name}: backlog {status.get('backlog', '-')}")
    for warning in app.get("warnings", []):
        table.add_row("warning", f"[yellow]{warning}[/]")


@contextlib.contextmanager
def _keys(stream: TextIO) -> Iterator[int | None]:
    """Single keys from ``stream`` without waiting for Enter (cbreak: Ctrl-C still
    interrupts); the terminal's mode is restored after."""
    if not stream.isatty():
        yield None
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _top(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    rich = _rich()
    console = rich.console.Console(file=out)
    data_url = _data_url(args.dashboard) if args.dashboard else None
    client = httpx.AsyncClient(timeout=args.interval + 5) if data_url else None
    try:
        if args.once:
            redis = await _redis_side(cache)
            console.print(frame(rich, cache, redis, await _app_side(client, data_url or "")))
            return EXIT_OK
        await _live(rich, console, cache, client, data_url or "", args.interval)
    finally:
        if client is not None:
            await client.aclose()
    return EXIT_OK


async def _live(
    rich: Any, console: Any, cache: Cache, client: httpx.AsyncClient | None, url: str, every: float
) -> None:
    quit_pressed = asyncio.Event()
    loop = asyncio.get_running_loop()
    with _keys(sys.stdin) as fd, rich.live.Live(console=console, auto_refresh=False) as live:
        if fd is not None:

            def on_key() -> None:
                if os.read(fd, 1) in (b"q", b"Q"):
                    quit_pressed.set()

            loop.add_reader(fd, on_key)
        try:
            while not quit_pressed.is_set():
                started = time.monotonic()
                redis = await _redis_side(cache)
                live.update(frame(rich, cache, redis, await _app_side(client, url)), refresh=True)
                left = max(0.0, every - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(quit_pressed.wait(), left)
        finally:
            if fd is not None:
                loop.remove_reader(fd)


def _data_url(dashboard: str) -> str:
    if not dashboard.startswith(("http://", "https://")):
        raise CommandFailed(
            f"--dashboard={dashboard!r} is not allowed: expected the http(s) URL of the app's "
            "dashboard mount (cache.dashboard_route()), such as http://127.0.0.1:8000/cache/",
            EXIT_USAGE,
        )
    return dashboard.rstrip("/") + "/data.json"


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``top`` parser."""
    top: argparse.ArgumentParser = sub.add_parser(
        "top", parents=[parents.common], help="a live view of Redis and the app's figures"
    )
    top.add_argument(
        "--dashboard", metavar="URL", help="the app's dashboard mount, for the app's figures"
    )
    top.add_argument(
        "--interval", type=seconds_arg, default=1.0, help="seconds between refreshes (1)"
    )
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    return top


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the live view until ``q`` or Ctrl-C (then exit 0)."""
    try:
        return run_with_cache(_top, args, out, err)
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how a live view is left


COMMAND = Command("top", add, run)
