"""Redis full under ``noeviction``: every write path is refused, none slips past the limit.

Redis checks ``maxmemory`` for a Lua script only at its first write command; a script that
extends a tag's expiry (``PEXPIRE``, allowed when full) before storing its entry would then
store it anyway and grow memory past the limit. The backend's scripts store first, so a full
Redis refuses them before they change anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asgi_cache import BackendReplyError
from asgi_cache.backends import RedisBackend

from .redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def full(own_redis: RedisServer) -> AsyncIterator[tuple[RedisBackend, list[tuple[str, str]]]]:
    """A backend whose tag versions exist, on a Redis that is then full under noeviction."""
    backend = RedisBackend(own_redis.url, op_timeout=2.0)
    tags = ["c:t:a", "c:t:b"]
    deps = list(zip(tags, await backend.versions(tags, 60.0), strict=True))
    assert await backend.acquire_lock("c:l:k", "token", 60.0)
    own_redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    own_redis.command("CONFIG", "SET", "maxmemory", "1")
    yield backend, deps
    own_redis.command("CONFIG", "SET", "maxmemory", "0")
    await backend.aclose()


async def test_set_is_refused_when_full(
    own_redis: RedisServer, full: tuple[RedisBackend, list[tuple[str, str]]]
) -> None:
    backend, deps = full
    with pytest.raises(BackendReplyError, match="OutOfMemoryError"):
        await backend.set("c:d:k", b"v" * 1000, 60.0, deps)
    assert own_redis.command("EXISTS", "c:d:k").strip() == b"0"


async def test_fenced_set_is_refused_when_full(
    own_redis: RedisServer, full: tuple[RedisBackend, list[tuple[str, str]]]
) -> None:
    backend, deps = full
    with pytest.raises(BackendReplyError, match="OutOfMemoryError"):
        await backend.set_if_locked("c:d:k", b"v" * 1000, 60.0, deps, "c:l:k", "token")
    assert own_redis.command("EXISTS", "c:d:k").strip() == b"0"


async def test_existing_tag_versions_are_still_readable_when_full(
    full: tuple[RedisBackend, list[tuple[str, str]]],
) -> None:
    backend, deps = full
    # Only expiries move (allowed when full): a store can still be attempted, and refused.
    assert await backend.versions([t for t, _ in deps], 60.0) == [v for _, v in deps]
    with pytest.raises(BackendReplyError, match="OutOfMemoryError"):
        await backend.versions(["c:t:new"], 60.0)
