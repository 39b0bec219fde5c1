"""What ``asgi-cache inspect`` says about entries in every state and of every kind."""

from __future__ import annotations

from asgi_cache._entries import FORMAT_VERSION, Entry, EntryKind, encode_entry
from asgi_cache.backends._wire import encode_deps_header
from asgi_cache.codec import Serializer
from asgi_cache.entry_info import describe_entry, format_entry
from asgi_cache.keys import KeySpace

KEYS = KeySpace("shop")
JSON = Serializer("json")
NOW = 1_800_000_000.0


def stored(full_key: str, entry: Entry, deps: list[tuple[str, str]] | None = None) -> bytes:
    header = encode_deps_header(deps) if deps is not None else b""
    return header + encode_entry(entry, full_key)


def entry(kind: EntryKind = EntryKind.JSON, body: bytes = b'{"a":1}', **times: float) -> Entry:
    return Entry(
        kind=kind,
        body=body,
        created_at=times.get("created", NOW - 10),
        fresh_until=times.get("fresh", NOW + 50),
        stale_until=times.get("stale", NOW + 80),
        load_time=0.125,
    )


def test_a_fresh_value_with_tags() -> None:
    key = KEYS.data("users:1")
    raw = stored(key, entry(), [(KEYS.all_tag, "v0"), (KEYS.tag("users:1"), "v1")])
    info = describe_entry(key, raw, 80_000, KEYS, JSON, now=NOW)
    assert info["key"] == "users:1"
    assert info["state"] == "fresh"
    assert info["age"] == 10.0
    assert info["fresh_for"] == 50.0
    assert info["stale_for"] == 80.0
    assert info["ttl_left"] == 80.0
    assert info["load_time_ms"] == 125.0
    assert info["value"] == {"a": 1}
    assert [t["tag"] for t in info["tags"]] == ["(whole namespace)", "users:1"]
    assert [t["version"] for t in info["tags"]] == ["v0", "v1"]
    text = format_entry(info)
    assert "fresh until  " in text
    assert "(in 50.000 s)" in text
    assert "tag          users:1\n" in text + "\n"  # no (current) mark before it is checked


def test_stale_and_expired_states() -> None:
    key = KEYS.data("k")
    stale = describe_entry(key, stored(key, entry(fresh=NOW - 5)), 20_000, KEYS, JSON, now=NOW)
    assert stale["state"] == "stale"
    assert "(5.000 s ago)" in format_entry(stale)
    gone = entry(fresh=NOW - 5, stale=NOW - 1)
    assert describe_entry(key, stored(key, gone), 5, KEYS, JSON, now=NOW)["state"] == "expired"


def test_a_key_without_expiry_and_without_tags() -> None:
    key = KEYS.data("k")
    info = describe_entry(key, stored(key, entry()), -1, KEYS, JSON, now=NOW)
    assert info["ttl_left"] is None
    assert "tags" not in info
    assert "ttl left     none" in format_entry(info)


def test_negative_and_response_entries_have_no_value() -> None:
    key = KEYS.http("ab" * 20)
    resp = describe_entry(
        key, stored(key, entry(EntryKind.RESPONSE, b"<html>")), 1000, KEYS, JSON, now=NOW
    )
    assert resp["kind"] == "response"
    assert "key" not in resp  # not a data key: shown by its full key
    assert "value" not in resp
    assert format_entry(resp).startswith(f"key          {key}\n")
    neg_key = KEYS.data("users:404")
    neg = describe_entry(
        neg_key, stored(neg_key, entry(EntryKind.NEGATIVE, b"")), 1000, KEYS, JSON, now=NOW
    )
    assert (neg["kind"], "value" in neg) == ("negative", False)


def test_a_body_that_does_not_decode() -> None:
    key = KEYS.data("k")
    info = describe_entry(key, stored(key, entry(body=b"{not json")), 1000, KEYS, JSON, now=NOW)
    assert info["kind"] == "json"
    assert info["error"].startswith("the value does not decode")
    text = format_entry(info)
    assert "kind" in text
    assert "error        the value does not decode" in text


def test_an_entry_copied_from_another_key_is_rejected() -> None:
    raw = stored(KEYS.data("other"), entry())
    info = describe_entry(KEYS.data("k"), raw, 1000, KEYS, JSON, now=NOW)
    assert info["format_version"] == FORMAT_VERSION
    assert info["error"] == "not a valid asgi-cache entry: entry belongs to another key"
    assert "kind" not in info


def test_a_long_value_is_cut_in_the_text_output() -> None:
    key = KEYS.data("big")
    body = b'"' + b"x" * 5000 + b'"'
    info = describe_entry(key, stored(key, entry(body=body)), 1000, KEYS, JSON, now=NOW)
    text = format_entry(info)
    assert "... (5002 characters)" in text
    assert len(text) < 3000


def test_a_foreign_tag_key_is_shown_whole() -> None:
    key = KEYS.data("k")
    raw = stored(key, entry(), [("elsewhere:t:x", "v")])
    info = describe_entry(key, raw, 1000, KEYS, JSON, now=NOW)
    assert info["tags"][0]["tag"] == "elsewhere:t:x"
