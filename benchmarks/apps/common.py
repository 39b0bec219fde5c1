"""What every benchmark app shares: its configuration (from the environment) and the origin.

The runner starts each app under uvicorn with ``--factory``, or calls its ``build()`` in
process, and passes the settings through ``BENCH_*`` environment variables:

- ``BENCH_REDIS_URL``: the Redis the cache uses (the runner's own server, or a dead port).
- ``BENCH_COUNTER_URL``: where the origin counts its calls (``HINCRBY bench:origin <pid>``);
  unset means count in process only.
- ``BENCH_DB_MS``: how long the simulated database read sleeps (default 10).
- ``BENCH_TTL``: cache lifetime in seconds (default 600).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

ORIGIN_KEY = "bench:origin"


@dataclass(frozen=True)
class AppConfig:
    """Settings of one benchmark app process."""

    redis_url: str = "redis://127.0.0.1:1/0"
    counter_url: str | None = None
    db_seconds: float = 0.010
    ttl: int = 600

    @classmethod
    def from_env(cls) -> AppConfig:
        """Read the ``BENCH_*`` variables."""
        return cls(
            redis_url=os.environ.get("BENCH_REDIS_URL", cls.redis_url),
            counter_url=os.environ.get("BENCH_COUNTER_URL") or None,
            db_seconds=float(os.environ.get("BENCH_DB_MS", "10")) / 1000.0,
            ttl=int(os.environ.get("BENCH_TTL", "600")),
        )


class Origin:
    """The simulated database behind every handler; counts its reads.

    Reads are counted in process (``calls``) and, when a counter URL is configured, in Redis
    with one ``HINCRBY`` per read, so the runner can count origin calls across worker
    processes.
    """

    def __init__(self, config: AppConfig, *, sleep: bool = True) -> None:
        self.db_seconds = config.db_seconds if sleep else 0.0
        self.calls = 0
        self._counter_url = config.counter_url
        self._client: Any = None
        self._pid = str(os.getpid())

    async def read(self) -> None:
        """One database read: count it, then wait for the database."""
        self.calls += 1
        if self._counter_url is not None:
            if self._client is None:
                import redis.asyncio as aioredis

                # A blocking pool: 200 concurrent misses wait for a connection instead of
                # failing with "Too many connections" (the counter must never cause errors).
                pool = aioredis.BlockingConnectionPool.from_url(
                    self._counter_url, max_connections=64, timeout=None
                )
                self._client = aioredis.Redis(connection_pool=pool)
            await self._client.hincrby(ORIGIN_KEY, self._pid, 1)
        if self.db_seconds:
            await asyncio.sleep(self.db_seconds)

    async def write(self) -> None:
        """One database write (not counted: only reads are what a cache saves)."""
        if self.db_seconds:
            await asyncio.sleep(self.db_seconds)
