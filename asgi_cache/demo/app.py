"""The demo users service: FastAPI + SQLAlchemy async, cached with asgi-cache.

::

    GET    /users/{user_id}          cached response, tag users:{user_id}
    GET    /users?limit=&offset=     cached response, tag users:list
    PUT    /users/{user_id}          create or replace; invalidates users:{user_id}, users:list
    DELETE /users/{user_id}          invalidates users:{user_id}, users:list
    GET    /users/{user_id}/profile  cache-aside through Depends(cache.aside(...))
    POST   /users/{user_id}/views    count a page view: write-behind (saved in batches)
    GET    /health/cache             the cache's health endpoint
    GET    /demo/stats               database queries and writes, the cache's counters

Configuration comes from the environment: ``DATABASE_URL`` (SQLite in a temporary directory
when unset), ``DEMO_DB_DELAY`` (seconds per read, default 0.1), ``DEMO_DB_POOL`` (connections,
default 5), ``DEMO_USERS`` (rows seeded, default 100) and the usual ``ASGI_CACHE_*`` variables
(the memory backend when ``ASGI_CACHE_URL`` is unset).
"""

# No ``from __future__ import annotations`` here: FastAPI resolves the endpoints' annotations
# at runtime, and the profile endpoint's Depends(...) names a local of create_app().
import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel
from starlette.routing import Route

from .. import BackendError, Cache, CacheMiddleware, Change
from .._exceptions import ConfigurationError
from .._validate import problem, seconds, whole
from .db import UserStore

DEFAULT_NAMESPACE = "asgi-cache-demo"

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class UserIn(BaseModel):
    """What a client sends to create or replace a user."""

    name: str
    email: str
    bio: str = ""


class User(UserIn):
    """A stored user."""

    id: int
    updated_at: float


class Profile(BaseModel):
    """A user's public profile, assembled from the users table."""

    id: int
    name: str
    bio: str
    email_domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    """Settings of the demo app (see `from_env`)."""

    database_url: str | None = None
    """``sqlite:///...`` or ``postgresql://...``; ``None`` means a SQLite file in a temp dir."""
    db_delay: float = 0.1
    """Seconds each database read takes."""
    db_pool: int = 5
    """Database connections (SQLAlchemy's default pool size)."""
    users: int = 100
    """Rows seeded into an empty table."""
    seed: int = 7
    """Seed of the generated rows."""
    ttl: float = 300.0
    """Freshness of cached users and profiles, in seconds."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "DemoConfig":
        """Read ``DATABASE_URL``, ``DEMO_DB_DELAY``, ``DEMO_DB_POOL`` and ``DEMO_USERS``.

        Raises:
            ConfigurationError: A variable has a bad value (the message names it).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"database_url": env.get("DATABASE_URL") or None}
        parse: Callable[[str], Any]
        for var, field, parse, check in (
            ("DEMO_DB_DELAY", "db_delay", float, seconds(zero=True, note="such as 0.1")),
            ("DEMO_DB_POOL", "db_pool", int, whole()),
            ("DEMO_USERS", "users", int, whole()),
        ):
            raw = env.get(var)
            if raw is None:
                continue
            try:
                value = parse(raw)
            except ValueError:
                value = None
            if value is None or not check.ok(value):
                raise ConfigurationError(problem(var, raw, check.expected))
            values[field] = value
        values.update(overrides)
        return cls(**values)


def demo_cache(environ: Mapping[str, str] | None = None, **options: Any) -> Cache:
    """The demo's cache: ``ASGI_CACHE_*`` settings, memory backend unless a URL is set."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("ASGI_CACHE_NAMESPACE", DEFAULT_NAMESPACE)
    return Cache.from_env(env, **options)


def create_app(
    config: DemoConfig | None = None,
    *,
    cache: Cache | None = None,
    cached: bool = True,
    reset: bool = False,
) -> FastAPI:
    """Build the demo users service.

    Args:
        config: Database and data settings; `DemoConfig.from_env` when omitted.
        cache: The cache to use; `demo_cache` when omitted.
        cached: ``False`` builds the same app as it would be written without asgi-cache (no
            middleware; the decorators left out; the profile dependency is the loader itself),
            for the comparison run. Its health endpoint reports a disabled cache.
        reset: Drop and re-seed the users table, and clear the cache's namespace, at startup.
    """
    config = config or DemoConfig.from_env()
    cache = cache or demo_cache()
    if not cached:
        cache = Cache(cache.settings.replace(enabled=False))
    runtime = _Runtime(config)

    async def save_views(changes: list[Change]) -> None:
        # Keys are users:<id>:views; the upsert on (user_id, version) makes redelivery safe.
        counts = [(int(c.key.split(":")[1]), int(c.value or 0), c.version) for c in changes]
        await runtime.store.save_views(counts)

    views = cache.write_behind("demo-views", handler=save_views, batch_size=200, poll=0.2)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.open(reset=reset)
        try:
            async with cache:
                if reset:
                    await cache.clear()
                if cached:
                    views.start()
                try:
                    yield
                finally:
                    if cached:
                        await views.stop()
                        await views.drain()  # what is left goes to the database now
        finally:
            await runtime.close()

    app = FastAPI(title="asgi-cache demo: users", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.cache = cache
    ttl = config.ttl
    cache_response: Callable[..., _Decorator] = _unchanged
    cache_invalidates: Callable[..., _Decorator] = _unchanged
    cache_aside: Callable[..., Any] = _loader
    if cached:
        app.add_middleware(CacheMiddleware, cache=cache)
        cache_response = cache.response
        cache_invalidates = cache.invalidates
        cache_aside = cache.aside

    @app.get("/users/{user_id}", response_model=User)
    @cache_response(ttl=ttl, tags=["users:{user_id}"], stale_while_revalidate=30)
    async def get_user(user_id: int) -> dict[str, Any]:
        user = await runtime.store.get(user_id)
        if user is None:
            raise HTTPException(404, f"user {user_id} not found")
        return user

    @app.get("/users", response_model=list[User])
    @cache_response(ttl=ttl, tags=["users:list"])
    async def list_users(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        return await runtime.store.list(limit=limit, offset=offset)

    @app.put("/users/{user_id}", response_model=User)
    @cache_invalidates("users:{user_id}", "users:list")
    async def put_user(user_id: int, body: UserIn, response: Response) -> dict[str, Any]:
        user, created = await runtime.store.upsert(user_id, body.model_dump())
        response.status_code = 201 if created else 200
        return user

    @app.delete("/users/{user_id}", status_code=204)
    @cache_invalidates("users:{user_id}", "users:list")
    async def delete_user(user_id: int) -> Response:
        if not await runtime.store.delete(user_id):
            raise HTTPException(404, f"user {user_id} not found")
        return Response(status_code=204)

    async def load_profile(user_id: int) -> Profile | None:
        user = await runtime.store.get(user_id)
        if user is None:
            return None
        domain = user["email"].rpartition("@")[2]
        return Profile(id=user_id, name=user["name"], bio=user["bio"], email_domain=domain)

    profile_dependency = cache_aside(
        load_profile, key="users:{user_id}:profile", ttl=ttl, tags=["users:{user_id}"]
    )

    @app.get("/users/{user_id}/profile", response_model=Profile)
    async def get_profile(
        profile: Annotated[Profile | None, Depends(profile_dependency)],
    ) -> Profile:
        if profile is None:
            raise HTTPException(404, "user not found")
        return profile

    # One lock: the count is read, incremented and written back (a demo of write-behind, not
    # of counters; the demo serves from one process, so the lock keeps the count exact).
    views_lock = asyncio.Lock()

    @app.post("/users/{user_id}/views")
    async def add_view(user_id: int) -> dict[str, int]:
        if not cached:
            return {"user_id": user_id, "views": await runtime.store.add_view(user_id)}
        key = f"users:{user_id}:views"
        async with views_lock:
            count = await cache.get(key)
            if count is None:
                count = await runtime.store.views(user_id)
            count += 1
            try:
                await views.write(key, count)  # cached now, saved with the next batch
            except BackendError:
                # Redis cannot make the change durable: write it to the database directly.
                count = await runtime.store.add_view(user_id)
        return {"user_id": user_id, "views": count}

    @app.get("/demo/stats")
    async def demo_stats() -> dict[str, Any]:
        return {
            "db_queries": runtime.store.queries,
            "db_writes": runtime.store.writes,
            "cache": cache.stats(),
        }

    # A Route (not add_route) takes any ASGI app as its endpoint, typed as such.
    app.router.routes.append(Route("/health/cache", cache.health_route()))
    return app


class _Runtime:
    """The parts of the app that exist only while it runs (the database and its files)."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self._store: UserStore | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def store(self) -> UserStore:
        if self._store is None:
            raise RuntimeError("the demo app has not started (run it with its lifespan)")
        return self._store

    async def open(self, *, reset: bool) -> None:
        config = self.config
        url = config.database_url
        if url is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="asgi-cache-demo-")
            url = f"sqlite:///{Path(self._tmpdir.name) / 'users.db'}"
        self._store = UserStore(url, delay=config.db_delay, pool_size=config.db_pool)
        await self._store.prepare(config.users, seed=config.seed, reset=reset)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.aclose()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def _unchanged(*args: Any, **kwargs: Any) -> _Decorator:
    """Stands in for ``cache.response`` / ``cache.invalidates`` in the app without a cache."""
    return lambda endpoint: endpoint


def _loader(loader: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """Stands in for ``cache.aside``: without a cache, the dependency is the loader itself."""
    return loader
