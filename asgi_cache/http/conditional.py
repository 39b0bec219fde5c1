"""Conditional requests answered from a stored response (RFC 9110 section 13, RFC 9111
section 4.3.2).

- Entity tags are parsed by their grammar (RFC 9110 section 8.8.3: a quoted opaque string,
  optionally ``W/``), so ``"a,b"`` is one tag, not two.
- ``If-None-Match`` uses the **weak** comparison (section 13.1.2): ``W/"x"`` matches ``"x"``;
  ``*`` matches any stored representation. When it is present, ``If-Modified-Since`` is
  ignored (section 13.1.3).
- ``If-Modified-Since`` is ignored unless it is exactly one valid HTTP-date. It compares
  with the stored ``Last-Modified``, else the stored ``Date``, else the time the response
  was received (RFC 9111 section 4.3.2: "a cache SHOULD use the stored response's Date
  field value (or, if no Date field is present, the time that the stored response was
  received)").
- ``If-Range`` (section 13.1.5) uses the **strong** comparison: an entity tag matches only a
  strong stored tag with the same opaque value (never a weak one); a date matches only a
  stored ``Last-Modified`` that is exactly equal *and* strong, that is at least 60 seconds
  before the stored ``Date`` (section 8.8.2.2).
- Preconditions apply to 2xx responses only (section 13.2.1): a stored 404 is served as it
  is, whatever the request's validators.
- ``If-Match`` and ``If-Unmodified-Since`` "are not applicable to a cache" (RFC 9111 section
  4.3.2): such requests go to the origin untouched (`origin_preconditions`).
- A 304 with a strong validator updates only a stored response with that validator (RFC 9111
  section 4.3.4, `updates`).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from .dates import parse_http_date

_ETAG: Final = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*')
_STRONG_DATE_MARGIN: Final = 60.0  # RFC 9110 section 8.8.2.2


class EntityTag(NamedTuple):
    """One parsed entity tag."""

    weak: bool
    opaque: str


def parse_etag(value: str) -> EntityTag | None:
    """One entity tag (``"x"`` or ``W/"x"``), or ``None`` if ``value`` is not one."""
    found = _ETAG.fullmatch(value)
    if found is None:
        return None
    return EntityTag(found.group(1) is not None, found.group(2))


def parse_etag_list(value: str) -> list[EntityTag] | None:
    """The entity tags of an ``If-None-Match``/``If-Match`` list; ``None`` when it does not
    parse (the condition is then ignored, which serves the full response: the safe side).
    Empty list elements (``"a", , "b"``) are allowed, as for every list (RFC 9110 section
    5.6.1)."""
    tags: list[EntityTag] = []
    pos = 0
    while pos < len(value):
        found = _ETAG.match(value, pos)
        if found is None:
            if value[pos] in ", \t":
                pos += 1
                continue
            return None
        tags.append(EntityTag(found.group(1) is not None, found.group(2)))
        pos = found.end()
        if pos < len(value) and value[pos] != ",":
            return None
    return tags


def weak_match(a: EntityTag, b: EntityTag) -> bool:
    """The weak comparison (RFC 9110 section 8.8.3.2): the opaque tags are equal."""
    return a.opaque == b.opaque


def strong_match(a: EntityTag, b: EntityTag) -> bool:
    """The strong comparison: both strong and the opaque tags equal."""
    return not a.weak and not b.weak and a.opaque == b.opaque


class Validators(NamedTuple):
    """What a stored response can be validated against."""

    etag: bytes
    """The ETag of the representation about to be served (empty: none)."""
    last_modified: float | None
    date: float | None
    """The stored ``Date`` (parsed), else the time the response was received."""


def not_modified(status: int, validators: Validators, request: dict[str, str]) -> bool:
    """Whether the request's ``If-None-Match`` / ``If-Modified-Since`` make the answer a 304
    (RFC 9110 section 13.2.2, steps 3 and 4, for GET and HEAD)."""
    if not 200 <= status < 300 or status == 206:
        return False
    inm = request.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        tags = parse_etag_list(inm)
        current = parse_etag(validators.etag.decode("latin-1")) if validators.etag else None
        if tags is None or current is None:
            return False
        return any(weak_match(tag, current) for tag in tags)
    ims = request.get("if-modified-since")
    # A list of dates (more than one member) is no HTTP-date either: ignored.
    since = parse_http_date(ims)
    if since is None:
        return False
    reference = validators.last_modified
    if reference is None:
        reference = validators.date
    return reference is not None and reference <= since


def if_range_allows(value: str | None, validators: Validators) -> bool:
    """Whether a Range request may be answered with a part (RFC 9110 section 13.1.5): no
    ``If-Range``, or one that matches the stored validator strongly."""
    if value is None:
        return True
    text = value.strip()
    if text.startswith(('"', 'W/"')):
        wanted = parse_etag(text)
        current = parse_etag(validators.etag.decode("latin-1")) if validators.etag else None
        return wanted is not None and current is not None and strong_match(wanted, current)
    when = parse_http_date(text)
    modified = validators.last_modified
    if when is None or modified is None or when != modified:
        return False
    return validators.date is not None and validators.date - modified >= _STRONG_DATE_MARGIN


def origin_preconditions(headers: dict[str, str]) -> bool:
    """Whether the request carries preconditions only the origin can evaluate
    (``If-Match``, ``If-Unmodified-Since``; RFC 9111 section 4.3.2)."""
    return "if-match" in headers or "if-unmodified-since" in headers


def updates(stored_etag: bytes, new_etag: bytes) -> bool:
    """Whether a 304 carrying ``new_etag`` may update the stored response whose ETag is
    ``stored_etag`` (RFC 9111 section 4.3.4): unless the 304 has a strong validator the
    stored response does not have."""
    new = parse_etag(new_etag.decode("latin-1")) if new_etag else None
    if new is None or new.weak:
        return True
    old = parse_etag(stored_etag.decode("latin-1")) if stored_etag else None
    return old is not None and strong_match(old, new)
