"""Write-behind on the suite's Redis Cluster (3 masters): the two-step write, the worker and
the dead letter, with the name's keys in one slot and the entries spread over the nodes."""

from __future__ import annotations

import anyio
import pytest

from asgi_cache import Cache, Change
from asgi_cache.backends._streams import StreamKeys

from .redis_cluster import LocalCluster
from .redis_server import BEHAVIOUR_OP_TIMEOUT

pytestmark = pytest.mark.redis


async def test_write_behind_on_a_cluster(redis_cluster: LocalCluster) -> None:
    rows: dict[str, tuple[int, object]] = {}

    async def save(batch: list[Change]) -> None:
        for c in batch:
            if c.key == "bad":
                raise RuntimeError("poison")
            if c.key not in rows or rows[c.key][0] < c.version:
                rows[c.key] = (c.version, c.value)

    cache = Cache.from_url(redis_cluster.url, namespace="wbc", op_timeout=BEHAVIOUR_OP_TIMEOUT)
    wb = cache.write_behind("views", handler=save, max_deliveries=2, retry_backoff=0.01)
    async with cache:
        versions = {f"users:{i}:views": await wb.write(f"users:{i}:views", i) for i in range(20)}
        await wb.write("bad", 0, tags=["users:1"])
        assert await cache.get("users:7:views") == 7  # cached at once, in its own slot
        await wb.delete("users:3:views")
        assert await cache.get("users:3:views") is None
        await wb.drain()
        dead = await wb.dead_letters()
        status = await wb.probe()
    assert {k: v for k, (_, v) in rows.items()} == {
        f"users:{i}:views": (None if i == 3 else i) for i in range(20)
    }
    assert rows["users:5:views"][0] == versions["users:5:views"]
    assert [d.change.key for d in dead if d.change] == ["bad"]
    assert (status["backlog"], status["pending"], status["dead_letters"]) == (0, 0, 1)
    keys = StreamKeys.of(cache.keys.write_behind("views"))
    owners = {redis_cluster.master_for(k) for k in (keys.stream, keys.dead, keys.versions)}
    assert len(owners) == 1  # the name's keys share one slot
    entries = {redis_cluster.master_for(cache.keys.data(f"users:{i}:views")) for i in range(20)}
    assert len(entries) > 1  # the entries do not


async def test_concurrent_writes_of_one_key_leave_the_newest_value_or_none(
    redis_cluster: LocalCluster,
) -> None:
    async def save(batch: list[Change]) -> None:
        pass

    cache = Cache.from_url(redis_cluster.url, namespace="wbr", op_timeout=BEHAVIOUR_OP_TIMEOUT)
    wb = cache.write_behind("race", handler=save)
    written: list[tuple[int, int]] = []
    async with cache:

        async def writer(value: int) -> None:
            written.append((await wb.write("hot", value), value))

        for _ in range(5):
            async with anyio.create_task_group() as group:
                for value in range(10):
                    group.start_soon(writer, value)
            newest = max(written)[1]
            assert await cache.get("hot") in (newest, None)  # never an older value
            written.clear()
