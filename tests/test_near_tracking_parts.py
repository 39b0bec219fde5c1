"""The tracking mode's logic without a Redis: what each report does to the L1, the tag
version checks, the retry pacing and the fallback (a scripted backend stands for Redis).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import pytest

from asgi_cache import BackendError
from asgi_cache._near_tracking import TrackedSubscription
from asgi_cache.backends.base import (
    INVALIDATE_ALL,
    SUBSCRIPTION_LOST,
    SUBSCRIPTION_RESTORED,
    TrackingRefused,
)
from asgi_cache.backends.memory import MemoryBackend
from asgi_cache.near import NearCache

from .test_near_precise import ALL, entry, near_cache

PREFIXES = ("ns:d:", "ns:h:", "ns:t:")


class Tracked(MemoryBackend):
    """A backend that reports key changes on demand (as Redis would), with scripted faults."""

    def __init__(self) -> None:
        super().__init__()
        self.report: Callable[[str], None] | None = None
        self.refuse = False
        self.down = False
        self.tracks = 0
        self.versions_read: list[str] = []
        self.tag_values: dict[str, bytes] = {}
        self.gate: asyncio.Event | None = None
        self.asked = asyncio.Event()

    async def track(self, prefixes: Sequence[str], callback: Callable[[str], None]) -> None:
        self.tracks += 1
        assert tuple(prefixes) == PREFIXES
        if self.refuse:
            raise TrackingRefused("redis refused CLIENT TRACKING: NOPERM")
        if self.down:
            raise BackendError("redis unreachable")
        self.report = callback

    async def get_raw(self, key: str) -> bytes | None:
        self.versions_read.append(key)
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise BackendError("redis unreachable")
        return self.tag_values.get(key)


def tracking_near() -> NearCache:
    return near_cache(invalidation="tracking", tracked_prefixes=PREFIXES)


def subscription_of(near: NearCache) -> TrackedSubscription:
    assert isinstance(near.subscription, TrackedSubscription)
    return near.subscription


async def tracked() -> tuple[NearCache, Tracked, TrackedSubscription]:
    """An L1 in tracking mode, tracked on a scripted backend."""
    near, backend = tracking_near(), Tracked()
    subscription = subscription_of(near)
    assert await subscription.subscribe(backend)
    return near, backend, subscription


def held(
    near: NearCache,
    *keys: str,
    tags: Sequence[str] = ("ns:t:a",),
    versions: Sequence[str] | None = ("v1",),
) -> None:
    """Put ``keys`` into L1, recording ``versions`` of ``tags`` (and version "n1" of the
    namespace tag); ``versions=None``: unknown."""
    for key in keys:
        recorded = None if versions is None else (*versions, "n1")
        assert near.put(key, entry(), (*tags, ALL), near.generation, recorded)


async def checked(subscription: TrackedSubscription) -> None:
    for _ in range(200):
        if not subscription.checking:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("tag checks still running")


async def test_reports_drop_keys_and_clear_and_gaps_flush() -> None:
    near, backend = tracking_near(), Tracked()
    subscription = subscription_of(near)
    assert await subscription.subscribe(backend)
    assert (subscription.flushes, subscription.mode, subscription.live) == (1, "tracking", True)
    assert await subscription.subscribe(backend)  # already tracked: no second setup
    assert backend.tracks == 1
    held(near, "ns:d:a", "ns:d:b")
    assert backend.report is not None
    backend.report("ns:d:a")
    assert "ns:d:a" not in near
    assert "ns:d:b" in near
    backend.report(INVALIDATE_ALL)
    assert len(near) == 0
    held(near, "ns:d:c")
    backend.report(SUBSCRIPTION_LOST)
    assert (len(near), subscription.live, subscription.flushes) == (0, False, 2)
    assert not await subscription.subscribe(backend)  # not filled during a gap
    backend.report(SUBSCRIPTION_RESTORED)
    assert (subscription.live, subscription.flushes) == (True, 3)
    assert near.counts()["invalidation"] == "tracking"


async def test_a_tag_report_drops_only_when_the_version_moved() -> None:
    near, backend, subscription = await tracked()
    assert backend.report is not None
    backend.tag_values["ns:t:a"] = b"v1"
    held(near, "ns:d:a")
    held(near, "ns:d:b", tags=("ns:t:b",))
    held(near, "ns:d:u", versions=None)  # what it recorded is unknown
    backend.report("ns:t:a")  # an expiry extended: the version it recorded holds
    await checked(subscription)
    assert "ns:d:a" in near
    assert "ns:d:u" not in near
    backend.tag_values["ns:t:a"] = b"v2"
    backend.report("ns:t:a")
    await checked(subscription)
    assert "ns:d:a" not in near
    assert "ns:d:b" in near
    # A read that recorded v1 before the change, put after the check: not admitted.
    generation = near.generation
    assert not near.put("ns:d:a", entry(), ("ns:t:a", ALL), generation, ("v1", "n1"))
    assert near.put("ns:d:a", entry(), ("ns:t:a", ALL), generation, ("v2", "n1"))
    assert backend.versions_read == ["ns:t:a"] * 2
    assert near.counts()["tag_checks"] == 2


async def test_a_report_of_the_namespace_tag_keeps_what_recorded_its_version() -> None:
    near, backend, subscription = await tracked()
    assert backend.report is not None
    backend.tag_values[ALL] = b"n1"
    held(near, "ns:d:a", "ns:d:b")
    backend.report(ALL)  # stores extend it all the time: nothing moved
    await checked(subscription)
    assert len(near) == 2
    backend.tag_values.pop(ALL)  # cleared (or expired)
    backend.report(ALL)
    await checked(subscription)
    assert len(near) == 0


async def test_a_gap_forgets_the_versions_read() -> None:
    near, backend, subscription = await tracked()
    assert backend.report is not None
    backend.tag_values["ns:t:a"] = b"v1"
    backend.report("ns:t:a")
    await checked(subscription)
    assert not near.put("ns:d:a", entry(), ("ns:t:a", ALL), near.generation, ("v2", "n1"))
    backend.report(SUBSCRIPTION_LOST)  # reports of a change to v2 may have been missed
    backend.report(SUBSCRIPTION_RESTORED)
    assert near.put("ns:d:a", entry(), ("ns:t:a", ALL), near.generation, ("v2", "n1"))


async def test_reports_during_a_check_are_read_again_after_it_and_coalesced() -> None:
    near, backend, subscription = await tracked()
    assert backend.report is not None
    gate = backend.gate = asyncio.Event()
    backend.tag_values["ns:t:a"] = b"v1"
    backend.report("ns:t:a")
    await asyncio.wait_for(backend.asked.wait(), timeout=10)  # the read is out
    held(near, "ns:d:a")
    for _ in range(5):  # a burst of stores while it is out
        backend.report("ns:t:a")
        backend.report(ALL)
    gate.set()
    await checked(subscription)
    # Read again after the first read (which may predate them), once for the whole burst.
    assert backend.versions_read == ["ns:t:a", "ns:t:a", ALL]


async def test_a_failed_check_drops_the_dependants() -> None:
    near, backend, subscription = await tracked()
    assert backend.report is not None
    held(near, "ns:d:a")
    backend.down = True
    backend.report("ns:t:a")
    await checked(subscription)
    assert "ns:d:a" not in near


async def test_an_unreachable_redis_is_retried_at_a_pace() -> None:
    near, backend = tracking_near(), Tracked()
    subscription = subscription_of(near)
    subscription.retry_after = 60.0
    backend.down = True
    assert not await subscription.subscribe(backend)
    assert not await subscription.subscribe(backend)  # within retry_after: not asked again
    assert backend.tracks == 1
    subscription.retry_after = 0.0
    subscription._retry_at = 0.0
    backend.down = False
    assert await subscription.subscribe(backend)
    assert backend.tracks == 2


async def test_a_refusal_falls_back_to_pubsub_once_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    near, backend = tracking_near(), Tracked()
    subscription = subscription_of(near)
    backend.refuse = True
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        assert await subscription.subscribe(backend)  # the memory backend's pub/sub
        assert await subscription.subscribe(backend)
    assert backend.tracks == 1
    assert subscription.mode == "pubsub"
    assert near.counts()["invalidation"] == "pubsub"
    assert subscription.live
    (record,) = [r for r in caplog.records if "CLIENT TRACKING" in r.getMessage()]
    assert "ASGI_CACHE_L1_INVALIDATION" in record.getMessage()
    subscription.reset()
    assert not subscription.live
    assert subscription.mode == "pubsub"  # for the life of the cache


async def test_a_backend_without_tracking_falls_back() -> None:
    near = tracking_near()
    assert await near.subscription.subscribe(MemoryBackend())
    assert near.subscription.mode == "pubsub"
