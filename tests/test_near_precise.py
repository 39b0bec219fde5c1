"""The L1 near-cache's precision and bounds: the tag index, TinyLFU admission, the byte
bound, expiry-aware eviction and the generation guard.

The unit tests drive `NearCache` directly with a settable clock and count what stays
and what goes; the Redis tests check that the index is filled from real reads (the tag keys
come back with the entry) and that another process's tag invalidation drops only the
dependants of that tag.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgi_cache import Cache, CacheSettings
from asgi_cache._entries import Entry, EntryKind
from asgi_cache._frequency import FrequencySketch
from asgi_cache.backends import RedisBackend
from asgi_cache.near import NearCache

from .redis_server import RedisServer
from .test_near_cache import l1_cache, message_seen, reads

ALL = "ns:t:*"


class Now:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def entry(body: bytes = b"x", *, fresh: float = 3600.0) -> Entry:
    now = time.time()
    return Entry(
        kind=EntryKind.BYTES,
        body=body,
        created_at=now,
        fresh_until=now + fresh,
        stale_until=now + fresh,
    )


def near_cache(**options: Any) -> NearCache:
    settings: dict[str, Any] = {
        "ttl": 60.0,
        "max_entries": 100,
        "channel_prefix": "ns:i:",
        "tag_prefix": "ns:t:",
        "all_tag": ALL,
    }
    settings.update(options)
    return NearCache(**settings)


def fill(near: NearCache, key: str, tags: tuple[str, ...], body: bytes = b"x") -> bool:
    near.get(key)  # the miss that leads to a fill counts, as in the store
    return near.put(key, entry(body), (ALL, *tags), near.generation)


# -- the tag index ------------------------------------------------------------------------------


def test_a_tag_invalidation_drops_only_its_dependants() -> None:
    near = near_cache()
    for user in range(10):
        assert fill(near, f"ns:d:users:{user}:profile", (f"ns:t:users:{user}",))
        assert fill(near, f"ns:d:users:{user}:card", (f"ns:t:users:{user}", "ns:t:cards"))
    assert len(near) == 20
    near.drop_tags("ns:t:users:4")
    assert len(near) == 18
    assert "ns:d:users:4:profile" not in near
    assert "ns:d:users:4:card" not in near
    assert "ns:d:users:5:profile" in near
    near.drop_tags("ns:t:cards")
    assert len(near) == 9
    assert all(f"ns:d:users:{u}:profile" in near for u in range(10) if u != 4)
    assert near.counts()["drops"] == 11


def test_entries_with_unknown_tags_go_with_any_tag_invalidation() -> None:
    near = near_cache()
    near.put("ns:d:a", entry(), (), near.generation)  # a backend that cannot name tags
    fill(near, "ns:d:b", ("ns:t:b",))
    near.drop_tags("ns:t:other")
    assert "ns:d:a" not in near
    assert "ns:d:b" in near


def test_the_namespace_tag_empties_everything() -> None:
    near = near_cache()
    fill(near, "ns:d:a", ("ns:t:a",))
    fill(near, "ns:d:b", ())
    near.drop_tags(ALL)
    assert len(near) == 0
    assert near.counts()["bytes"] == 0


def test_messages_from_other_processes_are_precise() -> None:
    near = near_cache()
    fill(near, "ns:d:a", ("ns:t:a",))
    fill(near, "ns:d:b", ("ns:t:b",))
    fill(near, "ns:d:c", ("ns:t:c",))
    near.on_message("ns:i:othersender:ns:t:a")
    assert ("ns:d:a" in near, "ns:d:b" in near) == (False, True)
    near.on_message("ns:i:othersender:ns:d:b")
    assert ("ns:d:b" in near, "ns:d:c" in near) == (False, True)
    near.on_message(near.channel("ns:d:c"))  # its own message: already applied
    assert "ns:d:c" in near
    near.on_message("ns:i:othersender:")
    assert len(near) == 0


# -- admission and bounds -----------------------------------------------------------------------


def test_a_scan_of_one_off_keys_never_evicts_hot_ones() -> None:
    near = near_cache(max_entries=10)
    hot = [f"ns:d:hot{i}" for i in range(10)]
    for _ in range(3):
        for key in hot:
            if near.get(key) is None:
                near.put(key, entry(), (ALL,), near.generation)
    assert len(near) == 10
    for i in range(1000):  # the hot keys stay hot while the scan goes on
        assert near.get(hot[i % 10]) is not None
        assert not fill(near, f"ns:d:once{i}", ())
    assert all(key in near for key in hot)
    counts = near.counts()
    assert (counts["entries"], counts["rejections"], counts["evictions"]) == (10, 1000, 0)


def test_a_key_read_more_often_than_the_coldest_gets_in() -> None:
    near = near_cache(max_entries=3)
    for key in ("ns:d:a", "ns:d:b", "ns:d:c"):
        fill(near, key, ())
    for _ in range(3):
        near.get("ns:d:new")  # missed again and again (its fills were not admitted)
    assert fill(near, "ns:d:new", ())
    assert "ns:d:a" not in near  # the least recently used one made room
    assert ["ns:d:b" in near, "ns:d:c" in near, "ns:d:new" in near] == [True, True, True]
    assert near.counts()["evictions"] == 1


def test_expired_entries_make_room_whatever_their_frequency() -> None:
    clock = Now()
    near = near_cache(max_entries=2, ttl=5.0, clock=clock)
    for _ in range(5):
        fill(near, "ns:d:hot", ())
    fill(near, "ns:d:warm", ())
    clock.t += 6  # both are past l1_ttl
    assert fill(near, "ns:d:cold", ())
    assert fill(near, "ns:d:cold2", ())
    assert ("ns:d:hot" in near, "ns:d:cold" in near, "ns:d:cold2" in near) == (False, True, True)


def test_the_byte_bound_holds_and_a_huge_entry_is_refused() -> None:
    near = near_cache(max_entries=1000, max_bytes=10_000)
    size = 1000 + 200 + len("ns:d:k0")  # body, fixed overhead, key
    for i in range(8):
        assert fill(near, f"ns:d:k{i}", (), body=b"x" * 1000)
    assert near.counts()["bytes"] == 8 * size
    assert not fill(near, "ns:d:k8", (), body=b"x" * 1000)  # no more often read than k0
    for _ in range(3):
        near.get("ns:d:k9")
    assert near.put("ns:d:k9", entry(b"x" * 1000), (ALL,), near.generation)
    counts = near.counts()
    assert (counts["entries"], counts["bytes"], counts["evictions"]) == (8, 8 * size, 1)
    assert "ns:d:k0" not in near
    assert "ns:d:k1" in near
    assert not fill(near, "ns:d:huge", (), body=b"x" * 20_000)
    assert near.counts()["rejections"] == 2


def test_a_stored_entry_is_replaced_not_duplicated() -> None:
    near = near_cache()
    fill(near, "ns:d:a", ("ns:t:a",), body=b"1")
    fill(near, "ns:d:a", ("ns:t:b",), body=b"22")
    assert len(near) == 1
    near.drop_tags("ns:t:a")  # the index forgot the old tags
    assert "ns:d:a" in near
    near.drop_tags("ns:t:b")
    assert "ns:d:a" not in near
    assert near.counts()["bytes"] == 0


# -- the generation guard -----------------------------------------------------------------------


def test_a_read_that_raced_a_drop_of_its_key_or_tags_is_not_admitted() -> None:
    near = near_cache()
    started = near.generation
    near.drop("ns:d:a")
    near.drop_tags("ns:t:b")
    assert not near.put("ns:d:a", entry(), (ALL,), started)
    assert not near.put("ns:d:x", entry(), (ALL, "ns:t:b"), started)
    assert not near.put("ns:d:y", entry(), (), started)  # unknown tags: any tag drop counts
    # Unrelated drops do not cost other fills their place.
    assert near.put("ns:d:z", entry(), (ALL, "ns:t:z"), started)
    near.clear()
    assert not near.put("ns:d:w", entry(), (ALL,), started)
    assert near.put("ns:d:w", entry(), (ALL,), near.generation)


def test_the_memory_of_drops_is_bounded_and_stays_safe() -> None:
    near = near_cache()
    started = near.generation
    for i in range(5000):
        near.drop(f"ns:d:gone{i}")
    assert len(near._key_drops) <= 4097
    assert not near.put("ns:d:gone1", entry(), (ALL,), started)  # reset: every old read raced
    assert not near.put("ns:d:other", entry(), (ALL,), started)
    assert near.put("ns:d:other", entry(), (ALL,), near.generation)


def test_the_sketch_never_undercounts_and_forgets_by_halving() -> None:
    sketch = FrequencySketch(64)
    for _ in range(7):
        sketch.add("hot")
    sketch.add("cold")
    assert sketch.estimate("hot") >= 7
    assert sketch.estimate("cold") >= 1
    for i in range(sketch.sample):
        sketch.add(f"noise{i}")
    assert sketch.estimate("hot") <= 7 // 2 + 1  # halved at least once since


@pytest.mark.parametrize("capacity", [1000, 8192])  # rows of hash quarters; multiplicative
def test_the_sketch_counts_exactly_without_collisions(capacity: int) -> None:
    # With a sketch large enough that these keys share no counter in some row, each
    # estimate is its count (doorkeeper included).
    sketch = FrequencySketch(capacity)
    keys = [f"k{i}" for i in range(8)]
    for n, key in enumerate(keys, start=1):
        for _ in range(n):
            sketch.add(key)
    assert [sketch.estimate(key) for key in keys] == list(range(1, 9))


# -- on Redis -----------------------------------------------------------------------------------


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Cache, Cache]]:
    near, other = l1_cache(redis_url), l1_cache(redis_url)
    yield near, other
    for cache in (near, other):
        await cache.aclose()
        await cache.backend.aclose()


async def test_the_reads_bring_their_tags_and_another_process_drops_only_dependants(
    pair: tuple[Cache, Cache], redis_server: RedisServer
) -> None:
    near, other = pair
    for user in range(5):
        await other.set(f"users:{user}:profile", user, ttl=60, tags=[f"users:{user}"])
        await other.set(f"users:{user}:orders", [user], ttl=60, tags=[f"users:{user}", "orders"])
    for user in range(5):
        assert await near.get(f"users:{user}:profile") == user
        assert await near.get(f"users:{user}:orders") == [user]
    assert near.near is not None
    assert len(near.near) == 10
    seen = message_seen(near, "near:t:users:3")
    await other.invalidate_tags("users:3")
    await asyncio.wait_for(seen.wait(), timeout=5)  # a bound for a hang, not a timing assert
    assert len(near.near) == 8
    before = reads(redis_server)
    for user in (0, 1, 2, 4):
        assert await near.get(f"users:{user}:profile") == user
        assert await near.get(f"users:{user}:orders") == [user]
    assert reads(redis_server) == before  # every other entry still answered from L1
    assert await near.get("users:3:profile") is None
    assert reads(redis_server) == before + 1


async def test_a_local_invalidation_keeps_the_other_entries(
    pair: tuple[Cache, Cache], redis_server: RedisServer
) -> None:
    near, _ = pair
    await near.set("a", 1, ttl=60, tags=["ta"])
    await near.set("b", 2, ttl=60, tags=["tb"])
    assert [await near.get("a"), await near.get("b")] == [1, 2]
    await near.invalidate_tags("ta")
    before = reads(redis_server)
    assert await near.get("b") == 2
    assert reads(redis_server) == before
    assert await near.get("a") is None


async def test_without_l1_reads_use_the_plain_script(redis_url: str) -> None:
    backend = RedisBackend(redis_url)
    cache = Cache(CacheSettings(namespace="plain", ttl_jitter=0.0), backend=backend)
    await cache.set("k", "v", ttl=60, tags=["t"])
    assert await backend.get_tagged(cache.keys.data("k")) is not None
    found = await backend.get_tagged(cache.keys.data("k"))
    assert found is not None
    assert found[1] == ()  # no tags asked for: none named
    assert await cache.get("k") == "v"
    await backend.aclose()
