"""RFC 9111 sections 3.3 and 3.4 (incomplete and partial responses) and RFC 9110 section 14
(range requests), through ``CacheMiddleware(cache_all=True)``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asgi_cache.http.ranges import (
    Span,
    answer_from_parts,
    combine,
    content_range,
    parse_range,
    parts_of,
    satisfiable,
)
from asgi_cache.http.responses import StoredResponse

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]
BODY = b"0123456789abcdefghij"  # 20 bytes
FRESH = ("cache-control", "max-age=600")
ETAG = ("etag", '"v1"')


async def _stored(s: Site, *headers: tuple[str, str]) -> None:
    s.origin.script("/r", Reply(headers=[FRESH, ETAG, *headers], body=BODY))
    await s.get()


@pytest.mark.parametrize(
    ("spec", "part", "content_range"),
    [
        ("bytes=0-3", b"0123", "bytes 0-3/20"),
        ("bytes=15-", b"fghij", "bytes 15-19/20"),
        ("bytes=-3", b"hij", "bytes 17-19/20"),
        ("bytes=10-100", b"abcdefghij", "bytes 10-19/20"),
        ("bytes=-100", BODY, "bytes 0-19/20"),
        ("bytes=0-3,2-5", b"012345", "bytes 0-5/20"),  # overlapping: coalesced
        ("BYTES = 0-3", b"0123", "bytes 0-3/20"),  # the unit is case-insensitive
    ],
)
async def test_14_2_a_range_of_a_stored_response(
    site: SiteFactory, spec: str, part: bytes, content_range: str
) -> None:
    s = site()
    await _stored(s)
    response = await s.get("/r", {"range": spec})
    assert s.calls() == 1
    assert response.status_code == 206
    assert response.content == part
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(part))
    assert response.headers["x-cache"] == "HIT"


async def test_14_6_several_ranges_make_a_multipart_body(site: SiteFactory) -> None:
    s = site()
    await _stored(s, ("content-type", "text/plain"))
    response = await s.get("/r", {"range": "bytes=10-11, 0-1"})
    assert response.status_code == 206
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.partition("boundary=")[2].encode()
    parts = response.content.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n"
    # In the order requested (section 14.6), each with its type and range.
    assert parts[1] == (
        b"\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-11/20\r\n\r\nab\r\n"
    )
    assert parts[2] == b"\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01\r\n"


async def test_15_5_17_unsatisfiable_ranges_get_416(site: SiteFactory) -> None:
    s = site()
    await _stored(s)
    response = await s.get("/r", {"range": "bytes=20-30"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */20"
    assert response.content == b""
    assert s.calls() == 1


@pytest.mark.parametrize(
    "spec", ["items=0-3", "bytes=3-1", "bytes=a-b", "bytes=0-3;", "bytes", ",".join(["0-0"] * 101)]
)
async def test_14_2_an_invalid_range_is_ignored(site: SiteFactory, spec: str) -> None:
    s = site()
    await _stored(s)
    response = await s.get("/r", {"range": spec})
    assert response.status_code == 200
    assert response.content == BODY
    assert s.calls() == 1


async def test_14_2_head_ignores_range(site: SiteFactory) -> None:
    s = site()
    await _stored(s)
    response = await s.request("HEAD", "/r", {"range": "bytes=0-3"})
    assert response.status_code == 200
    assert response.headers["content-length"] == "20"


async def test_13_1_5_if_range_uses_the_strong_comparison(site: SiteFactory) -> None:
    s = site()
    await _stored(s)
    same = await s.get("/r", {"range": "bytes=0-1", "if-range": '"v1"'})
    other = await s.get("/r", {"range": "bytes=0-1", "if-range": '"v2"'})
    weak = await s.get("/r", {"range": "bytes=0-1", "if-range": 'W/"v1"'})
    statuses = (same.status_code, other.status_code, weak.status_code)
    assert statuses == (206, 200, 200)
    assert other.content == BODY


async def test_13_1_5_if_range_date_needs_a_strong_last_modified(site: SiteFactory) -> None:
    s = site()
    strong = s.date(-3600)
    s.origin.script("/a", Reply(headers=[FRESH, ("last-modified", strong), ("date", s.date())]))
    weak = s.date(-10)  # less than 60 s before Date: weak (RFC 9110 8.8.2.2)
    s.origin.script("/b", Reply(headers=[FRESH, ("last-modified", weak), ("date", s.date())]))
    await s.get("/a")
    await s.get("/b")
    a = await s.get("/a", {"range": "bytes=0-1", "if-range": strong})
    b = await s.get("/b", {"range": "bytes=0-1", "if-range": weak})
    a_other = await s.get("/a", {"range": "bytes=0-1", "if-range": weak})
    assert (a.status_code, b.status_code, a_other.status_code) == (206, 200, 200)


async def test_3_3_a_range_miss_is_forwarded_and_its_part_stored(site: SiteFactory) -> None:
    s = site()
    part = Reply(
        status=206, headers=[FRESH, ETAG, ("content-range", "bytes 0-9/20")], body=BODY[:10]
    )
    s.origin.script("/r", part, Reply(headers=[FRESH, ETAG], body=BODY))
    first = await s.get("/r", {"range": "bytes=0-9"})
    assert s.origin.seen[-1]["range"] == "bytes=0-9"  # forwarded with its Range
    assert first.status_code == 206
    assert first.content == BODY[:10]
    inside = await s.get("/r", {"range": "bytes=2-4"})
    assert s.calls() == 1  # "a range wholly within the incomplete response"
    assert inside.status_code == 206
    assert inside.content == b"234"
    assert inside.headers["content-range"] == "bytes 2-4/20"
    # Never a partial as a complete response: a plain GET goes to the origin.
    whole = await s.get()
    assert s.calls() == 2
    assert whole.status_code == 200
    assert whole.content == BODY


async def test_3_4_parts_with_the_same_strong_etag_combine(site: SiteFactory) -> None:
    s = site()
    s.origin.script(
        "/r",
        Reply(status=206, headers=[FRESH, ETAG, ("content-range", "bytes 0-9/20")], body=BODY[:10]),
        Reply(status=206, headers=[FRESH, ETAG, ("content-range", "bytes 8-19/20")], body=BODY[8:]),
    )
    await s.get("/r", {"range": "bytes=0-9"})
    await s.get("/r", {"range": "bytes=8-19"})
    assert s.calls() == 2
    # The parts cover the representation: stored as the complete 200.
    whole = await s.get()
    ranged = await s.get("/r", {"range": "bytes=5-14"})
    assert s.calls() == 2
    assert whole.status_code == 200
    assert whole.content == BODY
    assert ranged.content == BODY[5:15]


async def test_3_4_parts_with_different_etags_do_not_combine(site: SiteFactory) -> None:
    s = site()
    s.origin.script(
        "/r",
        Reply(status=206, headers=[FRESH, ETAG, ("content-range", "bytes 0-9/20")], body=BODY[:10]),
        Reply(
            status=206,
            headers=[FRESH, ("etag", '"v2"'), ("content-range", "bytes 10-19/20")],
            body=b"ABCDEFGHIJ",
        ),
    )
    await s.get("/r", {"range": "bytes=0-9"})
    await s.get("/r", {"range": "bytes=10-19"})
    await s.get()
    assert s.calls() == 3  # nothing complete was made of two representations
    newest = await s.get("/r", {"range": "bytes=12-13"})
    assert newest.content == b"CD"  # the newest part replaced the other


async def test_3_3_a_part_that_does_not_match_its_body_is_not_stored(site: SiteFactory) -> None:
    s = site()
    bad = Reply(status=206, headers=[FRESH, ("content-range", "bytes 0-9/20")], body=b"short")
    s.origin.script("/r", bad)
    first = await s.get("/r", {"range": "bytes=0-9"})
    await s.get("/r", {"range": "bytes=0-4"})
    assert s.calls() == 2
    assert first.headers["cache-status"] == "asgi-cache; fwd=miss; detail=bad-range"


async def test_3_3_a_stale_complete_response_is_revalidated_without_the_range(
    site: SiteFactory,
) -> None:
    s = site()
    headers = [("cache-control", "max-age=10"), ETAG]
    s.origin.script("/r", Reply(headers=headers, body=BODY), Reply(status=304, headers=headers))
    await s.get()
    s.clock.advance(11)
    response = await s.get("/r", {"range": "bytes=0-3"})
    assert s.calls() == 2
    assert "range" not in s.origin.seen[-1]  # the complete response is revalidated
    assert s.origin.seen[-1]["if-none-match"] == '"v1"'
    assert response.status_code == 206
    assert response.content == b"0123"


def test_14_1_1_range_specs() -> None:
    assert parse_range("bytes=0-0, -5, 7-") == [(0, 0), (None, 5), (7, None)]
    assert parse_range("bytes=0-1,,2-3") == [(0, 1), (2, 3)]  # empty list elements
    for invalid in ("bytes=", "bytes=-", "bytes=1", "bytes=--1", "bytes=\u0661-2", "0-1"):
        assert parse_range(invalid) is None, invalid


def test_14_2_zero_suffix_and_out_of_range_specs_are_unsatisfiable() -> None:
    assert satisfiable([(None, 0), (30, None)], 20) == []
    assert satisfiable([(0, 1), (2, 3)], 20) == [Span(0, 3)]  # touching: coalesced
    assert satisfiable([(5, 6), (0, 1)], 20) == [Span(5, 6), Span(0, 1)]  # request order


def test_3_3_stored_parts_that_do_not_describe_their_body_are_not_used() -> None:
    def part(*ranges: bytes, body: bytes = b"0123") -> StoredResponse:
        headers = [(b"content-range", r) for r in ranges]
        return StoredResponse(206, headers, body, 0.0, 1.0, 1.0)

    assert parts_of(part(b"bytes 0-3/10")) is not None
    assert parts_of(part(b"bytes 0-3/10", b"bytes 5-6/11")) is None  # two lengths
    assert parts_of(part(b"bytes 0-9/10")) is None  # longer than the body
    assert parts_of(part(b"bytes x/10")) is None
    assert parts_of(part()) is None
    assert answer_from_parts(part(b"bytes x/10"), [(0, 1)], []) is None
    assert answer_from_parts(part(b"bytes 0-3/10"), [(20, 30)], []) is None
    assert content_range(None, 4) is None
    assert content_range(b"bytes 3-1/10", 4) is None
    assert combine(None, part(b"bad"), max_bytes=100) is None
