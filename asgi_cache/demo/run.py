"""``asgi-cache demo``: serve the demo app, measure it without and with the cache, keep serving.

Each run starts the app under uvicorn in a background thread on 127.0.0.1, drives the same
seeded workload at it over real HTTP from a separate client process (so the clients do not
compete with the server for this process's interpreter lock) and reads the database query
count and the cache's counters from ``/demo/stats``. The run with the cache is preceded by an
unmeasured warm-up (a production cache is warm too; the intro says how many requests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial
from typing import Any, TextIO

import httpx
import uvicorn
from fastapi import FastAPI

from .. import Cache
from .app import DemoConfig, create_app, demo_cache
from .report import RunReport, hit_rate, render_table, summarize
from .workload import Outcome, PlannedRequest, drive_blocking, plan, plan_views


class DemoServer:
    """An ASGI app served by uvicorn in a background thread on 127.0.0.1.

    Args:
        app: The app to serve.
        port: The port; 0 picks a free one.

    Raises:
        RuntimeError: The port cannot be listened on (in use, or not allowed).
    """

    def __init__(self, app: FastAPI, port: int = 0) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. Without it, Nagle's algorithm holds back the
        # second write of each keep-alive response until the client's delayed ACK: +40 ms.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.socket.bind(("127.0.0.1", port))
        except OSError as exc:
            self.socket.close()
            raise RuntimeError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # uvicorn exits when the app's startup fails; start() reports that.
        with contextlib.suppress(SystemExit):
            self.server.run(sockets=[self.socket])

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start serving; return once the app's startup has completed.

        Raises:
            RuntimeError: The app failed to start (its error was logged) or took too long.
        """
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the demo app did not start (see the log above)")
            time.sleep(0.02)  # the server thread gives no other signal than this flag

    def stop(self) -> None:
        """Shut down (running the app's shutdown) and wait for the thread."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(30)
        self.socket.close()


def run_demo(
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Run ``asgi-cache demo`` with parsed ``args``; return the exit code.

    Args:
        args: The ``demo`` subcommand's options.
        out: Where to print (standard output by default).
        stop: When not ``--once``: set it to stop serving (Ctrl-C does the same).
        on_ready: Called with the base URL once the cached app serves for good.

    Returns:
        0, or 1 when a request failed (no response or a 5xx) or the app did not start.
    """
    out = out or sys.stdout
    overrides = (
        {"seed": args.seed} if args.users is None else {"seed": args.seed, "users": args.users}
    )
    config = DemoConfig.from_env(**overrides)
    cache = demo_cache()
    warmup = 2 * args.requests if args.warmup is None else args.warmup
    options = {"users": config.users, "write_ratio": args.write_ratio}
    measured = plan(args.requests, seed=args.seed, **options)
    warm = plan(warmup, seed=args.seed + 1, **options)
    views = plan_views(getattr(args, "views", 0), users=config.users, seed=args.seed)
    _intro(out, args, config, cache, warmup)
    spawn = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as clients:
            without = _measure_run(
                "without cache",
                create_app(config, cache=cache, cached=False, reset=True),
                args,
                [],
                measured,
                out,
                clients,
                views=views,
            )[0]
            with_cache, server = _measure_run(
                "with cache",
                create_app(config, cache=cache, cached=True, reset=True),
                args,
                warm,
                measured,
                out,
                clients,
                views=views,
                keep=not args.once,
            )
    except RuntimeError as exc:
        print(f"asgi-cache: {exc}", file=sys.stderr)
        return 1
    print(file=out)
    print(render_table(without, with_cache), file=out)
    print(file=out)
    code = 1 if without.errors or with_cache.errors else 0
    if server is None:
        return code
    _serve(server, out, stop or threading.Event(), on_ready)
    return code


def _intro(
    out: TextIO, args: argparse.Namespace, config: DemoConfig, cache: Cache, warmup: int
) -> None:
    database = config.database_url or "SQLite in a temporary directory"
    backend = cache.settings.url if cache.settings.backend_scheme == "memory" else "Redis"
    print("asgi-cache demo: a users service (FastAPI + SQLAlchemy async)", file=out)
    print(
        f"  database: {database.split('@')[-1]}, {config.db_delay * 1000:.0f} ms per read, "
        f"{config.db_pool} connections; cache: {backend}, namespace {cache.keys.namespace}",
        file=out,
    )
    print(
        f"  workload: {args.requests} requests, {args.concurrency} clients "
        f"({args.think * 1000:.0f} ms think time), "
        f"{args.write_ratio:.0%} writes, Zipf-distributed ids over {config.users} users "
        f"(seed {args.seed}); the cached run is warmed by {warmup} requests first",
        file=out,
    )


def _measure_run(
    label: str,
    app: FastAPI,
    args: argparse.Namespace,
    warm: list[PlannedRequest],
    measured: list[PlannedRequest],
    out: TextIO,
    clients: Executor,
    *,
    views: list[PlannedRequest],
    keep: bool = False,
) -> tuple[RunReport, DemoServer | None]:
    server = DemoServer(app, args.port)
    server.start()
    try:
        print(f"  running {label} on {server.url} ...", file=out, flush=True)
        report = asyncio.run(
            _drive_run(label, server.url, args, warm, measured, clients, views=views)
        )
    except BaseException:
        server.stop()
        raise
    if keep:
        return report, server
    server.stop()
    return report, None


async def _drive_run(
    label: str,
    base_url: str,
    args: argparse.Namespace,
    warm: list[PlannedRequest],
    measured: list[PlannedRequest],
    clients: Executor,
    *,
    views: list[PlannedRequest],
) -> RunReport:
    loop = asyncio.get_running_loop()

    def run(requests: list[PlannedRequest]) -> Awaitable[list[Outcome]]:
        job = partial(
            drive_blocking,
            base_url,
            requests,
            concurrency=args.concurrency,
            time_limit=args.time_limit,
            think=args.think,
        )
        return loop.run_in_executor(clients, job)

    if warm:
        await run(warm)
    before = await _stats(base_url)
    start = time.perf_counter()
    outcomes = await run(measured)
    seconds = time.perf_counter() - start
    after = await _stats(base_url)
    cached = after["cache"].get("enabled", True)
    db_writes = viewed = 0
    if views:
        viewed = sum(1 for o in await run(views) if o.status == 200)
        db_writes = await _caught_up(base_url) - after["db_writes"]
    return summarize(
        label,
        outcomes,
        planned=len(measured),
        db_queries=after["db_queries"] - before["db_queries"],
        seconds=seconds,
        hit_rate=hit_rate(before["cache"], after["cache"]) if cached else None,
        views=viewed,
        db_writes=db_writes,
    )


async def _caught_up(base_url: str) -> int:
    """The database writes so far, once write-behind has nothing left to save (or after
    30 s)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        deadline = time.monotonic() + 30.0
        while True:
            health = (await client.get("/health/cache")).json()
            logs = health.get("write_behind") or {}
            backlog = sum(s.get("backlog", 0) for s in logs.values())
            if not backlog or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        writes: int = (await client.get("/demo/stats")).json()["db_writes"]
        return writes


async def _stats(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        response = await client.get("/demo/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def _serve(
    server: DemoServer,
    out: TextIO,
    stop: threading.Event,
    on_ready: Callable[[str], None] | None,
) -> None:
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        # A service manager stops with SIGTERM: shut down as cleanly as on Ctrl-C.
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        _print_examples(server.url, out)
        if on_ready is not None:
            on_ready(server.url)
        while not stop.wait(0.2) and server.thread.is_alive():
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        print("stopped", file=out)


def _print_examples(url: str, out: TextIO) -> None:
    print(f"Serving the cached demo at {url} (Ctrl-C to stop). Try:", file=out)
    for line in (
        f"curl -i {url}/users/1          # X-Cache: HIT (warmed by the workload)",
        f"curl -i -X PUT {url}/users/1 -H 'content-type: application/json' "
        '-d \'{"name": "Ada Lovelace", "email": "ada@example.com"}\'',
        f"curl -i {url}/users/1          # X-Cache: MISS, then HIT: the PUT invalidated it",
        f"curl {url}/users/1/profile     # cache-aside through Depends(cache.aside)",
        f"curl '{url}/users?limit=5'",
        f"curl {url}/health/cache",
        f"curl {url}/demo/stats",
    ):
        print(f"  {line}", file=out)
    out.flush()
