"""The deliberate deviations from RFC 9111 that protect users, each with its reason.

RFC 9111 lets a shared cache store a response with ``Set-Cookie`` (section 3 does not forbid
it) and answer requests carrying ``Cookie`` from shared entries (only ``Authorization`` is
restricted, section 3.5). This cache does neither unless the response is explicitly
shareable, because one user's session cookie or per-user page served to everyone is the
classic cache leak (Varnish's builtin VCL and nginx make the same choices by default)."""

from __future__ import annotations

from collections.abc import Callable

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]
FRESH = ("cache-control", "max-age=600")


async def test_deviation_set_cookie_responses_are_not_stored(site: SiteFactory) -> None:
    # Reason: replaying one user's Set-Cookie to others hands them that user's session.
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH, ("set-cookie", "sid=alice")]))
    await s.get()
    second = await s.get()
    assert s.calls() == 2
    assert second.headers["cache-status"] == "asgi-cache; fwd=miss; detail=set-cookie"


async def test_deviation_set_cookie_stored_when_the_origin_scopes_it(site: SiteFactory) -> None:
    # Explicitly shareable: no-cache="set-cookie" (or private="set-cookie") says the cookie
    # is per user and the rest of the response is shared.
    s = site()
    cc = ("cache-control", 'max-age=600, no-cache="set-cookie"')
    s.origin.script("/r", Reply(headers=[cc, ("set-cookie", "sid=alice")]))
    await s.get()
    second = await s.get()
    assert s.calls() == 1
    assert "set-cookie" not in second.headers


async def test_deviation_requests_with_cookies_bypass_shared_entries(site: SiteFactory) -> None:
    # Reason: a page rendered for a cookie is usually that user's page.
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH]))
    await s.get()
    with_cookie = await s.get("/r", {"cookie": "sid=bob"})
    assert s.calls() == 2
    assert with_cookie.headers["x-cache"] == "BYPASS"
    await s.get()
    assert s.calls() == 2  # and the user's response did not replace the shared entry


async def test_3_5_explicitly_shareable_entries_answer_credentialed_requests(
    site: SiteFactory,
) -> None:
    # RFC 9111 section 3.5: public, s-maxage or must-revalidate allow a shared cache to
    # answer a request with Authorization; the same rule is applied to Cookie.
    s = site()
    s.origin.script("/r", Reply(headers=[("cache-control", "public, max-age=600")]))
    await s.get()
    for header in ("authorization", "cookie"):
        response = await s.get("/r", {header: "secret"})
        assert response.headers["x-cache"] == "HIT"
    assert s.calls() == 1


async def test_3_5_credentialed_responses_are_stored_only_when_shareable(
    site: SiteFactory,
) -> None:
    s = site()
    s.origin.script("/a", Reply(headers=[FRESH]))
    s.origin.script("/b", Reply(headers=[("cache-control", "s-maxage=600")]))
    for path in ("/a", "/b"):
        await s.get(path, {"authorization": "Bearer x"})
        await s.get(path)
    assert (s.calls("/a"), s.calls("/b")) == (2, 1)
