"""The stored form of an HTTP response: status and headers in ``Entry.extra``, raw body.

``extra`` is a compact binary block, decoded on a hit with one ``struct`` call and one
``bytes.split`` (no JSON, no base64, no per-header loop)::

    >B   layout version (2)
    >H   status
    >B   flags (no-cache, must-revalidate, shareable, derived etag, gzip body, no-cache
         fields, targeted field)
    >f   stale-while-revalidate seconds
    >f   stale-if-error seconds
    >d   Last-Modified as unix seconds (-1: none)
    >H   length of the ETag, then the ETag bytes
    ...  the headers as ``name NUL value NUL name NUL value`` (field values never hold NUL,
         RFC 9110 section 5.5; responses whose headers do are not stored)

The headers are the ASGI header list a hit sends (end-to-end only, ``Set-Cookie`` never
present) except ``ETag`` and ``Content-Length``, which depend on the representation served
(identity or gzip) and are added when serving; the ETag is kept once, in its own field. A
body the middleware compressed (``FLAG_GZIP``) is stored gzip-coded and sent as it is to
clients that accept gzip.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field, replace
from typing import Final

from .._entries import Entry, EntryKind
from .dates import parse_http_date

FLAG_NO_CACHE: Final = 1
"""Stored, but revalidated before every use (``Cache-Control: no-cache``)."""
FLAG_MUST_REVALIDATE: Final = 2
"""Never served stale (``must-revalidate``, ``proxy-revalidate``, ``s-maxage``)."""
FLAG_SHAREABLE: Final = 4
"""Explicitly shareable (``public``, ``s-maxage``): may answer requests with credentials."""
FLAG_DERIVED_ETAG: Final = 8
"""The ETag was derived from the body by the middleware, not sent by the origin."""
FLAG_GZIP: Final = 16
"""The body is stored gzip-coded by the middleware; the origin sent it unencoded."""
FLAG_NO_CACHE_FIELDS: Final = 32
"""``no-cache="field, ..."``: those fields are left out of answers not revalidated with the
origin (RFC 9111 section 5.2.2.4)."""
FLAG_TARGETED: Final = 64
"""The stored headers hold a targeted cache-control field (RFC 9213), never sent to
clients."""

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

_LAYOUT: Final = 2
_FIXED = struct.Struct(">BHBffdH")
_NOT_IN_BLOCK: Final = frozenset({b"etag", b"content-length"})


def derive_etag(body: bytes) -> bytes:
    """A strong ETag derived from the body (RFC 9110 section 8.8.3).

    64 bits: it only has to tell apart the versions of one resource, and it is stored (and
    sent) with every entry.
    """
    return b'"' + hashlib.blake2b(body, digest_size=8).hexdigest().encode() + b'"'


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
    """A response as stored and served by the middleware.

    ``headers`` leave out ``ETag`` (in `etag`) and ``Content-Length`` (the length of
    the body served). ``body`` is gzip-coded when ``flags & FLAG_GZIP``; ``plain`` then holds
    the unencoded body when this process has it at hand (it is never stored).
    """

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
    plain: bytes | None = None

    def to_entry(self) -> Entry:
        """The entry to write (kind RESPONSE)."""
        lm = -1.0 if self.last_modified is None else self.last_modified
        fields: list[bytes] = []
        for name, value in self.headers:
            if name not in _NOT_IN_BLOCK:
                fields += (name, value)
        extra = b"".join(
            (
                _FIXED.pack(
                    _LAYOUT, self.status, self.flags, self.swr, self.sie, lm, len(self.etag)
                ),
                self.etag,
                b"\0".join(fields),
            )
        )
        return Entry(
            kind=EntryKind.RESPONSE,
            body=self.body,
            created_at=self.created_at,
            fresh_until=self.fresh_until,
            stale_until=self.stale_until,
            load_time=self.load_time,
            extra=extra,
        )

    @classmethod
    def from_entry(cls, entry: Entry) -> StoredResponse | None:
        """Decode an entry written by `to_entry`; ``None`` if it is not one."""
        if entry.kind is not EntryKind.RESPONSE:
            return None
        extra = entry.extra
        try:
            layout, status, flags, swr, sie, lm, etag_len = _FIXED.unpack_from(extra)
        except struct.error:
            return None
        pos = _FIXED.size + etag_len
        if layout != _LAYOUT or pos > len(extra):
            return None
        fields = extra[pos:].split(b"\0") if pos < len(extra) else []
        if len(fields) % 2:
            return None
        return cls(
            status=status,
            headers=list(zip(fields[::2], fields[1::2], strict=True)),
            body=entry.body,
            created_at=entry.created_at,
            fresh_until=entry.fresh_until,
            stale_until=entry.stale_until,
            flags=flags,
            swr=swr,
            sie=sie,
            etag=extra[_FIXED.size : pos],
            last_modified=None if lm < 0 else lm,
            load_time=entry.load_time,
        )

    def copy(self) -> StoredResponse:
        """A copy to change (`freshen`) without touching this one, which may be shared by
        the hits of its entry (`asgi_cache.http.hits`)."""
        return replace(self, headers=list(self.headers))

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lowercase), if present."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def headers_with_etag(self) -> list[tuple[bytes, bytes]]:
        """`headers` plus the ``ETag`` field (for re-parsing the stored response)."""
        return [*self.headers, (b"etag", self.etag)] if self.etag else list(self.headers)

    def freshen(self, headers_304: list[tuple[bytes, bytes]]) -> None:
        """Update stored headers from a 304's (RFC 9111 section 4.3.4); body unchanged."""
        update = [(n.lower(), v) for n, v in headers_304 if n.lower() not in _NOT_FRESHENED]
        names = {n for n, _ in update}
        self.headers = [(n, v) for n, v in self.headers if n not in names]
        for name, value in update:
            if name == b"etag":
                if value:
                    self.etag = value
                    self.flags &= ~FLAG_DERIVED_ETAG
            else:
                self.headers.append((name, value))
        if b"last-modified" in names:
            self.last_modified = parse_http_date((self.header(b"last-modified") or b"").decode())
