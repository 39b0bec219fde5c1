"""Write-behind workers as real processes on the suite's Redis: the ``asgi-cache worker``
command (status, dead letter, replay), a graceful SIGTERM, a killed worker's batch taken over
after the lease, and a slow handler never run twice at once for the same changes."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from asgi_cache import Cache, Change
from asgi_cache.cli import main

from . import wb_worker_app
from .redis_server import wait_until

ROOT = Path(__file__).resolve().parent.parent
CLI = "import sys; from asgi_cache.cli import main; sys.exit(main(sys.argv[1:]))"
"""The ``asgi-cache`` command, as its console script runs it."""


@pytest.fixture
def worker_env(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The environment of a worker process (and of the target module in this one)."""
    env = {"ASGI_CACHE_URL": redis_url, "WB_DB": str(tmp_path / "db.sqlite3")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    importlib.reload(wb_worker_app)
    yield env
    monkeypatch.undo()
    importlib.reload(wb_worker_app)


def spawn(env: dict[str, str], *args: str, **extra: str) -> subprocess.Popen[str]:
    """Start ``asgi-cache worker tests.wb_worker_app:wb`` in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "worker", "tests.wb_worker_app:wb", *args],
        cwd=ROOT,
        env={**os.environ, **env, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(env: dict[str, str]) -> dict[str, tuple[int, str]]:
    """The saved rows: key -> (version, value)."""
    db = wb_worker_app.connect()
    try:
        return {k: (v, val) for k, v, val in db.execute("SELECT key, version, value FROM rows")}
    finally:
        db.close()


def applied(env: dict[str, str]) -> list[tuple[str, str, int]]:
    """Every change the handler applied: (idempotency id, key, pid), duplicates included."""
    db = wb_worker_app.connect()
    try:
        return list(db.execute("SELECT id, key, pid FROM log"))
    finally:
        db.close()


async def write_all(redis_url: str, n: int, *, prefix: str = "k") -> None:
    cache = Cache.from_url(redis_url, namespace="wbw", op_timeout=2.0)
    wb = cache.write_behind("jobs", handler=wb_worker_app.save)
    async with cache:
        for i in range(n):
            await wb.write(f"{prefix}:{i}", i)


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["worker", "tests.wb_worker_app:wb", *args])
    return code, capsys.readouterr().out


def test_the_worker_command_drains_lists_and_replays_dead_letters(
    worker_env: dict[str, str], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    anyio.run(write_all, redis_url, 3)
    proc = spawn(worker_env, "--drain", WB_FAIL_KEY="k:1")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "settled 3 changes" in out
    assert set(rows(worker_env)) == {"k:0", "k:2"}
    code, out = cli("--status", capsys=capsys)
    status = json.loads(out)
    assert code == 0
    assert (status["backlog"], status["dead_letters"]) == (0, 1)
    code, out = cli("--dead-letters", capsys=capsys)
    (letter,) = json.loads(out)
    assert letter["change"]["key"] == "k:1"
    assert (letter["deliveries"], letter["reason"]) == (3, "RuntimeError: cannot save k:1")
    code, out = cli("--replay", capsys=capsys)
    assert (code, out.strip()) == (0, "replayed 1 dead letters of 'jobs'")
    proc = spawn(worker_env, "--drain")
    proc.communicate(timeout=60)
    assert rows(worker_env)["k:1"][1] == "1"


def test_the_worker_command_refuses_a_bad_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "tests.wb_worker_app"]) == 2
    assert "expected module:attribute" in capsys.readouterr().err
    assert main(["worker", "tests.wb_worker_app:cache"]) == 2
    assert "names a Cache, expected a WriteBehind" in capsys.readouterr().err
    assert main(["worker", "tests.no_such_module:wb"]) == 2
    assert "cannot load" in capsys.readouterr().err


def test_sigterm_finishes_the_batch_in_hand(worker_env: dict[str, str], redis_url: str) -> None:
    anyio.run(write_all, redis_url, 5)
    started = Path(worker_env["WB_DB"] + ".started")
    proc = spawn(worker_env, WB_SLOW="1.5")
    try:
        wait_until(started.exists, what="the handler started", timeout=60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopping 'jobs' after the batch in hand" in err
    assert json.loads(out)["applied"] == 5
    assert len(rows(worker_env)) == 5
    assert wb_worker_app.wb is not None
    info = anyio.run(_probe, redis_url)
    assert (info["backlog"], info["pending"]) == (0, 0)


async def _probe(redis_url: str) -> Any:
    async with wb_worker_app.wb as wb:
        return await wb.probe()


def test_a_killed_worker_s_batch_is_taken_over_after_the_lease(
    worker_env: dict[str, str], redis_url: str
) -> None:
    anyio.run(write_all, redis_url, 8)
    started = Path(worker_env["WB_DB"] + ".started")
    proc = spawn(worker_env, WB_SLOW="60", WB_LEASE="1")
    try:
        wait_until(started.exists, what="the handler started", timeout=60)
    finally:
        proc.kill()  # kill -9: the batch stays pending with the dead consumer
        proc.communicate(timeout=30)

    async def take_over() -> dict[str, Any]:
        cache = Cache.from_url(redis_url, namespace="wbw", op_timeout=2.0)
        wb = cache.write_behind("jobs", handler=wb_worker_app.save, lease=1.0, poll=0.1)
        async with cache:
            deadline = time.monotonic() + 60
            while len(rows(worker_env)) < 8 and time.monotonic() < deadline:
                await wb.drain()
                await anyio.sleep(0.1)
            return dict(wb.status())

    status = anyio.run(take_over)
    assert len(rows(worker_env)) == 8
    assert status["reclaimed"] == 8
    ids = [i for i, _, _ in applied(worker_env)]
    assert len(ids) == len(set(ids)) == 8  # the killed worker never committed


async def test_a_slow_handler_past_the_lease_is_never_run_twice_at_once(redis_url: str) -> None:
    in_flight: set[str] = set()
    overlaps: list[str] = []
    done: list[str] = []
    all_done = anyio.Event()

    async def slow(batch: list[Change]) -> None:
        ids = {c.id for c in batch}
        overlaps.extend(ids & in_flight)
        in_flight.update(ids)
        await anyio.sleep(2.0)  # more than three leases
        in_flight.difference_update(ids)
        done.extend(ids)
        if len(done) >= 20:
            all_done.set()

    caches = [Cache.from_url(redis_url, namespace="slow", op_timeout=2.0) for _ in range(2)]
    wbs = [c.write_behind("s", handler=slow, lease=0.6, poll=0.05, batch_size=10) for c in caches]
    async with caches[0], caches[1]:
        for i in range(20):
            await wbs[0].write(f"k:{i}", i)
        for wb in wbs:
            wb.start()
        with anyio.fail_after(60):
            await all_done.wait()
        for wb in wbs:
            await wb.stop()
    assert overlaps == []
    assert sorted(done) == sorted(set(done))
    assert sum(wb.status()["lease_lost"] + wb.status()["reclaimed"] for wb in wbs) == 0
    assert sum(wb.status()["applied"] for wb in wbs) == 20
