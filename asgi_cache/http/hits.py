"""What the hits of one stored entry share, built on its first hit: the hit path's memo.

The store hands back the same `Entry` object for every read of unchanged bytes (from the
L1, or from its `DecodeMemo`), so the middleware keeps, per full key and for that entry
only (checked by identity):

- the `StoredResponse` decoded from it, once instead of once per hit;
- per representation (identity, and gzip for a body stored gzip-coded), the `Form` of a
  plain hit: the headers up to ``Age`` (visible stored fields, ``Vary``,
  ``Content-Encoding``, ``ETag``), the ``Content-Length`` after it, and the body (a
  gzip-coded body is inflated once for clients that do not accept gzip).

What varies per request is still computed per hit: ``Age``, ``Cache-Status`` (its ttl), the
representation the request accepts, the empty body of a ``HEAD``; requests with validators
or a ``Range`` take the general path (`serving.answer`: 304, 206, 416). The ASGI messages are
built per hit from these parts: an outer middleware may change a message in place
(Starlette's ``GZipMiddleware`` rewrites the body of the message it is handed, its
``MutableHeaders`` appends to the header list), so no dict or list is shared between two
requests; the header tuples and bodies, immutable, are.

A `Prepared` response is read-only: a path that changes its stored response (a
revalidation freshens the stale entry) works on a copy (`StoredResponse.copy`).
Bounded: at most ``max_items`` keys and ``max_bytes`` bytes (bodies and headers), oldest
first out.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from .._entries import Entry
from .responses import FLAG_GZIP, StoredResponse
from .serving import representation

Header = tuple[bytes, bytes]
_INFLATED: Final = 4
"""How many times its gzip-coded length an identity body is counted (text deflates to a
quarter or less of its length; `encoding` stores only bodies it shrinks)."""


class Form(NamedTuple):
    """One representation of a stored response, as every plain hit of it sends it."""

    headers: tuple[Header, ...]
    """The fields before ``Age``."""
    tail: tuple[Header, ...]
    """The fields after ``Age``: ``Content-Length`` (none for a 204 or 304)."""
    body: bytes


class Prepared:
    """A stored entry's response, decoded once, and the forms its hits were sent in."""

    __slots__ = ("entry", "forms", "size", "stored")

    def __init__(self, entry: Entry, stored: StoredResponse) -> None:
        self.entry = entry
        self.stored = stored
        size = len(entry.body) + 2 * len(entry.extra)
        if stored.flags & FLAG_GZIP:
            size += _INFLATED * len(entry.body)  # the identity body, once a client wants it
        self.size = size
        """Bytes this memo holds for it (bodies and stored fields, estimated)."""
        self.forms: list[Form | None] = [None, None]
        """The identity and the gzip form (``forms[gzip]``), once built (`form`)."""

    def form(self, gzip: bool, hidden: tuple[bytes, ...]) -> Form | None:
        """The identity or ``gzip`` form (``hidden``: the targeted fields never sent);
        ``None`` when a gzip-coded body does not inflate (a corrupt entry)."""
        found = self.forms[gzip]
        if found is not None:
            return found
        built = representation(self.stored, gzip=gzip, hidden=hidden)
        if built is None:
            return None
        headers, body, etag = built
        if etag:
            headers.append((b"etag", etag))
        status = self.stored.status
        tail = () if status == 204 or status == 304 else ((b"content-length", b"%d" % len(body)),)
        found = Form(tuple(headers), tail, body)
        self.forms[gzip] = found
        return found


class HitMemo:
    """The `Prepared` response of each full key's current entry (one middleware's).

    Args:
        max_items: Most keys kept.
        max_bytes: Most bytes kept (bodies and stored fields, estimated).
    """

    __slots__ = ("_items", "bytes", "max_bytes", "max_items")

    def __init__(self, max_items: int = 4096, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.bytes = 0
        """Bytes held now (estimated, `Prepared.size`)."""
        self._items: dict[str, Prepared] = {}

    def __len__(self) -> int:
        return len(self._items)

    def prepared(self, full_key: str, entry: Entry) -> Prepared | None:
        """The `Prepared` response of ``entry`` read under ``full_key``; ``None`` when the
        entry is not an HTTP response."""
        items = self._items
        known = items.get(full_key)
        if known is not None:
            if known.entry is entry:
                return known
            self.bytes -= items.pop(full_key).size
        stored = StoredResponse.from_entry(entry)
        if stored is None:
            return None
        prepared = Prepared(entry, stored)
        size = prepared.size
        if size * 8 > self.max_bytes:
            return prepared  # served, not kept
        while items and (len(items) >= self.max_items or self.bytes + size > self.max_bytes):
            self.bytes -= items.pop(next(iter(items))).size
        items[full_key] = prepared
        self.bytes += size
        return prepared
