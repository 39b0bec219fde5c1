"""The systems under test: one small app module each, all on the same workload.

Every module exposes ``build(config) -> (app, origin)`` and ``create_app()`` (uvicorn's
``--factory`` entry point). ``GET /item/{id}`` answers the 1007-byte JSON body after the
origin's database wait; ``GET /ping`` is an uncached readiness probe.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class System:
    """One system under test.

    Attributes:
        name: Name in the tables.
        module: Module under ``benchmarks.apps``.
        cached: It caches ``/item/{id}`` (``bare`` and ``nocache`` do not).
        uses_redis: Its cache lives in Redis.
        seed: It serves the seed workload's ``/users/{id}`` routes.
        requires: Modules that must import for the system to run.
        note: How the system is configured, for the docs.
        only_seed: It runs in the seed phase only (a variant of another system's writes).
    """

    name: str
    module: str
    cached: bool
    uses_redis: bool
    seed: bool = False
    requires: tuple[str, ...] = ()
    note: str = ""
    only_seed: bool = False

    @property
    def factory(self) -> str:
        """uvicorn's ``--factory`` target."""
        return f"benchmarks.apps.{self.module}:create_app"

    def unavailable(self) -> str | None:
        """Why the system cannot run here, or ``None`` when it can."""
        for name in self.requires:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                return f"{name} is not importable ({exc})"
        if self.name.startswith("asgi-cache"):
            try:
                from asgi_cache import Cache, CacheMiddleware  # noqa: F401
            except ImportError:
                return (
                    "asgi_cache.CacheMiddleware is not importable yet "
                    "(the HTTP middleware has not landed on this branch)"
                )
            if not hasattr(Cache, "response"):
                return "Cache.response is missing (the HTTP middleware has not landed)"
            if self.name.endswith("-l1"):
                from dataclasses import fields

                from asgi_cache import CacheSettings

                if "l1_ttl" not in {f.name for f in fields(CacheSettings)}:
                    return "CacheSettings has no l1_ttl yet (the near-cache has not landed)"
        return None


SYSTEMS: tuple[System, ...] = (
    System("bare", "bare", cached=False, uses_redis=False, requires=("fastapi",),
           note="FastAPI, handler returns the body, no database wait, no cache"),
    System("nocache", "nocache", cached=False, uses_redis=False, seed=True,
           requires=("fastapi",), note="FastAPI, handler waits for the database, no cache"),
    System("asgi-cache-memory", "asgi_cache_memory", cached=True, uses_redis=False, seed=True,
           requires=("fastapi",),
           note="CacheMiddleware + @cache.response, memory:// backend (per process)"),
    System("asgi-cache-redis", "asgi_cache_redis", cached=True, uses_redis=True, seed=True,
           requires=("fastapi",), note="CacheMiddleware + @cache.response, Redis backend"),
    System("asgi-cache-redis-l1", "asgi_cache_redis_l1", cached=True, uses_redis=True,
           seed=True, requires=("fastapi",),
           note="the same with the opt-in L1 near-cache (l1_ttl=2 s) in front of Redis"),
    System("asgi-cache-redis-refresh", "asgi_cache_redis_refresh", cached=True,
           uses_redis=True, seed=True, only_seed=True, requires=("fastapi",),
           note="asgi-cache-redis whose writes refresh what they invalidate (refresh=True)"),
    System("fastapi-cache2", "fastapi_cache2_app", cached=True, uses_redis=True,
           requires=("fastapi_cache",), note="@cache(expire=...) decorator, RedisBackend"),
    System("cashews", "cashews_app", cached=True, uses_redis=True, requires=("cashews",),
           note="@cache(ttl=...) decorator, redis:// backend"),
    System("cashews-lock", "cashews_lock_app", cached=True, uses_redis=True,
           requires=("cashews",), note="@cache(ttl=..., lock=True): cashews' stampede lock"),
    System("aiocache", "aiocache_app", cached=True, uses_redis=True, requires=("aiocache",),
           note="@cached(cache=Cache.REDIS, serializer=JsonSerializer())"),
    System("litestar", "litestar_app", cached=True, uses_redis=True, requires=("litestar",),
           note="Litestar route with cache=ttl, RedisStore (its built-in response cache)"),
)  # fmt: skip


def by_name(names: list[str] | None) -> list[System]:
    """The systems named (all when ``names`` is empty), in the canonical order."""
    if not names:
        return list(SYSTEMS)
    known = {s.name for s in SYSTEMS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; known: {sorted(known)}")
    return [s for s in SYSTEMS if s.name in names]
