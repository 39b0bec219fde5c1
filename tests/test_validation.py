"""Every duration option, wherever it is taken, refuses NaN, infinity, negatives and (for
lifetimes) zero at call time, with a ConfigurationError naming the option and the value.

Run on memory, fakeredis and the suite's real Redis: the check comes before any backend
call, so a bad TTL can never reach Redis (where ``inf`` once escaped the fail-open path as an
``OverflowError``) or store a value that is never readable (``nan``).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from asgi_cache import Cache, CacheSettings, ConfigurationError
from asgi_cache._validate import MAX_SECONDS
from asgi_cache.backends import CircuitBreakerBackend, MemoryBackend, RedisBackend

NAN, INF = math.nan, math.inf
BAD_LIFETIMES = [NAN, INF, -INF, -1, 0, -0.5, MAX_SECONDS * 2, True, "60"]
"""Never a freshness lifetime: not finite, not > 0, beyond ten years, or not a number."""
BAD_WINDOWS = [NAN, INF, -INF, -1, -0.001, MAX_SECONDS * 2, True, "5"]
"""Never a window or wait (these allow 0)."""


def refused(option: str, value: object) -> Any:
    return pytest.raises(ConfigurationError, match=rf"^{option}={value!r} is not allowed")


class Origin:
    """A loader or write that counts its calls: a refused option must not reach it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, *args: Any) -> str:
        self.calls += 1
        return "v"


@pytest.mark.parametrize("ttl", BAD_LIFETIMES)
async def test_set_refuses_a_bad_ttl_and_stores_nothing(cache: Cache, ttl: Any) -> None:
    with refused("ttl", ttl):
        await cache.set("v:1:x", "value", ttl=ttl)
    assert await cache.get("v:1:x") is None
    assert await cache.set("v:1:x", "value", ttl=60) is True  # nothing was lost on the way
    assert await cache.get("v:1:x") == "value"


@pytest.mark.parametrize("ttl", BAD_LIFETIMES)
async def test_get_or_load_refuses_a_bad_ttl_before_loading(cache: Cache, ttl: Any) -> None:
    origin = Origin()
    with refused("ttl", ttl):
        await cache.get_or_load("v:1:x", origin, ttl=ttl)
    assert origin.calls == 0


@pytest.mark.parametrize(
    ("option", "values"),
    [
        ("stale_ttl", BAD_WINDOWS),
        ("lock_timeout", BAD_WINDOWS),
        ("negative_ttl", BAD_LIFETIMES),
        ("early_refresh", [NAN, INF, -1, "1"]),
    ],
)
async def test_get_or_load_refuses_every_bad_duration(
    cache: Cache, option: str, values: list[Any]
) -> None:
    origin = Origin()
    for value in values:
        with refused(option, value):
            await cache.get_or_load("v:1:x", origin, **{option: value})
    assert origin.calls == 0
    assert await cache.get_or_load("v:1:x", origin, **{option: 1}) == "v"


@pytest.mark.parametrize(
    "option", ["ttl", "stale_ttl", "lock_timeout", "negative_ttl", "early_refresh"]
)
@pytest.mark.parametrize("value", [NAN, INF, -1])
async def test_aside_refuses_a_bad_duration_when_it_is_built(
    cache: Cache, option: str, value: Any
) -> None:
    origin = Origin()

    async def load_user(user_id: int) -> str:
        return await origin(user_id)

    with refused(option, value):
        cache.aside(load_user, key="users:{user_id}", **{option: value})
    assert origin.calls == 0


@pytest.mark.parametrize("ttl", BAD_LIFETIMES)
async def test_write_through_refuses_a_bad_ttl_before_the_database_write(
    cache: Cache, ttl: Any
) -> None:
    write = Origin()
    with refused("ttl", ttl):
        await cache.write_through("v:1:x", "new", write=write, ttl=ttl)
    assert write.calls == 0  # the database was not touched either


@pytest.mark.parametrize(
    ("option", "values"),
    [
        ("ttl", BAD_LIFETIMES),
        ("stale_while_revalidate", BAD_WINDOWS),
        ("stale_if_error", BAD_WINDOWS),
        ("max_age", BAD_WINDOWS),
    ],
)
async def test_response_refuses_every_bad_duration(
    cache: Cache, option: str, values: list[Any]
) -> None:
    for value in values:
        with refused(option, value):
            cache.response(**{option: value})
    cache.response(**{option: 30})  # a good value is taken


@pytest.mark.parametrize(
    "field",
    [
        "default_ttl",
        "lock_timeout",
        "lock_lease",
        "op_timeout",
        "connect_timeout",
        "pool_timeout",
        "negative_ttl",
        "breaker_cooldown",
        "l1_ttl",
    ],
)
@pytest.mark.parametrize("value", [NAN, INF, -1, MAX_SECONDS * 2])
def test_settings_refuse_every_bad_duration(field: str, value: float) -> None:
    with refused(f"CacheSettings.{field}", value):
        CacheSettings(**{field: value})
    var = f"ASGI_CACHE_{field.upper()}"
    with refused(var, str(value)):
        CacheSettings.from_env({var: str(value)})


def test_the_longest_duration_is_allowed() -> None:
    assert CacheSettings(default_ttl=MAX_SECONDS).default_ttl == MAX_SECONDS


@pytest.mark.parametrize("value", [NAN, INF, 0, -1])
def test_breaker_and_backends_refuse_bad_numbers(value: float) -> None:
    with refused("cooldown", value):
        CircuitBreakerBackend(MemoryBackend(), cooldown=value)
    with refused("op_timeout", value):
        RedisBackend(op_timeout=value)
    with refused("max_entries", value):
        MemoryBackend(max_entries=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1, "yes", None])
async def test_flags_are_bools_only(value: Any) -> None:
    async with Cache() as cache:
        origin = Origin()
        with refused("lock", value):
            await cache.get_or_load("v:1:x", origin, lock=value)
        with refused("lock", value):
            cache.response(lock=value)
        with refused("public", value):
            cache.response(public=value)
    assert origin.calls == 0
