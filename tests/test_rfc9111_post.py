"""RFC 9111 section 4 and RFC 9110 section 9.3.3: a POST response with explicit freshness
and a ``Content-Location`` equal to its target may answer later GETs
(``store_post_responses=True``, ``cache_all`` mode)."""

from __future__ import annotations

from collections.abc import Callable

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]
FRESH = ("cache-control", "max-age=600")


async def test_9_3_3_a_fresh_post_response_answers_the_next_get(site: SiteFactory) -> None:
    s = site(store_post_responses=True)
    s.origin.script("/r", Reply(headers=[FRESH, ("content-location", "/r")], body=b"posted"))
    posted = await s.request("POST", "/r")
    got = await s.get()
    assert posted.text == "posted"
    assert s.calls() == 1  # the GET was answered from the POST's response
    assert got.text == "posted"
    assert got.headers["x-cache"] == "HIT"
    await s.request("POST", "/r")
    assert s.calls() == 2  # a POST itself is never answered from the cache


async def test_9_3_3_content_location_must_equal_the_target(site: SiteFactory) -> None:
    s = site(store_post_responses=True)
    for location in ("/other", "/r?x=1", "http://elsewhere.test/r"):
        s.origin.script("/r", Reply(headers=[FRESH, ("content-location", location)]))
        await s.request("POST", "/r")
    s.origin.script("/r", Reply(headers=[("cache-control", "no-store")]))
    await s.get()
    assert s.calls() == 4


async def test_9_3_3_explicit_freshness_is_required(site: SiteFactory) -> None:
    s = site(store_post_responses=True)
    lm = ("last-modified", s.date(-10_000))  # heuristics are not enough for a POST
    s.origin.script("/r", Reply(headers=[lm, ("content-location", "/r")]))
    await s.request("POST", "/r")
    await s.get()
    assert s.calls() == 2


async def test_9_3_3_off_by_default(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH, ("content-location", "/r")]))
    await s.request("POST", "/r")
    await s.get()
    assert s.calls() == 2


async def test_9_3_3_unstorable_responses_stay_unstored(site: SiteFactory) -> None:
    s = site(store_post_responses=True)
    headers = [FRESH, ("content-location", "/r"), ("set-cookie", "sid=1")]
    s.origin.script("/r", Reply(headers=headers), Reply(status=201, headers=[FRESH]))
    await s.request("POST", "/r")
    await s.request("POST", "/r", {"content-location": "/r"})
    await s.get()
    assert s.calls() == 3
