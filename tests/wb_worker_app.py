"""A write-behind target for the worker tests: ``python -m asgi_cache.cli worker
tests.wb_worker_app:wb``.

The cache comes from ``ASGI_CACHE_URL``; the handler saves into the SQLite file ``WB_DB`` as
the docs say a handler should (an upsert on (key, version)), and also logs every change it
applies (duplicates included) so a test can count them. ``WB_SLOW``: seconds the handler
sleeps before saving (it first touches ``WB_DB.started``); ``WB_FAIL_KEY``: a key it refuses;
``WB_LEASE``: the lease; ``WB_BATCH``: the batch size; ``WB_COALESCE=0``: every change
reaches the handler.
"""

from __future__ import annotations

import os
import sqlite3

import anyio

from asgi_cache import Cache, Change

DB = os.environ.get("WB_DB", "")
SLOW = float(os.environ.get("WB_SLOW", "0"))
FAIL_KEY = os.environ.get("WB_FAIL_KEY", "")

# Generous budgets: these tests are about delivery, not time (a loaded machine is slow).
cache = Cache.from_env(op_timeout=10.0, namespace="wbw")


def connect() -> sqlite3.Connection:
    """The test database, with its two tables."""
    db = sqlite3.connect(DB, timeout=30)
    db.execute("CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, version INT, value TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS log (id TEXT, key TEXT, version INT, pid INT)")
    return db


async def save(batch: list[Change]) -> None:
    """Apply a batch in one transaction (an upsert on (key, version)), logging each change."""
    if SLOW:
        await anyio.Path(DB + ".started").touch()
        await anyio.sleep(SLOW)
    db = connect()
    try:
        with db:
            for c in batch:
                if c.key == FAIL_KEY:
                    raise RuntimeError(f"cannot save {c.key}")
                db.execute(
                    "INSERT INTO log VALUES (?, ?, ?, ?)", (c.id, c.key, c.version, os.getpid())
                )
                db.execute(
                    "INSERT INTO rows VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "version = excluded.version, value = excluded.value "
                    "WHERE excluded.version > rows.version",
                    (c.key, c.version, None if c.deleted else str(c.value)),
                )
    finally:
        db.close()


wb = cache.write_behind(
    "jobs",
    handler=save,
    batch_size=int(os.environ.get("WB_BATCH", "50")),
    lease=float(os.environ.get("WB_LEASE", "30")),
    max_deliveries=3,
    retry_backoff=0.01,
    poll=0.2,
    write_timeout=10.0,
    coalesce=os.environ.get("WB_COALESCE", "1") == "1",
)
