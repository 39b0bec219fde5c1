"""Every fault in the catalogue, driven through ``cache.get_or_load``.

Under each fault every call returns the right value, from the cache or the loader, never an
exception or a hang; a cached value keeps being served when reads still work; after healing,
loaded values are cached again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from asgi_cache import Cache

from .faults import HANG_DETECTOR, VICTIM, FaultEnv, fault_env

pytestmark = pytest.mark.redis

__all__ = ["fault_env"]  # the fixture, imported for the tests below

if not hasattr(Cache, "get_or_load"):  # pragma: no cover - until cache-aside lands here
    pytest.skip("Cache.get_or_load is not on this branch yet", allow_module_level=True)

ROUNDS = 4


async def test_get_or_load_answers_under_every_fault(fault_env: FaultEnv) -> None:
    fault = fault_env.fault
    cache = fault_env.make_cache(lock_timeout=0.3)
    loads: Counter[int] = Counter()

    def loader(uid: int) -> Any:
        async def load() -> dict[str, int]:
            loads[uid] += 1
            return {"id": uid}

        return load

    async def get(key: str, uid: int, tag: int | None = None) -> Any:
        get_or_load: Any = cache.get_or_load  # type: ignore[attr-defined]
        tags = [f"users:{uid if tag is None else tag}"]
        return await get_or_load(key, loader(uid), ttl=60, tags=tags)

    async with cache:
        assert await get(VICTIM, 1) == {"id": 1}
        assert await get(VICTIM, 1) == {"id": 1}
        assert loads[1] == 1

        await fault_env.inject()
        for i in range(ROUNDS):
            async with asyncio.timeout(HANG_DETECTOR):
                assert await get(VICTIM, 1) == {"id": 1}
                # Alternate an existing tag and a new one: both store paths are exercised.
                tag = 1 if i % 2 == 0 else None
                assert await get(f"users:{10 + i}:profile", 10 + i, tag) == {"id": 10 + i}
        if fault.reads in ("ok", "ok-until-invalidation"):  # no invalidation here
            assert loads[1] == 1  # still served from the cache
        else:
            assert loads[1] > 1  # the loader answered

        await fault_env.heal()
        await fault_env.recovered(cache)
        if fault.writes == "fail" and not fault.trips:  # (timed faults may end early)
            for i in range(ROUNDS):  # nothing loaded during the fault was stored
                assert await cache.get(f"users:{10 + i}:profile") is None
        async with asyncio.timeout(HANG_DETECTOR):
            assert await get("users:50:profile", 50) == {"id": 50}
            assert await get("users:50:profile", 50) == {"id": 50}
        assert loads[50] == 1
