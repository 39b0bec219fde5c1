"""Answering from a stored response: pure functions building the hit, 304 or HEAD answer.

Given a `StoredResponse`, the request's headers and method, and the
outcome's status headers, `answer` says what the client gets:

- the representation: the stored body as it is, or, for a body stored gzip-coded
  (`encoding`), the identity body for a client that does not accept gzip; every
  answer from such an entry says ``Vary: Accept-Encoding`` and the gzip representation has
  its own ETag;
- ``ETag``, ``Content-Length`` and ``Age`` (RFC 9111 section 5.1), computed per answer;
- a ``304`` with only the headers RFC 9110 section 15.4.5 allows when the client's
  validators match (`conditional`), a ``206``/``416`` for a ``Range`` request
  (`ranges`), or an empty body for ``HEAD``;
- never a field this cache must not send: targeted cache-control fields (RFC 9213), and the
  fields of a qualified ``no-cache="..."`` unless the response was just validated with the
  origin (RFC 9111 section 5.2.2.4).

Also here: how a stored response stands at a given instant for a request's directives
(`standing`), which decides between a hit, a stale answer and a trip to the origin.
No I/O, no state.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import replace
from typing import Final, NamedTuple

from .conditional import Validators, if_range_allows, not_modified
from .dates import parse_http_date
from .encoding import accepts_gzip, add_vary_accept_encoding, gunzip, gzip_etag
from .ranges import answer_from_parts, parse_range, range_answer
from .responses import (
    FLAG_GZIP,
    FLAG_MUST_REVALIDATE,
    FLAG_NO_CACHE,
    FLAG_NO_CACHE_FIELDS,
    FLAG_TARGETED,
    StoredResponse,
)
from .rules import RequestDirectives, ResponseFacts

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
    STALE_ACCEPTED = "stale accepted"
    """Stale, within what the request's ``max-stale`` accepts: served as it is."""
    TOO_OLD = "too old"
    """Fresh, but older than the request's ``max-age`` or fresh for less than its
    ``min-fresh``: go to the origin."""


_FRESH: Final = Standing.FRESH  # bound once: an enum member lookup is a descriptor call (3.11)


def standing(stored: StoredResponse, now: float, request: RequestDirectives) -> Standing:
    """Whether ``stored`` is a hit, a stale answer, or a trip to the origin.

    ``no-cache`` entries are never fresh; ``must-revalidate`` ones (and ``proxy-revalidate``
    and ``s-maxage`` ones, in a shared cache) are never served stale, whatever the request's
    ``max-stale`` (RFC 9111 sections 5.2.2.2, 5.2.2.4, 5.2.2.8, 5.2.2.10). The request's
    ``max-age`` bounds the age, ``min-fresh`` the freshness left, ``max-stale`` the
    staleness accepted (sections 5.2.1.1 to 5.2.1.3).
    """
    age = now - stored.created_at
    too_old = request.max_age is not None and age > request.max_age
    if now < stored.fresh_until and not stored.flags & FLAG_NO_CACHE:
        min_fresh = request.min_fresh
        if too_old or (min_fresh is not None and stored.fresh_until - now < min_fresh):
            return Standing.TOO_OLD
        return _FRESH
    may_serve_stale = not stored.flags & (FLAG_MUST_REVALIDATE | FLAG_NO_CACHE)
    if may_serve_stale and now < stored.fresh_until + stored.swr:
        return Standing.STALE_WHILE_REVALIDATE
    max_stale = request.max_stale
    accepted = max_stale is not None and now - stored.fresh_until <= max_stale
    if may_serve_stale and accepted and not too_old:
        return Standing.STALE_ACCEPTED
    return Standing.STALE


def stale_if_error_ok(stale: StoredResponse | None, now: float) -> bool:
    """Whether ``stale`` may answer instead of a failed origin (RFC 5861 section 4)."""
    return (
        stale is not None
        and not stale.flags & (FLAG_MUST_REVALIDATE | FLAG_NO_CACHE)
        and now < stale.fresh_until + stale.sie
    )


def answer(
    stored: StoredResponse,
    request: dict[str, str],
    *,
    head: bool,
    status_headers: Headers,
    now: float | None,
    validated: bool = False,
    hidden: tuple[bytes, ...] = (),
    extra: Headers | None = None,
) -> Answer | None:
    """The answer to a request from ``stored``; ``None`` when its gzip body is corrupt.

    Args:
        stored: The response to answer from.
        request: The request's headers (lowercase names).
        head: A ``HEAD`` request: the same headers, no body.
        status_headers: ``Cache-Status`` and ``X-Cache`` for this outcome.
        now: The clock, to send ``Age``; ``None`` sends none (a response fresh from the
            origin).
        validated: The response was just received or validated by the origin, so the
            fields of a qualified ``no-cache`` may be sent.
        hidden: The targeted cache-control fields this cache obeys (never sent).
        extra: Fields of the origin's response that the entry does not keep (qualified
            ``private``, ``Set-Cookie``), for the answer of the request that fetched it.
    """
    status = stored.status
    built = representation(
        stored, gzip=wants_gzip(stored, request), validated=validated, hidden=hidden
    )
    if built is None:
        return None
    headers, body, etag = built
    if etag:
        headers.append((b"etag", etag))
    if now is not None:
        age = max(0, int(now - stored.created_at))
        headers.append((b"age", b"%d" % age))
    if extra:
        headers += extra
    range_value = request.get("range")
    # Most hits carry no validator and no range: they skip all of the below.
    if range_value is not None or "if-none-match" in request or "if-modified-since" in request:
        validators = Validators(etag, stored.last_modified, _validator_date(stored, request))
        if not_modified(status, validators, request):
            kept = [h for h in headers if h[0] in _NOT_MODIFIED_KEEP]
            return Answer(304, kept + status_headers, b"")
    if range_value is not None and not head and status == 200:
        specs = parse_range(range_value)
        if specs is not None and if_range_allows(request.get("if-range"), validators):
            ranged = range_answer(headers, body, specs, status_headers)
            if ranged is not None:
                status, headers, body = ranged
                headers.append((b"content-length", b"%d" % len(body)))
                return Answer(status, headers, body)
    if status != 204 and status != 304:
        headers.append((b"content-length", b"%d" % len(body)))
    headers += status_headers
    return Answer(status, headers, b"" if head else body)


def wants_gzip(stored: StoredResponse, request: dict[str, str]) -> bool:
    """Whether the request gets ``stored``'s gzip-coded body as it is (a body stored
    gzip-coded, a client accepting gzip and not asking for ``no-transform``)."""
    if not stored.flags & FLAG_GZIP:
        return False
    # RFC 9111 section 5.2.1.6: a client asking for no-transform gets the body as the origin
    # sent it (the gzip coding is this cache's transformation).
    no_transform = "no-transform" in request.get("cache-control", "").lower()
    return not no_transform and accepts_gzip(request.get("accept-encoding", ""))


def representation(
    stored: StoredResponse,
    *,
    gzip: bool,
    validated: bool = False,
    hidden: tuple[bytes, ...] = (),
) -> tuple[Headers, bytes, bytes] | None:
    """The fields (a new list, without ``ETag`` and ``Content-Length``), body and ETag of
    the identity or the ``gzip`` representation of ``stored`` (see `answer`); ``None``
    when its gzip-coded body does not inflate."""
    body = stored.body
    etag = stored.etag
    headers = _visible_headers(stored, validated=validated, hidden=hidden)
    if stored.flags & FLAG_GZIP:
        add_vary_accept_encoding(headers)
        if gzip:
            headers.append((b"content-encoding", b"gzip"))
            etag = gzip_etag(etag)
        elif stored.plain is not None:
            body = stored.plain
        else:
            try:
                body = gunzip(body)
            except zlib.error:  # a corrupt entry is a miss, never an error
                return None
    return headers, body, etag


def part_answer(
    stored: StoredResponse,
    request: dict[str, str],
    *,
    status_headers: Headers,
    now: float,
    hidden: tuple[bytes, ...] = (),
) -> Answer | None:
    """A 206 from a stored partial response (`ranges`), or ``None`` when it cannot
    answer this request: a range outside its parts, an ``If-Range`` that does not match, or
    validators to evaluate (left to the origin, which has the whole response)."""
    if "if-none-match" in request or "if-modified-since" in request:
        return None
    specs = parse_range(request.get("range", ""))
    date = _validator_date(stored, request)
    validators = Validators(stored.etag, stored.last_modified, date)
    if specs is None or not if_range_allows(request.get("if-range"), validators):
        return None
    view = replace(stored, headers=_visible_headers(stored, validated=False, hidden=hidden))
    age = (b"age", b"%d" % max(0, int(now - stored.created_at)))
    ranged = answer_from_parts(view, specs, [age, *status_headers])
    if ranged is None:
        return None
    headers = [*ranged.headers, (b"content-length", b"%d" % len(ranged.body))]
    return Answer(ranged.status, headers, ranged.body)


def _visible_headers(
    stored: StoredResponse, *, validated: bool, hidden: tuple[bytes, ...]
) -> Headers:
    """The stored headers a client may see in this answer."""
    flags = stored.flags
    if not flags & (FLAG_TARGETED | FLAG_NO_CACHE_FIELDS):
        return list(stored.headers)
    drop: set[bytes] = set(hidden) if flags & FLAG_TARGETED else set()
    if flags & FLAG_NO_CACHE_FIELDS and not validated:
        facts = ResponseFacts.parse(stored.status, stored.headers)
        facts.use_targeted(hidden)
        drop |= facts.no_cache_fields
    return [(n, v) for n, v in stored.headers if n not in drop]


def _validator_date(stored: StoredResponse, request: dict[str, str]) -> float | None:
    # RFC 9111 section 4.3.2: without Last-Modified, If-Modified-Since compares with the
    # stored Date, else the time the response was received (its creation as reckoned).
    if stored.last_modified is not None and "if-range" not in request:
        return None
    if "if-modified-since" not in request and "if-range" not in request:
        return None
    date = stored.header(b"date")
    parsed = parse_http_date(date.decode("latin-1")) if date is not None else None
    return stored.created_at if parsed is None else parsed


def plain_answer(status: int, status_headers: Headers) -> Answer:
    """An empty response generated by the cache itself (e.g. 504 for ``only-if-cached``)."""
    return Answer(status, [(b"content-length", b"0"), *status_headers], b"")
