"""Every fault in the catalogue, driven through the Cache data API.

Under each fault ``get``, ``set``, ``delete``, ``invalidate_tags`` and ``health`` return (never
raise, never hang), never serve a wrong value, count what failed, and the breaker opens for the
faults that take Redis away and stays closed for those that do not. After healing, caching
works again: a new value is stored, served and invalidated.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .faults import HANG_DETECTOR, VICTIM, FaultEnv, fault_env

pytestmark = pytest.mark.redis

__all__ = ["fault_env"]  # the fixture, imported for the tests below

VALUE: dict[str, Any] = {"id": 1, "name": "Ada"}
ROUNDS = 4  # with breaker_threshold=3, enough failures to open the breaker


async def test_data_api_fails_open_and_recovers(fault_env: FaultEnv) -> None:
    fault = fault_env.fault
    cache = fault_env.make_cache()
    async with cache:
        assert await cache.set(VICTIM, VALUE, tags=["users:1"])
        assert await cache.get(VICTIM) == VALUE
        errors_before = cache.stats()["errors"]

        await fault_env.inject()
        reads: list[Any] = []
        writes: list[bool] = []
        healths: list[dict[str, Any]] = []
        for i in range(ROUNDS):
            async with asyncio.timeout(HANG_DETECTOR):
                reads.append(await cache.get(VICTIM))
                # Alternate an existing tag and a new one: both write paths must fail cleanly.
                tags = ["users:1"] if i % 2 == 0 else [f"users:{10 + i}"]
                writes.append(await cache.set(f"users:{10 + i}:profile", {"i": i}, tags=tags))
                assert await cache.delete("users:99:profile") in (0, 1)
                assert await cache.invalidate_tags("users:99") in (0, 1)
                healths.append(await cache.health())
        stats = cache.stats()
        breaker = stats["breaker"]

        assert all(r in (None, VALUE) for r in reads), reads  # never a wrong value
        if fault.reads == "ok":
            assert reads == [VALUE] * ROUNDS
        elif fault.reads == "ok-until-invalidation":
            # The first round's delete and invalidation are queued: nothing is read from
            # Redis again until they land (it may hold entries they retire).
            assert reads == [VALUE] + [None] * (ROUNDS - 1)
            assert stats["pending_invalidations"] > 0
        else:
            assert reads[0] is None
            assert reads == [None] * ROUNDS or fault.trips  # a timed fault may end early
        assert (stats["errors"] > errors_before) == fault.errors, stats
        assert (stats["corrupt"] > 0) == fault.corrupt, stats
        if fault.writes == "ok":
            assert writes == [True] * ROUNDS
        else:
            assert not writes[0]
            assert not any(writes) or fault.trips  # a timed fault may end early
        if fault.trips:
            assert breaker["opened"] >= 1, breaker
            assert breaker["short_circuited"] > 0, breaker
            assert breaker["last_error"]
            assert any(h["status"] == "down" for h in healths)
        else:
            assert breaker["opened"] == 0, breaker
            assert breaker["state"] == "closed"

        await fault_env.heal()
        await fault_env.recovered(cache)
        async with asyncio.timeout(HANG_DETECTOR):
            kept = fault.keeps_data and fault.reads != "miss"
            assert await cache.get(VICTIM) == (VALUE if kept else None)
            new = {"id": 1, "name": "Ada", "v": 2}
            assert await cache.set(VICTIM, new, tags=["users:1"])
            assert await cache.get(VICTIM) == new
            assert await cache.invalidate_tags("users:1") == 1
            assert await cache.get(VICTIM) is None
            assert (await cache.health())["status"] == "healthy"
        assert cache.stats()["breaker"]["state"] == "closed"
