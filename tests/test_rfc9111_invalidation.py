"""RFC 9111 section 4.4 (invalidating stored responses), through
``CacheMiddleware(cache_all=True)``: "A cache MUST invalidate the target URI ... when it
receives a non-error status code in response to an unsafe request method (including methods
whose safety is unknown)", and MAY invalidate same-origin ``Location``/``Content-Location``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]
FRESH = [("cache-control", "max-age=600")]


async def _cached(s: Site, *paths: str) -> None:
    for path in paths:
        s.origin.script(path, Reply(headers=FRESH))
        await s.get(path)
        await s.get(path)
        assert s.calls(path) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "M-SEARCH", "PURGE", "LOCK"])
async def test_4_4_unsafe_and_unknown_methods_invalidate(site: SiteFactory, method: str) -> None:
    s = site()
    await _cached(s, "/r")
    await s.request(method, "/r")
    await s.get()
    assert s.calls() == 3  # the cached GET, the unsafe request, the GET after it


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH"])
async def test_4_4_safe_methods_do_not_invalidate(site: SiteFactory, method: str) -> None:
    s = site()
    await _cached(s, "/r")
    await s.request(method, "/r")
    await s.get()
    assert s.calls() == 2


@pytest.mark.parametrize("status", [400, 404, 409, 500, 503])
async def test_4_4_error_responses_do_not_invalidate(site: SiteFactory, status: int) -> None:
    s = site()
    await _cached(s, "/r")
    s.origin.script("/r", Reply(status=status), Reply(headers=FRESH))
    await s.request("PUT", "/r")
    await s.get()
    assert s.calls() == 2


async def test_4_4_every_variant_and_query_of_the_target_uri(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[*FRESH, ("vary", "accept-language")]))
    for lang in ("en", "fr"):
        await s.get("/r", {"accept-language": lang})
    await s.get("/r?page=2")
    await s.request("DELETE", "/r")
    for lang in ("en", "fr"):
        await s.get("/r", {"accept-language": lang})
    await s.get("/r?page=2")
    assert s.calls() == 7


async def test_4_4_same_origin_location_and_content_location(site: SiteFactory) -> None:
    s = site()
    await _cached(s, "/a", "/b", "/c")
    s.origin.script(
        "/post",
        Reply(
            status=201,
            headers=[("location", "/a"), ("content-location", "http://testserver/b")],
        ),
    )
    await s.request("POST", "/post")
    for path in ("/a", "/b", "/c"):
        await s.get(path)
    assert (s.calls("/a"), s.calls("/b"), s.calls("/c")) == (2, 2, 1)


async def test_4_4_other_origins_are_not_invalidated(site: SiteFactory) -> None:
    # "a cache MUST NOT invalidate a URI ... if the host part ... differs": a response
    # could otherwise invalidate another site's entries (a denial of service).
    s = site()
    await _cached(s, "/a")
    s.origin.script("/post", Reply(status=201, headers=[("location", "http://evil.test/a")]))
    await s.request("POST", "/post")
    await s.get("/a")
    assert s.calls("/a") == 1


async def test_4_4_turned_off(site: SiteFactory) -> None:
    s = site(invalidate_unsafe=False)
    await _cached(s, "/r")
    await s.request("M-SEARCH", "/r")
    await s.get()
    assert s.calls() == 2
