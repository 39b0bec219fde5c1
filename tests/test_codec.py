"""The stored-entry format and the value serializers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from asgi_cache import SerializationError
from asgi_cache._entries import (
    HEADER_SIZE,
    CorruptEntry,
    Entry,
    EntryKind,
    decode_entry,
    encode_entry,
)
from asgi_cache.codec import Serializer

VALUES: list[Any] = [
    "héllo",
    b"\x00\xffraw",
    0,
    -(2**40),
    3.25,
    True,
    False,
    [1, "a", [2.5, {"k": None}]],
    {"nested": {"list": [1, 2, {"deep": "x"}], "flag": False}},
    dt.datetime(2026, 11, 25, 12, 30, 1, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 25, 12, 30),
    dt.date(2026, 1, 2),
    dt.time(23, 59, 1),
    {"when": dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "raw": b"\x01", "t": (1, (2, "3"))},
    (1, 2),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("10.25"),
    [],
    {},
    "",
]


def entry_for(kind: EntryKind, body: bytes, tagged: bool = False) -> Entry:
    return Entry(kind, body, 1.0, 2.0, 3.0, 0.5, b"extra", tagged)


@pytest.mark.parametrize("name", ["json", "msgpack"])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_with_their_types(name: str, value: Any) -> None:
    serializer = Serializer(name)
    kind, body, tagged, _ = serializer.encode(value, key="k")
    back = serializer.decode(entry_for(kind, body, tagged))
    assert back == value
    assert type(back) is type(value)


def test_plain_json_values_are_not_flagged_for_revival() -> None:
    kind, body, tagged, _ = Serializer("json").encode({"a": [1, 2]})
    assert kind is EntryKind.JSON
    assert body == b'{"a":[1,2]}'
    assert tagged is False


def test_dataclasses_and_models_encode_as_dicts() -> None:
    @dataclasses.dataclass
    class User:
        id: int
        name: str

    for name in ("json", "msgpack"):
        s = Serializer(name)
        kind, body, tagged, _ = s.encode(User(1, "ann"))
        assert s.decode(entry_for(kind, body, tagged)) == {"id": 1, "name": "ann"}


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_unencodable_value_names_key_and_type(name: str) -> None:
    where = r"'users:1:x'.*value\['a'\]\[1\] \(complex\)"
    with pytest.raises(SerializationError, match=where) as info:
        Serializer(name).encode({"a": [1, 2j]}, key="users:1:x")
    assert isinstance(info.value, TypeError)


def test_entry_round_trip_and_key_binding() -> None:
    entry = Entry(EntryKind.RESPONSE, b"body", 10.0, 20.0, 30.0, 0.1, b"hdrs", False)
    raw = encode_entry(entry, "ns:h:abc")
    assert decode_entry(raw, "ns:h:abc") == entry
    with pytest.raises(CorruptEntry, match="another key"):
        decode_entry(raw, "ns:h:abd")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: raw[: HEADER_SIZE - 1],  # truncated header
        lambda raw: raw[: HEADER_SIZE + 2],  # truncated extra block
        lambda raw: b"XX" + raw[2:],  # foreign magic
        lambda raw: raw[:2] + b"\x63" + raw[3:],  # unknown format version
        lambda raw: raw[:3] + b"\x7f" + raw[4:],  # unknown kind
        lambda raw: b'{"json": "from another library"}',
        lambda raw: b"",
    ],
)
def test_corrupt_bytes_are_rejected(mutate: Any) -> None:
    raw = encode_entry(entry_for(EntryKind.JSON, b"[1]"), "k")
    with pytest.raises(CorruptEntry):
        decode_entry(mutate(raw), "k")


@pytest.mark.parametrize(
    ("kind", "body"),
    [(EntryKind.JSON, b"{not json"), (EntryKind.MSGPACK, b"\xc1"), (EntryKind.STR, b"\xff")],
)
def test_undecodable_bodies_are_corrupt(kind: EntryKind, body: bytes) -> None:
    with pytest.raises(CorruptEntry):
        Serializer("json").decode(entry_for(kind, body))


def test_negative_entries_decode_to_none() -> None:
    assert Serializer("json").decode(entry_for(EntryKind.NEGATIVE, b"")) is None


def test_entry_freshness_and_age() -> None:
    e = entry_for(EntryKind.JSON, b"1")
    assert e.is_fresh(1.5)
    assert not e.is_fresh(2.0)
    assert e.age(4.0) == 3.0
    assert e.age(0.0) == 0.0
