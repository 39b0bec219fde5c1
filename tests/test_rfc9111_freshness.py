"""RFC 9111 section 3 (storing), 4.2.1 (freshness lifetime) and 4.2.2 (heuristic freshness),
through ``CacheMiddleware(cache_all=True)``. "Served from cache" is an origin call count."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asgi_cache.backends import MemoryBackend
from asgi_cache.http.dates import format_http_date

from .http_support import Clock, make_cache
from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]


async def test_4_2_1_max_age_fresh_then_stale(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60")]))
    first = await s.get()
    s.clock.advance(59)
    hit = await s.get()
    assert s.calls() == 1
    assert hit.text == first.text == "/r#1"
    s.clock.advance(2)
    await s.get()
    assert s.calls() == 2  # current_age 61 >= lifetime 60: stale, no validator: refetched


async def test_4_2_1_s_maxage_wins_for_a_shared_cache(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=5, s-maxage=100")]))
    await s.get()
    s.clock.advance(50)
    await s.get()
    assert s.calls() == 1


async def test_4_2_1_expires_minus_date(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("date", s.date()), ("expires", s.date(30))]))
    await s.get()
    s.clock.advance(20)
    await s.get()
    assert s.calls() == 1
    s.clock.advance(15)
    await s.get()
    assert s.calls() == 2


async def test_5_3_max_age_overrides_expires(site: SiteFactory) -> None:
    s = site()
    expires = s.date(-3600)  # in the past: ignored because max-age is present
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60"), ("expires", expires)]))
    await s.get()
    await s.get()
    assert s.calls() == 1


@pytest.mark.parametrize("value", ["max-age=abc", "max-age=-1", "max-age=1.5", "max-age="])
async def test_4_2_1_invalid_max_age_is_stale(site: SiteFactory, value: str) -> None:
    # "Caches are encouraged to consider responses that have invalid freshness information
    # (e.g., a max-age directive with non-integer content) to be stale."
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", value)]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_4_2_1_first_of_duplicate_directives(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60, max-age=1")]))
    await s.get()
    s.clock.advance(30)
    await s.get()
    assert s.calls() == 1


async def test_4_2_2_heuristic_is_a_tenth_of_the_age_of_last_modified(site: SiteFactory) -> None:
    s = site()
    last_modified = s.date(-1000)
    s.origin.script("/r", Reply(headers=[("date", s.date()), ("last-modified", last_modified)]))
    await s.get()
    s.clock.advance(90)
    await s.get()
    assert s.calls() == 1  # heuristic lifetime 100 s
    s.clock.advance(20)
    await s.get()
    assert s.calls() == 2  # stale: revalidated (Last-Modified is a validator)
    # The stored validator itself, not one recomputed from a clock that moved on meanwhile.
    assert s.origin.seen[-1]["if-modified-since"] == last_modified


async def test_4_2_2_heuristic_is_capped(site: SiteFactory) -> None:
    s = site(heuristic_max_ttl=30)
    s.origin.script("/r", Reply(headers=[("last-modified", s.date(-1000))]))
    await s.get()
    s.clock.advance(29)
    await s.get()
    assert s.calls() == 1
    s.clock.advance(2)
    await s.get()
    assert s.calls() == 2


async def test_4_2_2_heuristics_can_be_turned_off(site: SiteFactory) -> None:
    s = site(heuristic_max_ttl=0)
    s.origin.script("/r", Reply(headers=[("last-modified", s.date(-1000))]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_4_2_2_no_heuristic_when_explicit_freshness_is_present(site: SiteFactory) -> None:
    s = site()
    lm = ("last-modified", s.date(-100_000))
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=0"), lm]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_4_2_2_no_heuristic_for_statuses_not_heuristically_cacheable(
    site: SiteFactory,
) -> None:
    s = site()
    lm = ("last-modified", s.date(-1000))
    s.origin.script("/r", Reply(status=302, headers=[lm, ("location", "/x")]))
    s.origin.script(
        "/p", Reply(status=302, headers=[lm, ("location", "/x"), ("cache-control", "public")])
    )
    for path in ("/r", "/r", "/p", "/p"):
        await s.get(path)
    assert s.calls("/r") == 2
    # RFC 9111 5.2.2.9: "If a response with the public directive has no explicit freshness
    # information, it is heuristically cacheable."
    assert s.calls("/p") == 1


@pytest.mark.parametrize("status", [203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
async def test_3_heuristically_cacheable_statuses_are_stored(
    site: SiteFactory, status: int
) -> None:
    s = site()
    s.origin.script("/r", Reply(status=status, headers=[("last-modified", s.date(-1000))]))
    first = await s.get()
    second = await s.get()
    assert s.calls() == 1
    assert first.status_code == second.status_code == status


@pytest.mark.parametrize("status", [201, 302, 400, 403, 500, 503])
async def test_3_other_statuses_need_explicit_freshness(site: SiteFactory, status: int) -> None:
    s = site()
    s.origin.script("/a", Reply(status=status, headers=[("last-modified", s.date(-1000))]))
    s.origin.script("/b", Reply(status=status, headers=[("cache-control", "max-age=60")]))
    for path in ("/a", "/a", "/b", "/b"):
        await s.get(path)
    assert (s.calls("/a"), s.calls("/b")) == (2, 1)


async def test_3_a_status_the_cache_does_not_understand_is_not_stored(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(status=299, headers=[("cache-control", "max-age=60")]))
    await s.get()
    response = await s.get()
    assert s.calls() == 2
    assert response.headers["cache-status"] == "asgi-cache; fwd=miss; detail=status"


async def test_3_statuses_option_overrides(site: SiteFactory) -> None:
    s = site(statuses=[200])
    s.origin.script("/r", Reply(status=404, headers=[("cache-control", "max-age=60")]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_3_no_freshness_and_no_validator_is_not_stored(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply())
    await s.get()
    response = await s.get()
    assert s.calls() == 2
    assert response.headers["cache-status"] == "asgi-cache; fwd=miss; detail=no-freshness"


async def test_4_2_jitter_never_extends_a_lifetime(clock: Clock) -> None:
    # RFC 9111 4.2: nothing is served as fresh past its lifetime, whatever the TTL jitter
    # (it may only shorten one).
    cache = make_cache(MemoryBackend(), ttl_jitter=0.5)
    s = Site(cache, clock)
    paths = [f"/j{i}" for i in range(20)]
    for path in paths:
        s.origin.script(path, Reply(headers=[("cache-control", "max-age=10")]))
        await s.get(path)
    clock.advance(10.01)
    for path in paths:
        await s.get(path)
    assert all(s.calls(path) == 2 for path in paths)


def test_expires_dates_are_formatted_as_imf_fixdate() -> None:
    assert format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
