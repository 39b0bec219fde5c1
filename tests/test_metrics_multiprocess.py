"""``cache.metrics_route()`` under ``uvicorn --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``:
whichever worker answers a scrape reports the requests of every worker (real processes)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .http_support import uvicorn_worker
from .metrics_support import samples, value


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    app = "tests.metrics_worker_app:create_app"
    with uvicorn_worker(env, app, "--workers", "2", ready="/up", start_timeout=60) as base:
        yield base


def test_a_scrape_sums_every_worker(two_workers: str) -> None:
    pids: dict[int, int] = {}
    sent = 0
    # A new connection per request, so both workers get some (the kernel picks the worker).
    while sent < 400 and (len(pids) < 2 or sent < 20):
        answer = httpx.get(f"{two_workers}/items/{sent}", timeout=10).json()
        pids[answer["pid"]] = pids.get(answer["pid"], 0) + 1
        sent += 1
    assert len(pids) == 2, f"one worker answered all {sent} requests"
    deadline = time.monotonic() + 30
    while True:  # each worker copies its tally every 0.2 s: poll, bounded
        found = samples(httpx.get(f"{two_workers}/metrics/", timeout=10).text)
        misses = value(found, "asgi_cache_requests_total", layer="memory", result="miss", reason="")
        if misses == sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert misses == sent  # more than either worker counted: pids shows the split
    assert max(pids.values()) < sent
    origin = value(found, "asgi_cache_origin_duration_seconds_count", route="/items/{item_id}")
    assert origin == sent
