"""The stored form of an HTTP response: status and headers in ``Entry.extra``, raw body.

``extra`` is a compact binary block, decoded with ``struct`` on a hit (no JSON, no base64)::

    >H   status
    >B   flags (no-cache, must-revalidate, shareable, derived etag)
    >f   stale-while-revalidate seconds
    >f   stale-if-error seconds
    >d   Last-Modified as unix seconds (-1: none)
    >H   length of the ETag, then the ETag bytes
    >H   header count, then per header: >H name length, name, >I value length, value

The headers are exactly the ASGI header list a hit sends (end-to-end only, Content-Length set,
``Set-Cookie`` never present), so a hit adds ``Age`` and ``Cache-Status`` and nothing else.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Final

from ..codec import Entry, EntryKind
from .cache_control import parse_http_date

__all__ = [
    "FLAG_DERIVED_ETAG",
    "FLAG_MUST_REVALIDATE",
    "FLAG_NO_CACHE",
    "FLAG_SHAREABLE",
    "HOP_BY_HOP",
    "StoredResponse",
    "derive_etag",
    "end_to_end_headers",
]

FLAG_NO_CACHE: Final = 1
"""Stored, but revalidated before every use (``Cache-Control: no-cache``)."""
FLAG_MUST_REVALIDATE: Final = 2
"""Never served stale (``must-revalidate``, ``proxy-revalidate``, ``s-maxage``)."""
FLAG_SHAREABLE: Final = 4
"""Explicitly shareable (``public``, ``s-maxage``): may answer requests with credentials."""
FLAG_DERIVED_ETAG: Final = 8
"""The ETag was derived from the body by the middleware, not sent by the origin."""

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
"""RFC 9110 section 7.6.1 connection-specific fields: never stored."""

# Fields a cache computes itself or must never replay (RFC 9111 section 3.1).
_NOT_STORED: Final = HOP_BY_HOP | {b"set-cookie", b"age", b"cache-status", b"x-cache"}
# RFC 9111 section 4.3.4: a 304 does not change the stored body's framing.
_NOT_FRESHENED: Final = _NOT_STORED | {b"content-length", b"content-encoding", b"content-type"}

_FIXED = struct.Struct(">HBffdH")
_LEN16 = struct.Struct(">H")
_LEN32 = struct.Struct(">I")


def derive_etag(body: bytes) -> bytes:
    """A strong ETag derived from the body (RFC 9110 section 8.8.3)."""
    return b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'


def end_to_end_headers(
    headers: list[tuple[bytes, bytes]], drop: frozenset[bytes] = frozenset()
) -> list[tuple[bytes, bytes]]:
    """``headers`` without hop-by-hop fields, those the Connection field names, and ``drop``."""
    excluded = set(_NOT_STORED | drop)
    for name, value in headers:
        if name.lower() == b"connection":
            excluded.update(t.strip().lower() for t in value.split(b","))
    return [(n.lower(), v) for n, v in headers if n.lower() not in excluded]


@dataclass(slots=True)
class StoredResponse:
    """A response as stored and served by the middleware."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    created_at: float
    fresh_until: float
    stale_until: float
    flags: int = 0
    swr: float = 0.0
    sie: float = 0.0
    etag: bytes = b""
    last_modified: float | None = None
    load_time: float = 0.0
    tags: tuple[str, ...] = field(default=())

    def to_entry(self) -> Entry:
        """The entry to write (kind RESPONSE)."""
        lm = -1.0 if self.last_modified is None else self.last_modified
        parts = [
            _FIXED.pack(self.status, self.flags, self.swr, self.sie, lm, len(self.etag)),
            self.etag,
            _LEN16.pack(len(self.headers)),
        ]
        for name, value in self.headers:
            parts += (_LEN16.pack(len(name)), name, _LEN32.pack(len(value)), value)
        return Entry(
            kind=EntryKind.RESPONSE,
            body=self.body,
            created_at=self.created_at,
            fresh_until=self.fresh_until,
            stale_until=self.stale_until,
            load_time=self.load_time,
            extra=b"".join(parts),
        )

    @classmethod
    def from_entry(cls, entry: Entry) -> StoredResponse | None:
        """Decode an entry written by :meth:`to_entry`; ``None`` if it is not one."""
        if entry.kind is not EntryKind.RESPONSE:
            return None
        extra = entry.extra
        try:
            status, flags, swr, sie, lm, etag_len = _FIXED.unpack_from(extra)
            pos = _FIXED.size
            etag = extra[pos : pos + etag_len]
            pos += etag_len
            (count,) = _LEN16.unpack_from(extra, pos)
            pos += 2
            headers: list[tuple[bytes, bytes]] = []
            for _ in range(count):
                (n,) = _LEN16.unpack_from(extra, pos)
                name = extra[pos + 2 : pos + 2 + n]
                pos += 2 + n
                (v,) = _LEN32.unpack_from(extra, pos)
                headers.append((name, extra[pos + 4 : pos + 4 + v]))
                pos += 4 + v
        except struct.error:
            return None
        if pos != len(extra):
            return None
        return cls(
            status=status,
            headers=headers,
            body=entry.body,
            created_at=entry.created_at,
            fresh_until=entry.fresh_until,
            stale_until=entry.stale_until,
            flags=flags,
            swr=swr,
            sie=sie,
            etag=etag,
            last_modified=None if lm < 0 else lm,
            load_time=entry.load_time,
        )

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lowercase), if present."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def freshen(self, headers_304: list[tuple[bytes, bytes]]) -> None:
        """Update stored headers from a 304's (RFC 9111 section 4.3.4); body unchanged."""
        update = [(n.lower(), v) for n, v in headers_304 if n.lower() not in _NOT_FRESHENED]
        names = {n for n, _ in update}
        self.headers = [(n, v) for n, v in self.headers if n not in names] + update
        etag = self.header(b"etag")
        if etag and names & {b"etag"}:
            self.etag = etag
            self.flags &= ~FLAG_DERIVED_ETAG
        if b"last-modified" in names:
            self.last_modified = parse_http_date((self.header(b"last-modified") or b"").decode())
