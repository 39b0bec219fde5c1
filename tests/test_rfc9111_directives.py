"""RFC 9111 section 5.2 (Cache-Control directives), through
``CacheMiddleware(cache_all=True)``: response directives (5.2.2) and request directives
(5.2.1)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]


# -- response directives (section 5.2.2) -----------------------------------------------------


async def test_5_2_2_5_no_store(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "no-store, max-age=60")]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_5_2_2_3_must_understand_overrides_no_store_for_an_understood_status(
    site: SiteFactory,
) -> None:
    s = site()
    cc = ("cache-control", "must-understand, no-store, max-age=60")
    s.origin.script("/ok", Reply(headers=[cc]))
    s.origin.script("/odd", Reply(status=299, headers=[cc]))
    for path in ("/ok", "/ok", "/odd", "/odd"):
        await s.get(path)
    assert (s.calls("/ok"), s.calls("/odd")) == (1, 2)


async def test_5_2_2_4_no_cache_is_stored_and_revalidated_every_time(site: SiteFactory) -> None:
    s = site()
    headers = [("cache-control", "no-cache, max-age=600"), ("etag", '"v1"')]
    s.origin.script("/r", Reply(headers=headers), Reply(status=304, headers=headers))
    await s.get()
    second = await s.get()
    third = await s.get()
    assert s.calls() == 3  # every use goes to the origin...
    assert second.text == third.text == "/r#1"  # ...which answers 304: the stored body
    assert s.origin.seen[-1]["if-none-match"] == '"v1"'


async def test_5_2_2_4_qualified_no_cache_omits_the_fields_without_revalidation(
    site: SiteFactory,
) -> None:
    s = site()
    cc = ("cache-control", 'no-cache="x-secret", max-age=600')
    s.origin.script("/r", Reply(headers=[cc, ("x-secret", "s1"), ("x-other", "o")]))
    miss = await s.get()
    hit = await s.get()
    assert s.calls() == 1  # the rest of the response is reused without revalidation
    assert miss.headers["x-secret"] == "s1"
    assert "x-secret" not in hit.headers
    assert hit.headers["x-other"] == "o"


async def test_5_2_2_7_private_is_not_stored_by_a_shared_cache(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "private, max-age=60")]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_5_2_2_7_qualified_private_stores_the_rest(site: SiteFactory) -> None:
    s = site()
    cc = ("cache-control", 'private="x-user", max-age=600')
    s.origin.script("/r", Reply(headers=[cc, ("x-user", "alice")]))
    miss = await s.get()
    hit = await s.get()
    assert s.calls() == 1
    assert miss.headers["x-user"] == "alice"  # the requester gets its own field
    assert "x-user" not in hit.headers  # nobody else does


async def test_5_2_2_7_private_set_cookie_makes_the_rest_shareable(site: SiteFactory) -> None:
    s = site()
    cc = ("cache-control", 'private="set-cookie", max-age=600')
    s.origin.script("/r", Reply(headers=[cc, ("set-cookie", "sid=alice")]))
    miss = await s.get()
    hit = await s.get()
    assert s.calls() == 1
    assert miss.headers["set-cookie"] == "sid=alice"
    assert "set-cookie" not in hit.headers


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate", "s-maxage=10"])
async def test_5_2_2_2_must_revalidate_gives_504_when_the_origin_cannot_answer(
    site: SiteFactory, directive: str
) -> None:
    # "if a cache is disconnected, the cache MUST generate an error response rather than
    # reuse the stale response. The generated status code SHOULD be 504."
    s = site()
    cc = ("cache-control", f"max-age=10, {directive}, stale-if-error=600")
    s.origin.script("/r", Reply(headers=[cc, ("etag", '"v1"')]), Reply(raises=True))
    await s.get()
    s.clock.advance(11)
    response = await s.get("/r", {"cache-control": "max-stale=600"})
    assert s.calls() == 2
    assert response.status_code == 504
    assert response.headers["cache-status"] == "asgi-cache; fwd=stale; detail=must-revalidate"


async def test_5_2_2_2_without_must_revalidate_the_failure_propagates(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=10")]), Reply(raises=True))
    await s.get()
    s.clock.advance(11)
    with pytest.raises(RuntimeError, match="origin down"):
        await s.get()


# -- request directives (section 5.2.1) ------------------------------------------------------


async def test_5_2_1_2_max_stale(site: SiteFactory) -> None:
    # A stale entry is still there to serve when the cache keeps it: it has a validator
    # (kept to be revalidated) or a stale-while-revalidate / stale-if-error window.
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=10"), ("etag", '"v1"')]))
    await s.get()
    s.clock.advance(15)
    within = await s.get("/r", {"cache-control": "max-stale=10"})
    any_staleness = await s.get("/r", {"cache-control": "max-stale"})
    assert s.calls() == 1
    assert within.headers["cache-status"] == "asgi-cache; hit; ttl=-5; detail=max-stale"
    assert within.headers["x-cache"] == any_staleness.headers["x-cache"] == "STALE"
    too_stale = await s.get("/r", {"cache-control": "max-stale=3"})
    assert s.calls() == 2
    assert too_stale.text == "/r#2"


async def test_5_2_1_2_max_stale_never_overrides_must_revalidate(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=10, must-revalidate")]))
    await s.get()
    s.clock.advance(15)
    await s.get("/r", {"cache-control": "max-stale"})
    assert s.calls() == 2


async def test_5_2_1_3_min_fresh(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60")]))
    await s.get()
    s.clock.advance(50)
    await s.get("/r", {"cache-control": "min-fresh=5"})
    assert s.calls() == 1
    response = await s.get("/r", {"cache-control": "min-fresh=20"})
    assert s.calls() == 2
    assert response.headers["cache-status"] == "asgi-cache; fwd=request; fwd-status=200; stored"


async def test_5_2_1_1_max_age(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60")]))
    await s.get()
    s.clock.advance(30)
    await s.get("/r", {"cache-control": "max-age=40"})
    assert s.calls() == 1
    await s.get("/r", {"cache-control": "max-age=20"})
    assert s.calls() == 2


async def test_5_2_1_7_only_if_cached(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60")]))
    miss = await s.get("/r", {"cache-control": "only-if-cached"})
    assert miss.status_code == 504
    assert s.calls() == 0
    await s.get()
    hit = await s.get("/r", {"cache-control": "only-if-cached"})
    no_cache = await s.get("/r", {"cache-control": "only-if-cached, no-cache"})
    bypass = await s.get("/r", {"cache-control": "only-if-cached", "if-match": "*"})
    assert (hit.status_code, no_cache.status_code, bypass.status_code) == (200, 504, 504)
    assert s.calls() == 1  # only-if-cached never reaches the origin


async def test_5_2_1_5_no_store_request(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=60")]))
    await s.get("/r", {"cache-control": "no-store"})
    await s.get()
    assert s.calls() == 2


async def test_5_2_1_request_directives_can_be_ignored(site: SiteFactory) -> None:
    # A site may protect its origin from clients: honor_request_cache_control=False.
    s = site(honor_request_cache_control=False)
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=10")]))
    await s.get()
    await s.get("/r", {"cache-control": "no-cache"})
    s.clock.advance(15)
    await s.get("/r", {"cache-control": "max-stale"})
    assert s.calls() == 2  # no-cache ignored; max-stale ignored too


async def test_5_2_1_6_no_transform_gets_the_body_as_the_origin_sent_it(
    site: SiteFactory,
) -> None:
    # On Redis a text body is stored gzip-coded and sent so to clients accepting gzip; a
    # client asking for no-transform gets the identity body (RFC 9110 section 7.7).
    s = site()
    body = b"plain words " * 100
    headers = [("cache-control", "max-age=60"), ("content-type", "text/plain")]
    s.origin.script("/r", Reply(headers=headers, body=body))
    await s.get()
    plain = await s.get("/r", {"accept-encoding": "gzip", "cache-control": "no-transform"})
    assert s.calls() == 1
    assert "content-encoding" not in plain.headers
    assert plain.content == body


_ORIGIN_FIELDS = [
    ("cache-control", 'max-age=99999999999999999999, private="", no-cache="\u00e9'),
    ("cache-control", "s-maxage=-5, must-understand, stale-while-revalidate=x"),
    ("cdn-cache-control", 'max-age=(1 2), private="\\q", a=:=:'),
    ("cdn-cache-control", "max-age=5;" + "p;" * 300),
    ("expires", "Sun, 06 Nov 99999 08:49:37 GMT"),
    ("age", "-" + "9" * 400),
    ("date", "\u00ff" * 50),
    ("last-modified", "Sun, 31 Feb 1994 08:49:37 GMT"),
    ("etag", 'W/"' + "\u00ff" * 10),
    ("vary", "accept-language, , ACCEPT-language"),
    ("content-range", "bytes 5-1/2"),
]


@pytest.mark.parametrize("seed", [1, 2])
async def test_hostile_origin_fields_never_fail(site: SiteFactory, seed: int) -> None:
    # Whatever the origin's caching fields say, the client gets the origin's status.
    rng = random.Random(seed)
    s = site()
    for i in range(40):
        headers = rng.sample(_ORIGIN_FIELDS, rng.randint(1, 5))
        status = rng.choice([200, 206, 404])
        path = f"/h{i % 5}"
        s.origin.script(path, Reply(status=status, headers=headers))
        request = rng.choice([{}, {"range": "bytes=0-2"}, {"cache-control": "max-stale"}])
        response = await s.get(path, request)
        assert response.status_code in (200, 206, 404, 416)
