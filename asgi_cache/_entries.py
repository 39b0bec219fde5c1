"""The versioned stored-entry format: the header every cached entry starts with.

An entry is what the [`Cache`][asgi_cache.Cache] stores under one key: a fixed binary header
followed by an opaque ``extra`` block (used by the HTTP middleware for status and headers, and
by values for the name of the model they were dumped from) and the body. The values
themselves are encoded by `asgi_cache.codec`. The header carries
everything later features need without a second round trip::

    offset size field
    0      2    magic b"\\xacE"
    2      1    format version (2)
    3      1    kind (value-json, value-msgpack, raw bytes, raw str, negative, response)
    4      8    fingerprint of the full Redis key the entry was written under
    12     8    created at (unix seconds, float64)
    20     8    fresh until (unix seconds)
    28     8    stale until (unix seconds; the key's physical expiry)
    36     8    load time (seconds the loader or origin took; used by early refresh)
    44     1    flags (bit 0: the JSON body holds tagged non-JSON types to revive)
    45     4    length of ``extra``
    49     4    length of the body
    53     4    CRC-32 of ``extra`` and body
    57     ...  extra, then body

Decoding is total: whatever bytes a key holds, `decode_entry` returns an entry or raises
`CorruptEntry`, which callers treat as a miss. The lengths and the checksum catch a
truncated, extended or altered value (a foreign writer, a bit flip, a partial copy); the
times must be finite and plausible (a NaN or an infinity would otherwise become an ``Age``
header or a lifetime). Format version 1 entries (no lengths, no checksum) read as misses.
"""

from __future__ import annotations

import enum
import hashlib
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

MAGIC: Final = b"\xacE"
FORMAT_VERSION: Final = 2
_HEADER = struct.Struct(">2sBB8sddddBIII")
HEADER_SIZE: Final = _HEADER.size
_FLAG_TAGGED = 1
_MAX_TIME: Final = 1e11
"""Latest plausible unix time in an entry (year 5138); anything later is corruption."""


class CorruptEntry(Exception):
    """Stored bytes are not a valid entry for this key (truncated, foreign or moved)."""


class EntryKind(enum.IntEnum):
    """What an entry's body holds."""

    JSON = 1
    """A value encoded with orjson."""
    MSGPACK = 2
    """A value encoded with msgpack."""
    BYTES = 3
    """A ``bytes`` value stored raw."""
    STR = 4
    """A ``str`` value stored as UTF-8."""
    NEGATIVE = 5
    """A cached "not found": the loader returned ``None``."""
    RESPONSE = 6
    """An HTTP response: status and headers in ``extra``, the raw body as body."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A decoded stored entry.

    ``body`` is the raw body bytes; use `Serializer.decode` (via the cache) for values.
    For a value, ``extra`` holds the qualified name of the model or dataclass it was dumped
    from (empty for plain values): the cache warns when such a value is read without a type
    to rebuild it into (see `model_name`).
    """

    kind: EntryKind
    body: bytes
    created_at: float
    fresh_until: float
    stale_until: float
    load_time: float = 0.0
    extra: bytes = b""
    tagged: bool = False

    def is_fresh(self, now: float) -> bool:
        """Whether the entry is within its freshness lifetime at ``now``."""
        return now < self.fresh_until

    def age(self, now: float) -> float:
        """Seconds since the entry was created (never negative)."""
        return max(0.0, now - self.created_at)


@lru_cache(maxsize=4096)  # a hit checks the fingerprint of a key it has usually seen before
def fingerprint(full_key: str) -> bytes:
    """Eight bytes identifying the key an entry belongs to."""
    return hashlib.blake2b(full_key.encode(), digest_size=8).digest()


def encode_entry(entry: Entry, full_key: str) -> bytes:
    """Encode ``entry`` for storage under ``full_key``."""
    header = _HEADER.pack(
        MAGIC,
        FORMAT_VERSION,
        entry.kind,
        fingerprint(full_key),
        entry.created_at,
        entry.fresh_until,
        entry.stale_until,
        entry.load_time,
        _FLAG_TAGGED if entry.tagged else 0,
        len(entry.extra),
        len(entry.body),
        zlib.crc32(entry.body, zlib.crc32(entry.extra)),
    )
    return b"".join((header, entry.extra, entry.body))


def decode_entry(data: bytes | memoryview, full_key: str) -> Entry:
    """Decode bytes stored under ``full_key``.

    Total: any input either decodes or raises `CorruptEntry`.

    Raises:
        CorruptEntry: The bytes are not an entry of this format, are truncated or extended,
            fail their checksum, hold implausible times, or were written under another key.
    """
    if len(data) < HEADER_SIZE:
        raise CorruptEntry("truncated header")
    try:
        (magic, version, kind, fp, created, fresh, stale, load, flags, extra_len, body_len, crc) = (
            _HEADER.unpack_from(data)
        )
        kind = EntryKind(kind)
    except (struct.error, ValueError) as exc:
        raise CorruptEntry(str(exc)) from None
    if magic != MAGIC or version != FORMAT_VERSION:
        raise CorruptEntry("unknown magic or format version")
    if fp != fingerprint(full_key):
        raise CorruptEntry("entry belongs to another key")
    end_extra = HEADER_SIZE + extra_len
    if end_extra + body_len != len(data):
        what = "truncated" if end_extra + body_len > len(data) else "has trailing bytes"
        raise CorruptEntry(f"entry {what} ({len(data)} bytes, header says {end_extra + body_len})")
    view = memoryview(data)
    if zlib.crc32(view[HEADER_SIZE:]) != crc:
        raise CorruptEntry("checksum mismatch")
    # Every time is finite and plausible, so no NaN or infinity becomes an Age or a lifetime.
    # (Chained comparisons, not a generator: this runs on every hit.)
    if not (
        0.0 <= created <= _MAX_TIME
        and 0.0 <= fresh <= _MAX_TIME
        and 0.0 <= stale <= _MAX_TIME
        and 0.0 <= load <= _MAX_TIME
    ):
        raise CorruptEntry("implausible times in the header")
    return Entry(
        kind=kind,
        body=bytes(view[end_extra:]),
        created_at=created,
        fresh_until=fresh,
        stale_until=stale,
        load_time=load,
        extra=bytes(view[HEADER_SIZE:end_extra]),
        tagged=bool(flags & _FLAG_TAGGED),
    )


class DecodeMemo:
    """The entry decoded last under each key, with the bytes it was decoded from.

    A hit reads the same bytes again and again (the same object from ``memory://``, equal
    bytes from Redis); decoding bytes equal to the remembered ones returns the remembered
    `Entry` (immutable) without checking them again, so a hit pays one comparison of
    bytes instead of the header unpacking, the checksum and two copies, and upper layers can
    recognise the entry by identity (the middleware keeps what it built for an entry's
    hits, `asgi_cache.http.hits`). Bounded: at most ``max_items`` keys and ``max_bytes``
    bytes of remembered values (each counted twice: the bytes read and the entry's copy),
    oldest first out; a value larger than an eighth of ``max_bytes`` is never remembered.

    Args:
        max_items: Most keys remembered.
        max_bytes: Most bytes remembered.
    """

    __slots__ = ("_items", "bytes", "max_bytes", "max_items")

    def __init__(self, max_items: int = 1024, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.bytes = 0
        """Bytes remembered now (twice each value's length)."""
        self._items: dict[str, tuple[bytes, Entry]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def decode(self, data: bytes, full_key: str) -> Entry:
        """`decode_entry` of ``data``, the remembered entry when ``data`` is what it was
        decoded from.

        Raises:
            CorruptEntry: As `decode_entry`.
        """
        items = self._items
        known = items.get(full_key)
        if known is not None:
            if known[0] is data or known[0] == data:
                return known[1]
            self._forget(full_key)
        entry = decode_entry(data, full_key)
        size = 2 * len(data)
        if size * 8 > self.max_bytes:
            return entry
        while items and (len(items) >= self.max_items or self.bytes + size > self.max_bytes):
            self._forget(next(iter(items)))
        items[full_key] = (bytes(data), entry)
        self.bytes += size
        return entry

    def _forget(self, full_key: str) -> None:
        data, _ = self._items.pop(full_key)
        self.bytes -= 2 * len(data)


def model_name(entry: Entry) -> str | None:
    """The model or dataclass a value entry was dumped from (``myapp.User``), if any."""
    if entry.kind not in (EntryKind.JSON, EntryKind.MSGPACK) or not entry.extra:
        return None
    return entry.extra.decode("utf-8", "replace")
