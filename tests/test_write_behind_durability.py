"""Write-behind guarantees with real processes and a real Redis that is killed.

- 10,000 writes from four producer processes while worker processes are killed with
  SIGKILL at random points and restarted: every acknowledged write reaches the handler, and
  the upsert on (key, version) leaves each key at its newest acknowledged write.
- Redis killed and restarted with AOF (``appendfsync always``): nothing acknowledged is lost.
- Redis killed and restarted without persistence: what was not yet handled is lost (as
  docs/write-behind.md says), and versions keep growing, so later writes still win.
- Retention: entries delivered but not acknowledged are never trimmed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from asgi_cache import Cache, Change

from . import wb_worker_app
from .redis_server import RedisServer, redis_binary, wait_until
from .test_write_behind_workers import ROOT, rows, spawn
from .test_write_behind_workers import worker_env as worker_env  # the fixture

pytestmark = pytest.mark.redis


def produce(env: dict[str, str], n: int, name: str, out: Path) -> subprocess.Popen[bytes]:
    """Start a producer process writing ``n`` changes through ``wb.write``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.wb_producer", str(n), name, str(out)],
        cwd=ROOT,
        env={**os.environ, **env},
    )


def acknowledged(paths: list[Path]) -> tuple[dict[tuple[str, int], str], int]:
    """(key, version) -> value of every write a producer saw acknowledged, and how many
    attempts failed (and were tried again)."""
    acks: dict[tuple[str, int], str] = {}
    failed = 0
    for path in paths:
        for line in path.read_text().splitlines():
            if line.startswith("failed "):
                failed += int(line.split()[1])
                continue
            key, version, value = line.split()
            acks[(key, int(version))] = value
    return acks, failed


def test_killed_workers_lose_no_acknowledged_write(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, "WB_LEASE": "1", "WB_BATCH": "50", "WB_COALESCE": "0"}
    env["WB_SLOW"] = "0.01"  # a little time inside the handler, where the kills should land
    outs = [tmp_path / f"producer-{i}.txt" for i in range(4)]
    producers = [produce(env, 2500, f"p{i}", out) for i, out in enumerate(outs)]
    workers = [spawn(env), spawn(env)]
    shuffle = random.Random(15)
    kills = 0
    try:
        while (any(p.poll() is None for p in producers) and kills < 12) or kills < 5:
            time.sleep(shuffle.uniform(0.3, 1.2))
            victim = shuffle.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].communicate(timeout=30)
            workers[victim] = spawn(env)
            kills += 1
        assert all(p.wait(timeout=600) == 0 for p in producers)
        acks, failed = acknowledged(outs)
        assert len(acks) == 10_000
        wait_until(lambda: applied_pairs() >= set(acks), what="every write handled", timeout=600)
    finally:
        for proc in [*workers, *producers]:
            proc.kill()
            proc.communicate(timeout=30)
    log = applied_versions()
    handled = {(key, version) for _, key, version in log}
    assert handled >= set(acks)  # every acknowledged write reached the handler
    # Besides them, at most the attempts that failed and may have landed all the same.
    assert len(handled - set(acks)) <= failed
    newest: dict[str, tuple[int, str]] = {}
    for (key, version), value in acks.items():
        if key not in newest or newest[key][0] < version:
            newest[key] = (version, value)
    assert rows(worker_env) == newest  # exactly once in effect: each key at its newest write
    assert len({i for i, _, _ in log}) == len(handled)  # one idempotency id per write
    print(f"kills: {kills}, handler applications: {len(log)} for 10000 writes, {failed} retried")


def applied_pairs() -> set[tuple[str, int]]:
    """(key, version) of every change applied so far."""
    return {(key, version) for _, key, version in applied_versions()}


def applied_versions() -> list[tuple[str, str, int]]:
    """(id, key, version) of every change applied so far, duplicates included."""
    db = wb_worker_app.connect()
    try:
        return list(db.execute("SELECT id, key, version FROM log"))
    finally:
        db.close()


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own with AOF on, fsynced on every write."""
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server not found")
    server = RedisServer(binary, "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.close()


class Table:
    """An in-memory table saved with an upsert on (key, version)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, object]] = {}

    async def __call__(self, batch: list[Change]) -> None:
        for c in batch:
            if c.key not in self.rows or self.rows[c.key][0] < c.version:
                self.rows[c.key] = (c.version, c.value)


async def _write(cache: Cache, table: Table, n: int) -> dict[str, tuple[int, object]]:
    wb = cache.write_behind("durable", handler=table)
    written: dict[str, tuple[int, object]] = {}
    async with cache:
        for i in range(n):
            written[f"k:{i % 50}"] = (await wb.write(f"k:{i % 50}", i), i)
    return written


async def _drain(cache: Cache, table: Table) -> int:
    async with cache:
        return await cache.write_behind("durable", handler=table).drain()


def test_redis_restarted_with_aof_loses_nothing_acknowledged(aof_redis: RedisServer) -> None:
    table = Table()
    cache = Cache.from_url(aof_redis.url, namespace="dur", op_timeout=2.0)
    written = anyio.run(_write, cache, table, 300)
    aof_redis.stop()  # SIGKILL: no shutdown save
    aof_redis.start()
    assert anyio.run(_drain, cache, table) == 300
    assert table.rows == written


def test_redis_restarted_without_persistence_loses_what_was_not_handled(
    own_redis: RedisServer,
) -> None:
    table = Table()
    cache = Cache.from_url(own_redis.url, namespace="dur", op_timeout=2.0)
    before = anyio.run(_write, cache, table, 100)
    own_redis.stop()
    own_redis.start()
    assert anyio.run(_drain, cache, table) == 0  # the stream went with the data
    assert table.rows == {}
    # Written again after the loss: versions keep growing (Redis's clock), so a database that
    # held a version from before would still take the new write.
    after = anyio.run(_write, cache, table, 50)
    assert all(after[k][0] > before[k][0] for k in after)
    anyio.run(_drain, cache, table)
    assert table.rows == after


async def test_delivered_changes_are_never_trimmed(redis_url: str) -> None:
    async def failing(batch: list[Change]) -> None:
        raise RuntimeError("database down")

    cache = Cache.from_url(redis_url, namespace="keep", op_timeout=2.0)
    wb = cache.write_behind(
        "keep",
        handler=failing,
        max_deliveries=1000,
        max_backlog=60,
        on_backlog="refuse",
        retry_backoff=0.01,
        max_backoff=0.01,
    )
    async with cache:
        for i in range(60):
            await wb.write(f"k:{i}", i)
        with anyio.move_on_after(1.0):
            await wb.run()  # every delivery fails: all 60 stay pending
        status = await wb.probe()
    assert (status["backlog"], status["pending"]) == (60, 60)
    assert status["retries"] > 0
