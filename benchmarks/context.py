"""What every phase gets: the profile (quick or full), the private Redis, the load tool."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .redis_proc import CACHE_DB, COUNTER_DB, BenchRedis


@dataclass(frozen=True)
class Profile:
    """Sizes and durations of one run mode."""

    name: str
    inproc_iterations: int
    inproc_warmup: int
    e2e_seconds: float
    e2e_warmup_seconds: float
    e2e_connections: int
    e2e_rounds: int
    stampede_bursts: int
    stampede_size: int
    stampede_workers: int
    down_requests: int
    seed_rate: float
    seed_warmup_seconds: float
    seed_seconds: float
    seed_users: int
    seed_zipf_s: float
    seed_write_ratio: float
    seed_db_ms: int


QUICK = Profile(
    name="quick",
    inproc_iterations=1000,
    inproc_warmup=200,
    e2e_seconds=2,
    e2e_warmup_seconds=1,
    e2e_connections=32,
    e2e_rounds=1,
    stampede_bursts=2,
    stampede_size=200,
    stampede_workers=2,
    down_requests=80,
    seed_rate=200,
    seed_warmup_seconds=2,
    seed_seconds=5,
    seed_users=10_000,
    seed_zipf_s=1.0,
    seed_write_ratio=0.1,
    seed_db_ms=100,
)

FULL = Profile(
    name="full",
    inproc_iterations=20000,
    inproc_warmup=2000,
    e2e_seconds=10,
    e2e_warmup_seconds=3,
    e2e_connections=32,
    e2e_rounds=2,
    stampede_bursts=10,
    stampede_size=200,
    stampede_workers=2,
    down_requests=400,
    seed_rate=300,
    seed_warmup_seconds=30,
    seed_seconds=60,
    seed_users=10_000,
    seed_zipf_s=1.0,
    seed_write_ratio=0.1,
    seed_db_ms=100,
)


@dataclass
class Context:
    """Shared by the phases of one run."""

    profile: Profile
    redis: BenchRedis
    use_wrk: bool
    load_tool: str

    def app_env(
        self, *, db_ms: int = 10, count: bool = False, redis_url: str | None = None
    ) -> dict[str, str]:
        """``BENCH_*`` settings for an app process."""
        return {
            "BENCH_REDIS_URL": redis_url or self.redis.url(CACHE_DB),
            "BENCH_DB_MS": str(db_ms),
            "BENCH_TTL": "600",
            "BENCH_COUNTER_URL": self.redis.url(COUNTER_DB) if count else "",
        }

    def reset_redis(self) -> None:
        """Empty the cache and counter databases (between systems)."""
        self.redis.flush(CACHE_DB)
        self.redis.flush(COUNTER_DB)

    def origin_calls(self) -> dict[str, int]:
        """Origin calls per worker pid counted in Redis since the last reset."""
        from .apps.common import ORIGIN_KEY

        client = self.redis.client(COUNTER_DB)
        try:
            raw = client.hgetall(ORIGIN_KEY)
        finally:
            client.close()
        return {k.decode(): int(v) for k, v in raw.items()}


_START = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr (stdout carries the tables)."""
    print(f"[{time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)
