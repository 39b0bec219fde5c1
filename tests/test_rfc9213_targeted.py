"""RFC 9213 (targeted cache control, ``CDN-Cache-Control``), through
``CacheMiddleware(cache_all=True)``: the first valid field of the target list replaces
``Cache-Control`` and ``Expires`` (section 2.2); it is a Structured Field Dictionary
(section 2.1); this cache does not forward the fields it obeys."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_cache import Cache, CacheMiddleware, ConfigurationError
from asgi_cache.http.targeted import parse_targeted

from .http_support import client_for
from .rfc_support import Origin, Reply, Site

SiteFactory = Callable[..., Site]


async def test_2_2_the_targeted_field_replaces_cache_control(site: SiteFactory) -> None:
    s = site()
    s.origin.script(
        "/r",
        Reply(headers=[("cache-control", "no-store"), ("cdn-cache-control", "max-age=60")]),
    )
    miss = await s.get()
    hit = await s.get()
    assert s.calls() == 1
    for response in (miss, hit):
        assert "cdn-cache-control" not in response.headers  # not forwarded
        assert response.headers["cache-control"] == "no-store"  # for the browser


async def test_2_2_a_targeted_no_store_wins_over_cache_control(site: SiteFactory) -> None:
    s = site()
    s.origin.script(
        "/r",
        Reply(headers=[("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")]),
    )
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_2_2_the_targeted_field_replaces_expires(site: SiteFactory) -> None:
    s = site()
    s.origin.script(
        "/r", Reply(headers=[("expires", s.date(3600)), ("cdn-cache-control", "must-revalidate")])
    )
    await s.get()
    await s.get()
    assert s.calls() == 2  # no freshness from the targeted field, Expires ignored


@pytest.mark.parametrize(
    ("value", "calls"),
    [
        # Invalid fields are ignored: Cache-Control's max-age=60 applies (one call).
        ("max-age=60,", 1),  # a trailing comma
        ("Max-Age=60", 1),  # keys are lowercase
        ('max-age="60', 1),  # an unterminated string
        ("", 1),  # empty
        ("max-age=60 no-store", 1),  # no comma between members
        # Valid fields are in force, but a value violating the directive is not consumed:
        # no usable max-age, so the response is stale at once (two calls).
        ("max-age=1.5", 2),
        ("max-age=-1", 2),
        ('max-age="60"', 2),
        ("max-age=?1", 2),
    ],
)
async def test_2_1_field_syntax(site: SiteFactory, value: str, calls: int) -> None:
    s = site()
    s.origin.script(
        "/r", Reply(headers=[("cache-control", "max-age=60"), ("cdn-cache-control", value)])
    )
    await s.get()
    await s.get()
    assert s.calls() == calls


async def test_2_1_parameters_are_ignored_and_strings_name_fields(site: SiteFactory) -> None:
    s = site()
    cdn = ("cdn-cache-control", 'max-age=60;foo=bar, private="x-user"')
    s.origin.script("/r", Reply(headers=[cdn, ("x-user", "alice")]))
    await s.get()
    hit = await s.get()
    assert s.calls() == 1
    assert "x-user" not in hit.headers


async def test_2_2_the_target_list_is_in_order(site: SiteFactory) -> None:
    s = site(targeted_cache_control=["App-Cache-Control", "CDN-Cache-Control"])
    headers = [("cdn-cache-control", "no-store"), ("app-cache-control", "max-age=60")]
    s.origin.script("/r", Reply(headers=headers))
    first = await s.get()
    await s.get()
    assert s.calls() == 1
    assert "app-cache-control" not in first.headers
    assert "cdn-cache-control" not in first.headers


async def test_2_2_fields_not_on_the_list_pass_through_and_change_nothing(
    site: SiteFactory,
) -> None:
    s = site(targeted_cache_control=())
    headers = [("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")]
    s.origin.script("/r", Reply(headers=headers))
    first = await s.get()
    await s.get()
    assert s.calls() == 1
    assert first.headers["cdn-cache-control"] == "no-store"


async def test_opt_in_routes_obey_no_targeted_field_by_default(web_cache: Cache) -> None:
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("p", headers={"cdn-cache-control": "no-store"})

    app = Starlette(routes=[Route("/p", web_cache.response(ttl=60)(page))])
    async with client_for(CacheMiddleware(app, cache=web_cache)) as client:
        first = await client.get("/p")
        second = await client.get("/p")
    assert second.headers["x-cache"] == "HIT"
    assert first.headers["cdn-cache-control"] == "no-store"


@pytest.mark.parametrize(
    "value", ["CDN-Cache-Control", ["X-Cache"], [""], [1], ["CDN-Cache-Control\n"], None]
)
def test_a_bad_target_list_is_a_configuration_error(web_cache: Cache, value: object) -> None:
    if value is None:  # None means the default: fine
        CacheMiddleware(Origin(), cache=web_cache, cache_all=True, targeted_cache_control=None)
        return
    with pytest.raises(ConfigurationError, match="targeted_cache_control="):
        CacheMiddleware(
            Origin(),
            cache=web_cache,
            cache_all=True,
            targeted_cache_control=value,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=60, no-store", {"max-age": "60", "no-store": None}),
        ("no-cache=?1, private=?0", {"no-cache": None}),  # ?0 (false) is not consumed
        ('private="a, b";p=1', {"private": "a, b"}),
        ('private="say \\"hi\\""', {"private": 'say "hi"'}),
        ("a=(1 2);x, max-age=5", {"max-age": "5"}),  # an inner list is not consumed
        ("a=:AQI=:, b=tok/en, c=1.5", {"b": "tok/en"}),  # byte sequences, decimals
        ("max-age=60, max-age=5", {"max-age": "5"}),  # RFC 8941: the last member wins
        ("s-maxage=1.25", {"s-maxage": "invalid"}),
        ('*x="v", y=1', {"*x": "v"}),  # an Integer only for delta-seconds directives
    ],
)
def test_2_1_dictionary_members(value: str, expected: dict[str, str | None]) -> None:
    assert parse_targeted([value]) == expected


@pytest.mark.parametrize(
    "value",
    [
        "a=(1 2",  # an unterminated inner list
        "a=(1,2)",  # a comma inside an inner list
        'a="\\x"',  # a bad escape
        'a="\x01"',  # a control character
        "a=?2",
        "a=",
        "a;=1",
        "a=1234567890123456",  # more than 15 digits
        "a=\u0663",  # a non-ASCII digit
        "A=1",
        "a=1,,b",
    ],
)
def test_2_1_invalid_dictionaries(value: str) -> None:
    assert parse_targeted([value]) is None
