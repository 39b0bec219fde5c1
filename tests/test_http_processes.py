"""Invalidation across real worker processes: a PUT in one process, a GET in another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .http_support import client_for
from .http_worker_app import create_app
from .redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A uvicorn worker process serving tests/http_worker_app.py; yields its base URL."""
    db = tmp_path / "db.json"
    db.write_text(json.dumps({"1": "ann", "2": "bob"}))
    monkeypatch.setenv("HTTP_TEST_DB", str(db))
    monkeypatch.setenv("ASGI_CACHE_URL", redis_url)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tests.http_worker_app:create_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:  # wait for the process to listen (start-up, not ordering of events)
            try:
                httpx.get(f"{base}/health", timeout=0.5).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


async def test_put_in_one_process_invalidates_get_in_another(worker: str) -> None:
    local = create_app()
    async with httpx.AsyncClient(base_url=worker) as remote, client_for(local) as here:
        first = await remote.get("/users/1")
        hit = await remote.get("/users/1")
        put = await here.put("/users/1", params={"name": "ann2"})
        after = await remote.get("/users/1")
        other = await remote.get("/users/2")
        # And the other way round: the worker's PUT is seen here.
        await here.get("/users/2")
        await remote.put("/users/2", params={"name": "bob2"})
        here_after = await here.get("/users/2")
    await local.state.cache.aclose()
    assert first.headers["x-cache"] == "MISS"
    assert hit.headers["x-cache"] == "HIT"
    assert hit.json()["pid"] != os.getpid()
    assert put.status_code == 200
    assert after.headers["x-cache"] == "MISS"
    assert after.json()["name"] == "ann2"
    assert other.headers["x-cache"] == "MISS"
    assert here_after.headers["x-cache"] == "MISS"
    assert here_after.json()["name"] == "bob2"
