"""The hit path's memos: entries decoded once per stored bytes (``DecodeMemo``), responses
and answer forms built once per entry (``asgi_cache.http.hits``), and what must stay per
request."""

from __future__ import annotations

from collections.abc import Callable
from gzip import compress as gzip_compress
from typing import Any

import pytest

from asgi_cache._entries import CorruptEntry, DecodeMemo, Entry, EntryKind, encode_entry
from asgi_cache.http.hits import HitMemo, Prepared
from asgi_cache.http.responses import FLAG_GZIP, StoredResponse
from asgi_cache.http.rules import NO_DIRECTIVES, RequestDirectives
from asgi_cache.http.serving import answer

from .http_support import client_for
from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]
FRESH = ("cache-control", "max-age=600")


def _stored(body: bytes = b"hello", **changes: Any) -> StoredResponse:
    fields: dict[str, Any] = {
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"x-a", b"1")],
        "body": body,
        "created_at": 1000.0,
        "fresh_until": 1600.0,
        "stale_until": 1600.0,
        "etag": b'"e1"',
    }
    fields.update(changes)
    return StoredResponse(**fields)


def _entry(body: bytes = b"hello", **changes: Any) -> Entry:
    return _stored(body, **changes).to_entry()


# -- DecodeMemo ----------------------------------------------------------------------------


def test_equal_bytes_decode_to_the_same_entry_object() -> None:
    memo = DecodeMemo()
    raw = encode_entry(_entry(), "k")
    first = memo.decode(raw, "k")
    again = memo.decode(bytes(bytearray(raw)), "k")  # equal bytes, another object
    assert again is first
    other = memo.decode(encode_entry(_entry(b"changed"), "k"), "k")
    assert other is not first
    assert other.body.endswith(b"changed")
    assert len(memo) == 1


def test_corrupt_bytes_raise_on_every_read_and_are_not_remembered() -> None:
    memo = DecodeMemo()
    raw = bytearray(encode_entry(_entry(), "k"))
    raw[-1] ^= 1
    for _ in range(2):
        with pytest.raises(CorruptEntry):
            memo.decode(bytes(raw), "k")
    assert len(memo) == 0
    with pytest.raises(CorruptEntry):  # the key is part of what is checked, memo or not
        memo.decode(encode_entry(_entry(), "k"), "other")


def test_decode_memo_is_bounded_by_keys_and_bytes() -> None:
    raw = {key: encode_entry(_entry(), key) for key in ("a", "b", "c")}
    memo = DecodeMemo(max_items=2)
    for key in "abc":
        memo.decode(raw[key], key)
    assert len(memo) == 2
    assert memo.bytes == 2 * (len(raw["b"]) + len(raw["c"]))
    first = memo.decode(raw["a"], "a")  # forgotten: decoded again
    assert memo.decode(raw["a"], "a") is first
    small = DecodeMemo(max_bytes=8 * 2 * len(raw["a"]) - 1)
    big = small.decode(raw["a"], "a")
    assert len(small) == 0
    assert small.decode(raw["a"], "a") is not big


# -- HitMemo and forms ---------------------------------------------------------------------


def test_one_prepared_response_per_entry_object() -> None:
    memo = HitMemo()
    entry = _entry()
    prepared = memo.prepared("k", entry)
    assert prepared is not None
    assert memo.prepared("k", entry) is prepared
    newer = memo.prepared("k", _entry(b"newer"))
    assert newer is not None
    assert newer is not prepared
    assert newer.stored.body == b"newer"
    assert len(memo) == 1
    value = Entry(kind=EntryKind.JSON, body=b"1", created_at=0.0, fresh_until=1.0, stale_until=1.0)
    assert memo.prepared("v", value) is None


def test_hit_memo_is_bounded_by_keys_and_bytes() -> None:
    memo = HitMemo(max_items=2)
    for key in "abc":
        memo.prepared(key, _entry())
    assert len(memo) == 2
    size = len(_entry().body) + 2 * len(_entry().extra)
    assert memo.bytes == 2 * size
    tight = HitMemo(max_bytes=8 * size - 1)
    assert tight.prepared("a", _entry()) is not None
    assert len(tight) == 0


@pytest.mark.parametrize("status", [200, 204, 404])
@pytest.mark.parametrize("gzip", [False, True])
def test_a_form_holds_what_the_general_path_sends(status: int, gzip: bool) -> None:
    # The same fields in the same order, around the per-request Age and status fields.
    flags = FLAG_GZIP if gzip else 0
    stored = _stored(gzip_compress(b"hello") if gzip else b"hello", status=status, flags=flags)
    prepared = Prepared(stored.to_entry(), stored)
    status_headers = [(b"cache-status", b"c; hit; ttl=600")]
    for request in ({}, {"accept-encoding": "gzip"}):
        wants = gzip and bool(request)
        form = prepared.form(wants, ())
        assert form is not None
        assert prepared.form(wants, ()) is form
        general = answer(stored, request, head=False, status_headers=status_headers, now=1010.0)
        assert general is not None
        sent = [*form.headers, (b"age", b"10"), *form.tail, *status_headers]
        assert (sent, form.body) == (general.headers, general.body)
        assert (form.body == b"hello") is (not wants)


def test_a_corrupt_gzip_body_has_no_form() -> None:
    stored = _stored(b"not gzip", flags=FLAG_GZIP)
    assert Prepared(stored.to_entry(), stored).form(False, ()) is None


def test_requests_without_directives_share_one_parse() -> None:
    assert RequestDirectives.parse({"accept": "*/*"}) is NO_DIRECTIVES
    assert RequestDirectives.parse({"pragma": "no-cache"}).no_cache
    assert RequestDirectives.parse({"cache-control": "no-store"}).no_store


# -- through the middleware ----------------------------------------------------------------


async def test_hits_of_one_entry_share_one_prepared_response(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH]))
    await s.get()
    hits = s.app.context.hits
    await s.get()
    (prepared,) = hits._items.values()
    for _ in range(2):  # on Redis too: equal bytes decode to the same entry
        response = await s.get()
        assert response.headers["x-cache"] == "HIT"
        assert list(hits._items.values()) == [prepared]
    assert s.calls() == 1


async def test_an_outer_middleware_changing_messages_does_not_change_later_hits(
    site: SiteFactory,
) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH]))
    await s.get()

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        async def changing(message: dict[str, Any]) -> None:
            # As Starlette's GZipMiddleware and MutableHeaders do: in place.
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-outer", b"1"))
            else:
                message["body"] = b"changed"
            await send(message)

        await s.app(scope, receive, changing)

    async with client_for(outer) as client:
        for _ in range(3):
            changed = await client.get("/r")
            assert changed.headers.get_list("x-outer") == ["1"]
            assert changed.content == b"changed"
    plain = await s.get()
    assert plain.headers["x-cache"] == "HIT"
    assert "x-outer" not in plain.headers
    assert plain.content == b"/r#1"


async def test_head_and_get_hits_of_one_entry(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH]))
    await s.get()
    get = await s.get()
    head = await s.request("HEAD")
    again = await s.get()
    assert (get.content, head.content, again.content) == (b"/r#1", b"", b"/r#1")
    assert head.headers["content-length"] == get.headers["content-length"] == "4"
    assert s.calls() == 1


async def test_age_and_ttl_are_per_hit(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[FRESH]))
    await s.get()
    first = await s.get()
    s.clock.advance(100)
    later = await s.get()
    assert (first.headers["age"], later.headers["age"]) == ("0", "100")
    ttls = [int(r.headers["cache-status"].rpartition("ttl=")[2]) for r in (first, later)]
    assert ttls[0] in (599, 600)
    assert ttls[0] - ttls[1] == 100


@pytest.mark.parametrize("swr", [False, True])
async def test_a_revalidation_leaves_the_shared_response_alone(
    site: SiteFactory, swr: bool
) -> None:
    # The 304 freshens a copy: the response every hit of the old entry shared is unchanged.
    s = site()
    cc = "max-age=10, stale-while-revalidate=60" if swr else "max-age=10"
    s.origin.script(
        "/r",
        Reply(headers=[("cache-control", cc), ("etag", '"v1"')]),
        Reply(status=304, headers=[("cache-control", cc), ("etag", '"v1"'), ("x-new", "1")]),
    )
    await s.get()
    await s.get()
    (prepared,) = s.app.context.hits._items.values()
    headers, fresh_until = list(prepared.stored.headers), prepared.stored.fresh_until
    s.clock.advance(20)
    await s.get()
    await s.app.drain()
    assert s.calls() == 2
    assert (prepared.stored.headers, prepared.stored.fresh_until) == (headers, fresh_until)
    revalidated = await s.get()
    assert revalidated.headers["x-new"] == "1"
    assert revalidated.headers["x-cache"] == "HIT"
