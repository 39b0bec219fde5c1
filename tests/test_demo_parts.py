"""The demo's parts on their own: database layer, workload plan and driver, report, server."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from asgi_cache import ConfigurationError
from asgi_cache.cli import main
from asgi_cache.demo.app import DemoConfig, demo_cache
from asgi_cache.demo.db import UserStore, async_url
from asgi_cache.demo.report import RunReport, hit_rate, render_table, summarize
from asgi_cache.demo.run import DemoServer
from asgi_cache.demo.workload import Outcome, Zipf, drive, percentile, plan

from .redis_server import free_port

DATABASES = ["sqlite", "postgresql"]


def database_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'users.db'}"
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql")):
        pytest.skip("set DATABASE_URL=postgresql://... to run the demo against PostgreSQL")
    return url


@pytest.fixture(params=DATABASES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserStore]:
    s = UserStore(database_url(request.param, tmp_path), delay=0.0, pool_size=2)
    await s.prepare(30, seed=3, reset=True)
    yield s
    await s.aclose()


# -- configuration --------------------------------------------------------------------------


def test_config_reads_the_environment() -> None:
    env = {
        "DATABASE_URL": "postgresql://u@h/db",
        "DEMO_DB_DELAY": "0.02",
        "DEMO_DB_POOL": "3",
        "DEMO_USERS": "50",
    }
    config = DemoConfig.from_env(env, seed=9)
    assert config == DemoConfig(
        database_url="postgresql://u@h/db", db_delay=0.02, db_pool=3, users=50, seed=9
    )
    assert DemoConfig.from_env({}) == DemoConfig()


@pytest.mark.parametrize(
    ("var", "value"), [("DEMO_DB_DELAY", "slow"), ("DEMO_DB_POOL", "0"), ("DEMO_USERS", "-5")]
)
def test_config_names_a_bad_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{var}='{value}' is not allowed"):
        DemoConfig.from_env({var: value})


def test_demo_cache_defaults_to_memory_in_its_own_namespace() -> None:
    cache = demo_cache({})
    assert cache.settings.url == "memory://"
    assert cache.keys.namespace == "asgi-cache-demo"
    redis = demo_cache({"ASGI_CACHE_URL": "redis://127.0.0.1:1/0", "ASGI_CACHE_NAMESPACE": "x"})
    assert (redis.settings.url, redis.keys.namespace) == ("redis://127.0.0.1:1/0", "x")


def test_async_url_picks_the_async_driver() -> None:
    assert async_url("sqlite:///tmp/x.db") == "sqlite+aiosqlite:///tmp/x.db"
    assert async_url("postgresql://u@h:5432/db") == "postgresql+asyncpg://u@h:5432/db"
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ConfigurationError, match="DATABASE_URL='mysql://h/db' is not allowed"):
        async_url("mysql://h/db")


# -- database -------------------------------------------------------------------------------


async def test_store_seeds_reads_and_counts_queries(store: UserStore) -> None:
    before = store.queries
    user = await store.get(7)
    assert user is not None
    assert user["id"] == 7
    assert user["email"].endswith("7@example.com")
    assert await store.get(999) is None
    page = await store.list(limit=5, offset=10)
    assert [u["id"] for u in page] == [11, 12, 13, 14, 15]
    assert store.queries - before == 3  # one statement per read


async def test_store_upserts_and_deletes(store: UserStore) -> None:
    data = {"name": "Ada Lovelace", "email": "ada@example.com", "bio": "Notes."}
    updated, created = await store.upsert(7, data)
    assert (created, updated["name"]) == (False, "Ada Lovelace")
    assert (await store.get(7) or {})["email"] == "ada@example.com"

    new, created = await store.upsert(500, data)
    assert (created, new["id"]) == (True, 500)
    assert await store.delete(500) is True
    assert await store.delete(500) is False
    assert await store.get(500) is None


async def test_prepare_keeps_existing_rows_unless_reset(store: UserStore) -> None:
    await store.upsert(1, {"name": "Changed", "email": "c@example.com", "bio": ""})
    await store.prepare(30, seed=3)
    assert (await store.get(1) or {})["name"] == "Changed"
    await store.prepare(10, seed=3, reset=True)
    assert (await store.get(1) or {})["name"] != "Changed"
    assert await store.get(11) is None


# -- workload -------------------------------------------------------------------------------


def test_plan_is_reproducible_and_mixes_reads_and_writes() -> None:
    requests = plan(4000, users=100, seed=1, write_ratio=0.1)
    assert requests == plan(4000, users=100, seed=1, write_ratio=0.1)
    assert requests != plan(4000, users=100, seed=2, write_ratio=0.1)
    kinds = Counter(r.kind for r in requests)
    assert 320 < kinds["write"] < 480  # about 10 percent
    assert kinds["user"] > kinds["profile"] > kinds["list"] > 0
    for r in requests:
        if r.kind == "write":
            assert r.method == "PUT"
            assert r.body is not None
            assert set(r.body) == {"name", "email", "bio"}
        else:
            assert (r.method, r.body) == ("GET", None)
        if r.kind in ("user", "write"):
            assert 1 <= int(r.path.rsplit("/", 1)[1]) <= 100


def test_reads_are_skewed_and_writes_are_not() -> None:
    requests = plan(6000, users=100, seed=4, write_ratio=0.2)
    reads = Counter(r.path for r in requests if r.kind == "user")
    writes = Counter(r.path for r in requests if r.kind == "write")
    top_read_share = reads.most_common(1)[0][1] / sum(reads.values())
    top_write_share = writes.most_common(1)[0][1] / sum(writes.values())
    assert top_read_share > 0.1  # 10x the uniform 1 percent
    assert top_write_share < 0.03


def test_zipf_ranks_follow_the_law() -> None:
    import random

    zipf = Zipf(50, 1.0, random.Random(5))
    ranks = Counter(zipf.rank() for _ in range(20000))
    assert set(ranks) <= set(range(1, 51))
    assert 1.5 < ranks[1] / ranks[2] < 2.6  # about 2 for s = 1
    assert sorted({zipf() for _ in range(5000)}) == list(range(1, 51))
    with pytest.raises(ValueError, match="n > 0 and s > 0"):
        Zipf(0, 1.0, random.Random())


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert math.isnan(percentile([], 50))


def _tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        if user_id == 13:
            raise RuntimeError("unlucky")
        return {"id": user_id}

    @app.put("/users/{user_id}")
    async def put(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    return app


@pytest.fixture
def tiny_server() -> Iterator[DemoServer]:
    server = DemoServer(_tiny_app())
    server.start()
    yield server
    server.stop()


async def test_drive_sends_every_planned_request(tiny_server: DemoServer) -> None:
    requests = plan(120, users=20, seed=3, write_ratio=0.2)
    outcomes = await drive(tiny_server.url, requests, concurrency=4)
    assert len(outcomes) == 120
    assert Counter(o.kind for o in outcomes) == Counter(r.kind for r in requests)
    by_status = Counter(o.status for o in outcomes if o.kind in ("user", "write"))
    unlucky = sum(1 for r in requests if r.path == "/users/13")
    assert by_status[500] == unlucky
    assert all(o.seconds > 0 for o in outcomes)


async def test_drive_pauses_between_requests_and_still_sends_them_all(
    tiny_server: DemoServer,
) -> None:
    requests = plan(30, users=5, seed=2, write_ratio=0.0)
    outcomes = await drive(tiny_server.url, requests, concurrency=3, think=0.001)
    assert sorted(o.kind for o in outcomes) == sorted(r.kind for r in requests)


async def test_drive_stops_at_the_time_limit(tiny_server: DemoServer) -> None:
    requests = plan(100_000, users=20, seed=3)
    # 2 s: long enough for a loaded machine to finish some requests, far too short for all.
    outcomes = await drive(tiny_server.url, requests, concurrency=2, time_limit=2.0)
    assert 0 < len(outcomes) < 100_000


async def test_drive_counts_refused_connections_as_failures() -> None:
    requests = plan(3, users=5, seed=1)
    outcomes = await drive(f"http://127.0.0.1:{free_port()}", requests, concurrency=1)
    assert [o.status for o in outcomes] == [0, 0, 0]


async def test_drive_only_targets_loopback() -> None:
    with pytest.raises(ValueError, match="only targets loopback"):
        await drive("http://10.0.0.1:8000", [], concurrency=1)


def test_server_that_fails_to_start_is_reported() -> None:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def broken(app: FastAPI) -> AsyncIterator[None]:
        raise OSError("database unreachable")
        yield  # pragma: no cover

    server = DemoServer(FastAPI(lifespan=broken))
    with pytest.raises(RuntimeError, match="did not start"):
        server.start()


# -- report ---------------------------------------------------------------------------------


def test_hit_rate_is_computed_between_two_snapshots() -> None:
    before = {"hits": 10, "stale": 0, "misses": 10}
    after = {"hits": 100, "stale": 5, "misses": 25}
    assert hit_rate(before, after) == pytest.approx(95 / 110)
    assert hit_rate(before, before) is None


def test_summary_and_table() -> None:
    outcomes = [Outcome("user", 200, s / 1000) for s in range(1, 101)]
    outcomes += [Outcome("user", 503, 0.5), Outcome("write", 0, 0.5)]
    report = summarize("with cache", outcomes, planned=102, db_queries=7, seconds=2.0, hit_rate=0.9)
    assert report.requests == 102
    assert report.errors == 2
    assert report.p50 == pytest.approx(0.051)
    assert report.throughput == 51.0
    without = RunReport(
        label="without cache",
        requests=0,
        planned=102,
        errors=0,
        hit_rate=None,
        p50=math.nan,
        p95=math.nan,
        p99=math.nan,
        db_queries=0,
        seconds=0.0,
    )
    table = render_table(without, report)
    lines = table.splitlines()
    assert "without cache" in lines[0]
    assert "with cache" in lines[0]
    rows = {line[:24].strip(): line[24:].split() for line in lines[2:]}
    assert rows["cache hit rate"] == ["-", "90.0%"]
    assert rows["latency p50"] == ["-", "51.0", "ms"]
    assert rows["errors (5xx, failed)"] == ["0", "2"]
    assert rows["database queries"] == ["0", "7"]
    assert math.isnan(without.throughput)


def test_the_demo_command_explains_a_missing_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "asgi_cache.demo.run", None)
    assert main(["demo", "--once"]) == 2
    assert "pip install 'asgi-cache[demo]'" in capsys.readouterr().err


def test_demo_options_parse() -> None:
    from asgi_cache.cli import build_parser

    args = build_parser().parse_args(["demo", "--once", "--requests", "50", "--port", "0"])
    assert isinstance(args, argparse.Namespace)
    assert (args.once, args.requests, args.warmup, args.port) == (True, 50, None, 0)
