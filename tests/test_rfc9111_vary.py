"""RFC 9111 section 4.1 (calculating cache keys with Vary), through
``CacheMiddleware(cache_all=True)``: selecting fields match after whitespace, line combining
and normalisation "known to have identical semantics" (case, order where it is not
significant)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]


def _varying(s: Site, field: str) -> None:
    s.origin.script("/r", Reply(headers=[("cache-control", "max-age=600"), ("vary", field)]))


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("accept-language", "en-US, fr;q=0.5", "en-us,fr;q=0.50"),  # case, spaces, weight
        ("accept-language", "fr;q=0.5, en-US", "en-US, fr;q=0.5"),  # order across weights
        ("accept-language", "da, en;q=1", "da, en"),  # q=1 is the default weight
        ("accept", "text/HTML, application/json;q=0.9", "text/html,application/json; q=0.9"),
        ("accept-charset", "UTF-8", "utf-8"),
        ("accept-encoding", "gzip, br", "BR;q=0.9 , gzip"),
        ("x-anything", "  value ", "value"),  # surrounding whitespace is never part of it
    ],
)
async def test_4_1_equivalent_values_select_one_variant(
    site: SiteFactory, field: str, first: str, second: str
) -> None:
    s = site()
    _varying(s, field)
    a = await s.get("/r", {field: first})
    b = await s.get("/r", {field: second})
    assert s.calls() == 1
    assert a.text == b.text


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("accept-language", "en, fr", "fr, en"),  # equal weights: order may rank them
        ("accept-language", "en", "fr"),
        ("accept", "text/html;level=1", "text/html;level=2"),
        ("accept", 'text/plain;format="A"', 'text/plain;format="a"'),  # values keep case
        ("x-anything", "value", "VALUE"),  # unknown syntax: case may matter
        ("accept-encoding", "gzip", "br"),
    ],
)
async def test_4_1_different_values_select_different_variants(
    site: SiteFactory, field: str, first: str, second: str
) -> None:
    s = site()
    _varying(s, field)
    await s.get("/r", {field: first})
    await s.get("/r", {field: second})
    assert s.calls() == 2


async def test_4_1_field_lines_combine(site: SiteFactory) -> None:
    s = site()
    _varying(s, "accept-language")
    await s.get("/r", [("accept-language", "en"), ("accept-language", "fr;q=0.5")])
    await s.get("/r", {"accept-language": "en, fr;q=0.5"})
    assert s.calls() == 1


async def test_4_1_absent_and_present_differ(site: SiteFactory) -> None:
    s = site()
    _varying(s, "accept-language")
    await s.get("/r")
    await s.get("/r", {"accept-language": "en"})
    await s.get("/r")
    assert s.calls() == 2


async def test_4_1_vary_star_never_matches(site: SiteFactory) -> None:
    s = site()
    _varying(s, "*")
    await s.get()
    response = await s.get()
    assert s.calls() == 2
    assert response.headers["cache-status"] == "asgi-cache; fwd=miss; detail=vary-star"


async def test_4_1_a_malformed_weight_is_kept_verbatim(site: SiteFactory) -> None:
    s = site()
    _varying(s, "accept-language")
    await s.get("/r", {"accept-language": "en;q=abc"})
    await s.get("/r", {"accept-language": "en;q=abc"})
    await s.get("/r", {"accept-language": "en"})
    assert s.calls() == 2
