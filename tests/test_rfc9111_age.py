"""RFC 9111 section 5.1 (the ``Age`` field) and 4.2.3 (calculating age), through
``CacheMiddleware(cache_all=True)``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]


async def test_5_1_origin_age_is_relayed_and_counts_against_max_age(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60"), ("age", "30")]))
    miss = await s.get()
    assert miss.headers["age"] == "30"  # relayed on the miss
    s.clock.advance(10)
    hit = await s.get()
    assert s.calls() == 1
    assert hit.headers["age"] == "40"
    s.clock.advance(21)
    await s.get()
    assert s.calls() == 2  # current_age 61 > max-age 60


async def test_5_1_no_age_is_made_up_for_a_response_the_origin_just_sent(
    site: SiteFactory,
) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60")]))
    miss = await s.get()
    s.clock.advance(5)
    hit = await s.get()
    assert "age" not in miss.headers
    assert hit.headers["age"] == "5"


@pytest.mark.parametrize("value", ["10s", "-5", "1.5", "", "abc", "0x10", "\u00b2"])
async def test_5_1_an_invalid_age_is_ignored(site: SiteFactory, value: str) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60"), ("age", value)]))
    miss = await s.get()
    s.clock.advance(55)
    await s.get()
    assert s.calls() == 1  # the whole max-age: the Age was ignored
    assert "age" not in miss.headers  # and not relayed


@pytest.mark.parametrize(
    "headers",
    [
        [("age", "50, 1")],  # a list: the first member counts
        [("age", "50"), ("age", "1")],  # two lines: one list
    ],
)
async def test_5_1_a_list_uses_its_first_member(
    site: SiteFactory, headers: list[tuple[str, str]]
) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60"), *headers]))
    await s.get()
    s.clock.advance(11)
    await s.get()
    assert s.calls() == 2  # 50 + 11 > 60


async def test_1_2_2_a_huge_age_is_capped_and_means_stale(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60"), ("age", "9" * 30)]))
    await s.get()
    response = await s.get()
    assert s.calls() == 2
    assert response.headers["cache-status"] == "asgi-cache; fwd=miss; detail=expired"


async def test_4_2_3_apparent_age_from_date(site: SiteFactory) -> None:
    # apparent_age = response_time - date_value: a response dated 20 s ago is 20 s old.
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=30"), ("date", s.date(-20))]))
    await s.get()
    s.clock.advance(8)
    hit = await s.get()
    assert s.calls() == 1
    assert int(hit.headers["age"]) in (28, 29)
    s.clock.advance(3)
    await s.get()
    assert s.calls() == 2


async def test_4_2_3_the_larger_of_apparent_and_corrected_age(site: SiteFactory) -> None:
    s = site()
    headers = [("cache-control", "max-age=30"), ("date", s.date(-5)), ("age", "25")]
    s.origin.script("/r", Reply(headers=headers))
    await s.get()
    s.clock.advance(6)
    await s.get()
    assert s.calls() == 2  # corrected age 25 beats apparent age 5: 31 > 30


async def test_4_2_3_a_date_in_the_future_means_age_zero(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=30"), ("date", s.date(500))]))
    await s.get()
    s.clock.advance(29)
    await s.get()
    assert s.calls() == 1
