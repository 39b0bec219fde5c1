"""Helpers for the HTTP middleware tests: a fake clock, caches, clients, command counting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_cache import Cache, CacheMiddleware, CacheSettings
from asgi_cache.backends import Backend, MemoryBackend, RedisBackend

from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """Replaces the ``time`` module inside the middleware: real time plus an offset.

    Advancing it makes entries stale without sleeping; the backend keeps its real expiry.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def make_cache(backend: Backend, **settings: Any) -> Cache:
    """A cache on ``backend`` with no TTL jitter (so lifetimes are exact)."""
    options: dict[str, Any] = {"namespace": "web", "ttl_jitter": 0.0}
    options.update(settings)
    return Cache(CacheSettings(**options), backend=backend)


def backend_for(kind: str, redis_url: str | None = None) -> Backend:
    """A fresh memory backend, or a Redis backend on the suite's server."""
    if kind == "memory":
        return MemoryBackend()
    assert redis_url is not None
    return RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT)


@asynccontextmanager
async def client_for(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` through ASGI."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def wrap(app: Any, cache: Cache, **options: Any) -> CacheMiddleware:
    """``app`` behind a :class:`CacheMiddleware`."""
    return CacheMiddleware(app, cache=cache, **options)


def command_calls(server: RedisServer) -> dict[str, int]:
    """Per-command call counts from ``INFO commandstats`` (info/config themselves excluded)."""
    out: dict[str, int] = {}
    for line in server.command("INFO", "commandstats").decode().splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, _, rest = line.partition(":")
        calls = int(rest.split(",")[0].split("=")[1])
        cmd = name.removeprefix("cmdstat_")
        if cmd.split("|")[0] not in ("info", "config"):
            out[cmd] = calls
    return out


@contextmanager
def uvicorn_worker(
    env: dict[str, str],
    factory: str = "tests.http_worker_app:create_app",
    *options: str,
    ready: str = "/health",
    start_timeout: float = 20,
) -> Iterator[str]:
    """A uvicorn process serving ``factory`` (tests/http_worker_app.py) with ``env`` and
    extra uvicorn ``options``, once ``ready`` answers; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            *options,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:  # wait for the process to listen (start-up, not ordering of events)
            try:
                httpx.get(f"{base}{ready}", timeout=0.5).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # a request still held (a failed test): no leftover
            proc.kill()
            proc.wait(10)


def worker_environment(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of tests/http_worker_app.py workers (set in this process too, for its
    own copy of the app): a fresh JSON "database" and the suite's Redis."""
    db = tmp_path / "db.json"
    db.write_text(json.dumps({"1": "ann", "2": "bob"}))
    monkeypatch.setenv("HTTP_TEST_DB", str(db))
    monkeypatch.setenv("ASGI_CACHE_URL", redis_url)
    return dict(os.environ)
