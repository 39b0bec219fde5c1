"""Answering from a stored response: pure functions building the hit, 304 or HEAD answer.

Given a :class:`~.responses.StoredResponse`, the request's headers and method, and the
outcome's status headers, :func:`answer` says what the client gets:

- the representation: the stored body as it is, or, for a body stored gzip-coded
  (:mod:`.encoding`), the identity body for a client that does not accept gzip; every
  answer from such an entry says ``Vary: Accept-Encoding`` and the gzip representation has
  its own ETag;
- ``ETag``, ``Content-Length`` and ``Age`` (RFC 9111 section 5.1), computed per answer;
- a ``304`` with only the headers RFC 9110 section 15.4.5 allows when the client's
  validators match (RFC 9110 section 13.2.2), or an empty body for ``HEAD``.

Also here: how a stored response stands at a given instant (:func:`standing`), which
decides between a hit, a stale answer and a trip to the origin. No I/O, no state.
"""

from __future__ import annotations

import enum
import zlib
from typing import Final, NamedTuple

from .cache_control import parse_http_date, weak_match
from .encoding import accepts_gzip, add_vary_accept_encoding, gunzip, gzip_etag
from .responses import FLAG_GZIP, FLAG_MUST_REVALIDATE, FLAG_NO_CACHE, StoredResponse

# RFC 9110 section 15.4.5: what a 304 carries (plus Last-Modified, useful without an ETag).
_NOT_MODIFIED_KEEP: Final = frozenset(
    {
        b"cache-control",
        b"content-location",
        b"date",
        b"etag",
        b"expires",
        b"vary",
        b"last-modified",
        b"age",
        b"cache-status",
        b"x-cache",
    }
)

Headers = list[tuple[bytes, bytes]]


class Answer(NamedTuple):
    """A response the cache sends itself: start and one body message."""

    status: int
    headers: Headers
    body: bytes


class Standing(enum.Enum):
    """How a stored response stands for one request at one instant."""

    FRESH = "fresh"
    """Fresh (and young enough for the request's ``max-age``): a hit."""
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"
    """Stale inside its RFC 5861 window: served at once while one refresh runs."""
    STALE = "stale"
    """Stale: go to the origin (revalidating it when it has a validator)."""
    TOO_OLD = "too old"
    """Fresh, but older than the request's ``max-age``: go to the origin."""


def standing(stored: StoredResponse, now: float, max_age: int | None) -> Standing:
    """Whether ``stored`` is a hit, a stale-while-revalidate answer, or a trip to the origin.

    ``no-cache`` entries are never fresh; ``must-revalidate`` ones are never served stale
    (RFC 9111 sections 5.2.2.2 and 5.2.2.4).
    """
    fresh = now < stored.fresh_until and not stored.flags & FLAG_NO_CACHE
    if fresh:
        if max_age is None or now - stored.created_at <= max_age:
            return Standing.FRESH
        return Standing.TOO_OLD
    may_serve_stale = not stored.flags & (FLAG_MUST_REVALIDATE | FLAG_NO_CACHE)
    if may_serve_stale and now < stored.fresh_until + stored.swr:
        return Standing.STALE_WHILE_REVALIDATE
    return Standing.STALE


def stale_if_error_ok(stale: StoredResponse | None, now: float) -> bool:
    """Whether ``stale`` may answer instead of a failed origin (RFC 5861 section 4)."""
    return (
        stale is not None
        and not stale.flags & (FLAG_MUST_REVALIDATE | FLAG_NO_CACHE)
        and now < stale.fresh_until + stale.sie
    )


def not_modified(stored: StoredResponse, etag: bytes, request: dict[str, str]) -> bool:
    """Whether the client's conditional headers match ``stored`` (RFC 9110 13.2.2).

    ``etag`` is the ETag of the representation about to be served.
    """
    if stored.status != 200:
        return False
    inm = request.get("if-none-match")
    if inm is not None:
        return bool(etag) and weak_match(inm, etag.decode("latin-1"))
    ims = request.get("if-modified-since")
    if ims is not None and stored.last_modified is not None:
        since = parse_http_date(ims)
        return since is not None and stored.last_modified <= since
    return False


def answer(
    stored: StoredResponse,
    request: dict[str, str],
    *,
    head: bool,
    status_headers: Headers,
    now: float | None,
) -> Answer | None:
    """The answer to a request from ``stored``; ``None`` when its gzip body is corrupt.

    Args:
        stored: The response to answer from.
        request: The request's headers (lowercase names).
        head: A ``HEAD`` request: the same headers, no body.
        status_headers: ``Cache-Status`` and ``X-Cache`` for this outcome.
        now: The clock, to send ``Age``; ``None`` sends none (a response fresh from the
            origin).
    """
    status = stored.status
    body = stored.body
    etag = stored.etag
    headers = list(stored.headers)
    if stored.flags & FLAG_GZIP:
        add_vary_accept_encoding(headers)
        if accepts_gzip(request.get("accept-encoding", "")):
            headers.append((b"content-encoding", b"gzip"))
            etag = gzip_etag(etag)
        elif stored.plain is not None:
            body = stored.plain
        else:
            try:
                body = gunzip(body)
            except zlib.error:  # a corrupt entry is a miss, never an error
                return None
    if etag:
        headers.append((b"etag", etag))
    if status != 204 and status != 304:
        headers.append((b"content-length", b"%d" % len(body)))
    if now is not None:
        age = max(0, int(now - stored.created_at))
        headers.append((b"age", b"%d" % age))
    headers += status_headers
    if not_modified(stored, etag, request):
        status = 304
        headers = [h for h in headers if h[0] in _NOT_MODIFIED_KEEP]
        body = b""
    elif head:
        body = b""
    return Answer(status, headers, body)


def plain_answer(status: int, status_headers: Headers) -> Answer:
    """An empty response generated by the cache itself (e.g. 504 for ``only-if-cached``)."""
    return Answer(status, [(b"content-length", b"0"), *status_headers], b"")
