"""RFC 9111 section 4.3 (validation) and RFC 9110 section 13 (conditional requests),
through ``CacheMiddleware(cache_all=True)``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asgi_cache.http.conditional import EntityTag, parse_etag_list

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]
FRESH = ("cache-control", "max-age=600")


async def test_13_1_2_if_none_match_uses_the_weak_comparison(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH, ("etag", 'W/"v1"')]))
    await s.get()
    weak = await s.get("/r", {"if-none-match": '"v1"'})
    strong = await s.get("/r", {"if-none-match": 'W/"v1"'})
    other = await s.get("/r", {"if-none-match": '"v2"'})
    assert s.calls() == 1
    assert (weak.status_code, strong.status_code, other.status_code) == (304, 304, 200)
    assert weak.content == b""
    assert weak.headers["etag"] == 'W/"v1"'


async def test_8_8_3_entity_tags_may_hold_commas(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH, ("etag", '"a,b"')]))
    await s.get()
    listed = await s.get("/r", {"if-none-match": '"x", "a,b"'})
    split = await s.get("/r", {"if-none-match": '"a", "b"'})
    assert (listed.status_code, split.status_code) == (304, 200)


async def test_13_1_2_star_matches_any_stored_representation(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH]))
    await s.get()
    assert (await s.get("/r", {"if-none-match": "*"})).status_code == 304


async def test_13_1_3_if_modified_since_is_ignored_with_if_none_match(site: SiteFactory) -> None:
    s = site()
    lm = s.date(-3600)
    s.origin.script("/r", Reply(headers=[FRESH, ("etag", '"v1"'), ("last-modified", lm)]))
    await s.get()
    response = await s.get("/r", {"if-none-match": '"v0"', "if-modified-since": s.date()})
    assert response.status_code == 200


async def test_13_1_3_if_modified_since_against_last_modified(site: SiteFactory) -> None:
    s = site()
    lm = s.date(-3600)
    s.origin.script("/r", Reply(headers=[FRESH, ("last-modified", lm)]))
    await s.get()
    same = await s.get("/r", {"if-modified-since": lm})
    later = await s.get("/r", {"if-modified-since": s.date(-60)})
    earlier = await s.get("/r", {"if-modified-since": s.date(-7200)})
    invalid = await s.get("/r", {"if-modified-since": lm.replace("GMT", "UTC")})
    two = await s.get("/r", {"if-modified-since": f"{lm}, {lm}"})
    statuses = [r.status_code for r in (same, later, earlier, invalid, two)]
    assert statuses == [304, 304, 200, 200, 200]
    assert s.calls() == 1


async def test_4_3_2_without_last_modified_the_date_is_the_validator_date(
    site: SiteFactory,
) -> None:
    s = site()
    date = s.date(-100)
    s.origin.script("/r", Reply(headers=[FRESH, ("date", date)]))
    await s.get()
    at_date = await s.get("/r", {"if-modified-since": date})
    before = await s.get("/r", {"if-modified-since": s.date(-200)})
    assert (at_date.status_code, before.status_code) == (304, 200)


async def test_4_3_2_without_date_the_time_of_receipt(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH]))
    await s.get()
    after = await s.get("/r", {"if-modified-since": s.date(5)})
    before = await s.get("/r", {"if-modified-since": s.date(-5)})
    assert (after.status_code, before.status_code) == (304, 200)


async def test_13_2_1_preconditions_only_for_2xx(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(status=404, headers=[FRESH, ("etag", '"gone"')]))
    await s.get()
    response = await s.get("/r", {"if-none-match": "*"})
    assert response.status_code == 404
    assert s.calls() == 1


@pytest.mark.parametrize("header", ["if-match", "if-unmodified-since"])
async def test_4_3_2_origin_only_preconditions_go_to_the_origin(
    site: SiteFactory, header: str
) -> None:
    # "The If-Match and If-Unmodified-Since conditional header fields are not applicable
    # to a cache": the origin evaluates them (it may answer 412).
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH, ("etag", '"v1"')]))
    await s.get()
    value = '"v0"' if header == "if-match" else s.date(-10_000)
    s.origin.script("/r", Reply(status=412))
    response = await s.get("/r", {header: value})
    assert s.calls() == 2
    assert response.status_code == 412
    assert s.origin.seen[-1][header] == value
    assert response.headers["cache-status"] == "asgi-cache; fwd=bypass; detail=precondition"


async def test_4_3_1_revalidation_sends_the_stored_validators(site: SiteFactory) -> None:
    s = site()
    lm = s.date(-3600)
    headers = [("cache-control", "max-age=10"), ("etag", '"v1"'), ("last-modified", lm)]
    s.origin.script("/r", Reply(headers=headers), Reply(status=304, headers=headers))
    await s.get()
    s.clock.advance(11)
    response = await s.get("/r", {"if-none-match": '"client"'})
    assert s.calls() == 2
    assert response.status_code == 200
    assert response.text == "/r#1"
    seen = s.origin.seen[-1]
    assert (seen["if-none-match"], seen["if-modified-since"]) == ('"v1"', lm)
    s.clock.advance(5)
    await s.get()
    assert s.calls() == 2  # freshened by the 304 (RFC 9111 section 4.3.4)


def test_8_8_3_entity_tag_lists() -> None:
    assert parse_etag_list('"a", W/"b",, "c,d"') == [
        EntityTag(weak=False, opaque="a"),
        EntityTag(weak=True, opaque="b"),
        EntityTag(weak=False, opaque="c,d"),
    ]
    for invalid in ('"a" "b"', "a", '"a', 'w/"a"'):
        assert parse_etag_list(invalid) is None, invalid


async def test_13_1_2_an_unparseable_if_none_match_is_ignored(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH, ("etag", '"v1"')]))
    await s.get()
    response = await s.get("/r", {"if-none-match": "v1"})
    assert response.status_code == 200


async def test_4_3_4_a_304_naming_another_strong_validator_updates_nothing(
    site: SiteFactory,
) -> None:
    s = site()
    v1 = [("cache-control", "max-age=10"), ("etag", '"v1"')]
    v2 = [("cache-control", "max-age=10"), ("etag", '"v2"')]
    s.origin.script("/r", Reply(headers=v1), Reply(status=304, headers=v2), Reply(headers=v2))
    await s.get()
    s.clock.advance(11)
    response = await s.get()
    assert s.calls() == 3  # the 304 for "v2" could not freshen "v1": asked again
    assert "if-none-match" not in s.origin.seen[-1]
    assert response.text == "/r#3"
    assert response.headers["etag"] == '"v2"'
