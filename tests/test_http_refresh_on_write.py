"""Refresh on write: ``@cache.invalidates(..., refresh=True)`` and
``CacheMiddleware(refresh_on_write=True)`` fetch the GET entries a write invalidated again in
the background, so the next reader hits a fresh entry.

Every test counts origin calls (the handler's own counter) and checks what readers see after
each write, on memory and on the suite's Redis.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI

from asgi_cache import BackendTimeoutError, Cache, ConfigurationError
from asgi_cache.http import CacheMiddleware

from .http_support import client_for, wrap


class Users:
    """A tiny database with an origin-call counter and a gauge of concurrent reads."""

    def __init__(self) -> None:
        self.names = {i: f"user{i}" for i in range(20)}
        self.calls: Counter[str] = Counter()
        self.running = 0
        self.most_running = 0
        self.gate: asyncio.Event | None = None
        self.changed = asyncio.Event()

    async def reached(self, running: int) -> None:
        """Wait until ``running`` reads are inside the app (bounded: a hang fails)."""

        async def wait() -> None:
            while self.running < running:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout=10)

    async def read(self, what: str) -> None:
        self.calls[what] += 1
        self.running += 1
        self.changed.set()
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
        finally:
            self.running -= 1


def users_app(cache: Cache, db: Users, *, refresh: bool = True, **options: Any) -> CacheMiddleware:
    app = FastAPI()

    @app.get("/users/{user_id}")
    @cache.response(ttl=60, tags=["users:{user_id}"])
    async def get_user(user_id: int) -> dict[str, Any]:
        name = db.names[user_id]  # the row is read, then the database is slow to answer
        await db.read(f"user{user_id}")
        return {"id": user_id, "name": name}

    @app.get("/teams/{team}")
    @cache.response(ttl=60, tags=["users:list"])
    async def team(team: int) -> list[str]:
        await db.read(f"team{team}")
        return [db.names[i] for i in range(team, team + 3)]

    @app.put("/users/{user_id}")
    @cache.invalidates("users:{user_id}", "users:list", refresh=refresh)
    async def put_user(user_id: int, name: str) -> dict[str, Any]:
        db.names[user_id] = name
        return {"id": user_id, "name": name}

    @app.patch("/users/{user_id}")
    async def patch_user(user_id: int, name: str) -> dict[str, Any]:  # URI invalidation only
        db.names[user_id] = name
        return {"id": user_id, "name": name}

    return wrap(app, cache, **options)


Service = tuple[Users, CacheMiddleware]


@pytest.fixture
def service(web_cache: Cache) -> Service:
    """The users app with ``refresh=True`` on its writes, and its database."""
    db = Users()
    return db, users_app(web_cache, db)


async def test_the_next_read_after_a_write_hits_the_refreshed_entry(service: Service) -> None:
    db, app = service
    async with client_for(app) as client:
        assert (await client.get("/users/1")).headers["x-cache"] == "MISS"
        assert (await client.put("/users/1", params={"name": "ann"})).status_code == 200
        await app.drain()  # the refresh has run
        assert db.calls["user1"] == 2  # the first miss, then one refresh
        after = await client.get("/users/1")
        assert after.headers["x-cache"] == "HIT"
        assert after.json() == {"id": 1, "name": "ann"}
        assert db.calls["user1"] == 2
    refresher = app.context.refresher
    assert refresher.refreshes == 1


async def test_without_refresh_the_next_read_misses(web_cache: Cache) -> None:
    db = Users()
    app = users_app(web_cache, db, refresh=False)
    async with client_for(app) as client:
        await client.get("/users/1")
        await client.put("/users/1", params={"name": "ann"})
        await app.drain()
        assert db.calls["user1"] == 1
        after = await client.get("/users/1")
        assert after.headers["x-cache"] == "MISS"
        assert after.json()["name"] == "ann"
    assert app.context.refresher.refreshes == 0


async def test_only_the_entries_depending_on_the_write_are_fetched(service: Service) -> None:
    db, app = service
    async with client_for(app) as client:
        for i in range(5):
            await client.get(f"/users/{i}")
        await client.get("/teams/0")
        await client.get("/teams/5")
        await client.put("/users/2", params={"name": "bob"})
        await app.drain()
        # users:2 and users:list: /users/2 and both teams; the other users stay as they were.
        assert db.calls == Counter(
            {"user0": 1, "user1": 1, "user2": 2, "user3": 1, "user4": 1, "team0": 2, "team5": 2}
        )
        team = await client.get("/teams/0")
        assert team.headers["x-cache"] == "HIT"
        assert team.json() == ["user0", "user1", "bob"]


async def test_a_read_arriving_during_the_refresh_waits_for_it(service: Service) -> None:
    db, app = service
    async with client_for(app) as client:
        await client.get("/users/1")
        db.gate = asyncio.Event()
        await client.put("/users/1", params={"name": "ann"})
        await db.reached(1)  # the refresh is inside the app
        reader = asyncio.create_task(client.get("/users/1"))
        await asyncio.sleep(0.05)
        db.gate.set()
        got = await reader
        await app.drain()
    assert got.json()["name"] == "ann"
    assert got.headers["x-cache"] == "HIT"  # coalesced with the refresh in flight
    assert db.calls["user1"] == 2


async def test_writes_during_a_refresh_coalesce_into_one_more(service: Service) -> None:
    db, app = service
    async with client_for(app) as client:
        await client.get("/users/1")
        db.gate = asyncio.Event()
        await client.put("/users/1", params={"name": "a"})
        await db.reached(1)
        for name in ("b", "c", "d", "e"):  # while the first refresh is held in the app
            await client.put("/users/1", params={"name": name})
        db.gate.set()
        await app.drain()
        assert db.calls["user1"] == 3  # the miss, the held refresh, one more for the rest
        after = await client.get("/users/1")
    assert after.json()["name"] == "e"  # the held refresh read "a": its store was refused
    assert after.headers["x-cache"] == "HIT"
    assert app.context.refresher.coalesced == 4


async def test_refreshes_run_a_few_at_a_time(service: Service) -> None:
    db, app = service
    async with client_for(app) as client:
        for team in range(12):
            await client.get(f"/teams/{team}")
        db.gate = asyncio.Event()
        await client.put("/users/19", params={"name": "z"})  # users:list: 12 entries
        await db.reached(4)
        await asyncio.sleep(0.05)
        assert db.running == 4  # the limit: the others wait their turn
        db.gate.set()
        await app.drain()
    assert sum(n for what, n in db.calls.items() if what.startswith("team")) == 24
    assert db.most_running == 4


async def test_every_read_after_a_write_sees_it(web_cache: Cache) -> None:
    # Read-after-write with refreshes racing the readers: never the value before the write.
    db = Users()
    app = users_app(web_cache, db)
    async with client_for(app) as client:
        await client.get("/users/3")
        for n in range(25):
            await client.put("/users/3", params={"name": f"v{n}"})
            got = await client.get("/users/3")
            assert got.json()["name"] == f"v{n}"
        await app.drain()


async def test_the_middleware_option_refreshes_after_uri_invalidation(web_cache: Cache) -> None:
    db = Users()
    app = users_app(web_cache, db, refresh=False, refresh_on_write=True)
    async with client_for(app) as client:
        await client.get("/users/4")
        await client.patch("/users/4", params={"name": "dee"})  # no decorator: the URI only
        await app.drain()
        after = await client.get("/users/4")
    assert after.headers["x-cache"] == "HIT"
    assert after.json()["name"] == "dee"
    assert db.calls["user4"] == 2


async def test_requests_with_credentials_are_never_refreshed(service: Service) -> None:
    db, app = service
    async with client_for(app) as client:
        got = await client.get("/users/5", headers={"authorization": "Bearer x"})
        assert got.headers["x-cache"] == "BYPASS"
        await client.put("/users/5", params={"name": "eve"})
        await app.drain()
    assert db.calls["user5"] == 1
    assert "users:5" not in set(app.context.refresher._by_tag)


def test_refresh_must_be_a_flag(web_cache: Cache) -> None:
    with pytest.raises(ConfigurationError, match="refresh"):
        web_cache.invalidates("users:{user_id}", refresh="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="refresh_on_write"):
        wrap(FastAPI(), web_cache, refresh_on_write=1)


async def test_what_is_remembered_is_bounded(service: Service) -> None:
    db, app = service
    refresher = app.context.refresher
    refresher.limit = 3
    async with client_for(app) as client:
        for i in range(6):
            await client.get(f"/users/{i}")
        await client.put("/users/0", params={"name": "old"})  # forgotten: not refreshed
        await client.put("/users/5", params={"name": "new"})  # remembered: refreshed
        await app.drain()
    assert len(refresher._fetches) == 3
    assert (db.calls["user0"], db.calls["user5"]) == (1, 2)


async def test_a_read_sent_after_a_write_never_takes_an_older_miss_response(
    web_cache: Cache,
) -> None:
    # Read-after-write with in-process coalescing: a miss that read the row before the write
    # must not hand its response to a GET sent after the write was answered.
    db = Users()
    app = users_app(web_cache, db, refresh=False)
    async with client_for(app) as client:
        db.gate = asyncio.Event()
        first = asyncio.create_task(client.get("/users/7"))  # reads "user7", then waits
        await db.reached(1)
        assert (await client.put("/users/7", params={"name": "new"})).status_code == 200
        second = asyncio.create_task(client.get("/users/7"))  # joins the miss in flight
        await asyncio.sleep(0.05)
        db.gate.set()
        before, after = await first, await second
    assert before.json()["name"] == "user7"  # sent before the write: the old row is fine
    assert after.json()["name"] == "new"
    assert db.calls["user7"] == 2  # the late reader asked the app itself


async def test_a_read_sent_after_a_write_never_takes_an_older_response_whose_store_failed(
    web_cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The leader's store fails (a timed-out Redis): unlike a refused store, a failed one
    # proves nothing about writes made while the app ran. A GET sent after this process's
    # write must still not take the response read before it.
    db = Users()
    app = users_app(web_cache, db, refresh=False)
    backend = web_cache.backend

    async def failing_set(*args: Any, **kwargs: Any) -> bool:
        raise BackendTimeoutError("redis SET timed out after 250 ms")

    async with client_for(app) as client:
        db.gate = asyncio.Event()
        first = asyncio.create_task(client.get("/users/7"))  # reads "user7", then waits
        await db.reached(1)
        assert (await client.put("/users/7", params={"name": "new"})).status_code == 200
        second = asyncio.create_task(client.get("/users/7"))  # joins the miss in flight
        await asyncio.sleep(0.05)
        monkeypatch.setattr(backend, "set", failing_set)
        db.gate.set()
        before, after = await first, await second
    assert before.json()["name"] == "user7"
    assert after.json()["name"] == "new"
    assert db.calls["user7"] == 2  # the late reader asked the app itself
    assert web_cache.stats()["errors"] >= 1  # the store did fail


async def test_a_write_elsewhere_leaves_coalescing_alone(web_cache: Cache) -> None:
    # Only this process's invalidations of the flight's own tags unshare it: a write to
    # another user while the miss runs still lets the late reader take its response.
    db = Users()
    app = users_app(web_cache, db, refresh=False)
    async with client_for(app) as client:
        db.gate = asyncio.Event()
        first = asyncio.create_task(client.get("/users/7"))
        await db.reached(1)
        assert (await client.put("/users/8", params={"name": "other"})).status_code == 200
        second = asyncio.create_task(client.get("/users/7"))
        await asyncio.sleep(0.05)
        db.gate.set()
        before, after = await first, await second
    assert before.json() == after.json() == {"id": 7, "name": "user7"}
    assert db.calls["user7"] == 1  # coalesced
