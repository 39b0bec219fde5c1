"""Range requests (RFC 9110 section 14, RFC 9111 sections 3.3 and 3.4).

**From a complete stored response.** A ``GET`` with ``Range: bytes=...`` answered from a
stored ``200`` gets a ``206`` with ``Content-Range`` (one range), a
``multipart/byteranges`` body (several, section 14.6), or a ``416`` with
``Content-Range: bytes */<length>`` when no range is satisfiable (section 15.5.17). Ranges
that overlap or touch are coalesced (section 14.2 allows it); otherwise parts go in the
order requested. An invalid ``Range`` (another unit, a malformed spec, ``last < first``,
more than `MAX_RANGES` ranges) is ignored and the full ``200`` is sent (section 14.2:
a server MAY ignore ``Range``); so is ``Range`` on a ``HEAD``, on a non-200 stored
response, on an empty representation, and when ``If-Range`` does not match strongly
(`if_range_allows`). Ranges count over the representation served: the
gzip coding for a client that gets the gzip body (its own ETag, section 8.8.3), the
identity body otherwise.

**Partial responses** (section 3.3: a cache MAY store incomplete responses). A range miss
is forwarded with its ``Range`` (and ``If-Range``). A single-part ``206`` the origin answers
(``Content-Range: bytes a-b/<length>`` with a known length) is stored apart from the complete
response (its own key, so a partial can never answer as a complete response), together with
the parts already stored when both have the same strong ``ETag`` (section 3.4); when the
parts cover the whole representation, they are stored as the complete ``200``. A later
range request wholly inside the stored parts is answered from them (section 3.3: "the
request is partial and specifies a range wholly within the incomplete response").

How others do it: Varnish and nginx (``slice``) fetch whole objects or fixed slices; Traffic
Server and Squid forward range misses and do not store the parts by default. Not done
here: storing multipart ``206`` responses, parts of unknown length (``/*``), revalidating a
stale partial (a stale partial is not used; the next part replaces it).
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import replace
from typing import Final, NamedTuple

from .responses import StoredResponse

MAX_RANGES: Final = 100
"""More ranges than this in one request are ignored (section 14.2 warns of such requests as
a denial of service; nginx's ``max_ranges`` and httpd's ``MaxRanges`` bound them too)."""

_DIGITS: Final = re.compile(r"\d{1,18}", re.ASCII)
_CONTENT_RANGE: Final = re.compile(rb"bytes (\d{1,18})-(\d{1,18})/(\d{1,18})")
_PARTIAL_SUFFIX: Final = ":206"

Headers = list[tuple[bytes, bytes]]
Spec = tuple[int | None, int | None]
"""``(first, last)``, ``(first, None)`` for ``first-``, ``(None, n)`` for the last ``n``."""


class Span(NamedTuple):
    """An inclusive byte range of a representation."""

    start: int
    end: int


class RangeAnswer(NamedTuple):
    """A 206 or 416 built from a stored body."""

    status: int
    headers: Headers
    body: bytes


def partial_key(full_key: str) -> str:
    """Where the parts of the response stored under ``full_key`` are kept."""
    return full_key + _PARTIAL_SUFFIX


def parse_range(value: str) -> list[Spec] | None:
    """The byte-range specs of a ``Range`` value (section 14.1.1), or ``None`` when it is
    to be ignored."""
    unit, sep, rest = value.partition("=")
    if not sep or unit.strip(" \t").lower() != "bytes":
        return None
    specs: list[Spec] = []
    for raw in rest.split(","):
        item = raw.strip(" \t")
        if not item:
            continue
        first, dash, last = item.partition("-")
        if not dash:
            return None
        if not first:
            if not _DIGITS.fullmatch(last):
                return None
            specs.append((None, int(last)))
            continue
        if not _DIGITS.fullmatch(first) or (last and not _DIGITS.fullmatch(last)):
            return None
        if last and int(last) < int(first):
            return None  # section 14.1.1: invalid
        specs.append((int(first), int(last) if last else None))
    if not specs or len(specs) > MAX_RANGES:
        return None
    return specs


def range_request(headers: dict[str, str]) -> bool:
    """Whether a GET's headers (lowercase names) ask for byte ranges this cache can serve."""
    value = headers.get("range")
    return value is not None and parse_range(value) is not None


def satisfiable(specs: list[Spec], length: int) -> list[Span]:
    """The spans of ``specs`` a representation of ``length`` bytes can satisfy, coalesced
    when any overlap or touch (sorted then), else in the order requested."""
    spans: list[Span] = []
    for first, last in specs:
        if first is None:
            if not last:
                continue  # a zero suffix length is unsatisfiable
            spans.append(Span(max(0, length - last), length - 1))
        elif first < length:
            end = length - 1 if last is None else min(last, length - 1)
            spans.append(Span(first, end))
    ordered = sorted(spans)
    if all(a.end + 1 < b.start for a, b in itertools.pairwise(ordered)):
        return spans
    merged: list[Span] = []
    for span in ordered:
        if merged and span.start <= merged[-1].end + 1:
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return merged


_KEEP_416: Final = frozenset({b"cache-control", b"date", b"etag", b"expires", b"vary", b"age"})


def range_answer(
    headers: Headers, body: bytes, specs: list[Spec], extra: Headers
) -> RangeAnswer | None:
    """The 206 or 416 answering ``specs`` from a complete ``body`` (``headers``: the full
    response's, without ``Content-Length``; ``extra``: the outcome's ``Cache-Status``);
    ``None`` to send the full response instead."""
    length = len(body)
    if not length:
        return None  # an empty representation has no byte to range over
    spans = satisfiable(specs, length)
    if not spans:
        kept = [(n, v) for n, v in headers if n in _KEEP_416]
        unsatisfied = [(b"content-range", b"bytes */%d" % length)]
        return RangeAnswer(416, [*kept, *unsatisfied, *extra], b"")
    if len(spans) == 1:
        (start, end) = spans[0]
        content_range = (b"content-range", b"bytes %d-%d/%d" % (start, end, length))
        return RangeAnswer(206, [*headers, content_range, *extra], body[start : end + 1])
    return _multipart(
        headers, [(span, body[span.start : span.end + 1]) for span in spans], length, extra
    )


def _multipart(
    headers: Headers, pieces: list[tuple[Span, bytes]], length: int | None, extra: Headers
) -> RangeAnswer:
    # Section 14.6: each part carries the representation's Content-Type and its own
    # Content-Range; the boundary is random so no body can contain it by chance.
    boundary = secrets.token_hex(16).encode()
    content_type = next((v for n, v in headers if n == b"content-type"), None)
    total = b"*" if length is None else b"%d" % length
    chunks: list[bytes] = []
    for span, data in pieces:
        chunks.append(b"--" + boundary + b"\r\n")
        if content_type is not None:
            chunks.append(b"Content-Type: " + content_type + b"\r\n")
        chunks.append(b"Content-Range: bytes %d-%d/%s\r\n\r\n" % (span.start, span.end, total))
        chunks.append(data + b"\r\n")
    chunks.append(b"--" + boundary + b"--\r\n")
    kept = [(n, v) for n, v in headers if n not in (b"content-type", b"content-range")]
    multipart = (b"content-type", b"multipart/byteranges; boundary=" + boundary)
    return RangeAnswer(206, [*kept, multipart, *extra], b"".join(chunks))


# -- partial responses ---------------------------------------------------------------------


class Part(NamedTuple):
    """One stored part: its span of the representation and where its bytes are in the
    stored body."""

    span: Span
    offset: int


def part_reason(content_type: bytes, *, asked: bool) -> str | None:
    """Why an origin's 206 cannot be stored, if it cannot: only the answer to the range
    this cache forwarded (``asked``), in one part."""
    if not asked:
        return "status"
    if content_type.startswith(b"multipart/byteranges"):
        return "multipart"
    return None


def content_range(value: bytes | None, body_length: int) -> tuple[Span, int] | None:
    """The span and complete length a 206's ``Content-Range`` states, if it is valid and
    agrees with the body received."""
    if value is None:
        return None
    found = _CONTENT_RANGE.fullmatch(value.strip())
    if found is None:
        return None
    start, end, length = (int(g) for g in found.groups())
    if end < start or end >= length or end - start + 1 != body_length:
        return None
    return Span(start, end), length


def parts_of(stored: StoredResponse) -> tuple[list[Part], int] | None:
    """The parts a stored partial response holds and the complete length, or ``None`` if
    its ranges do not describe its body (a corrupt entry: not used)."""
    parts: list[Part] = []
    offset = 0
    length = -1
    for name, value in stored.headers:
        if name != b"content-range":
            continue
        found = _CONTENT_RANGE.fullmatch(value)
        if found is None:
            return None
        start, end, total = (int(g) for g in found.groups())
        if length not in (-1, total) or end < start:
            return None
        length = total
        parts.append(Part(Span(start, end), offset))
        offset += end - start + 1
    if not parts or offset != len(stored.body):
        return None
    return parts, length


def answer_from_parts(
    stored: StoredResponse, specs: list[Spec], extra: Headers
) -> RangeAnswer | None:
    """A 206 from a stored partial response when every requested range lies wholly inside
    its parts, else ``None`` (the request goes to the origin)."""
    found = parts_of(stored)
    if found is None:
        return None
    parts, length = found
    spans = satisfiable(specs, length)
    if not spans:
        return None  # unsatisfiable: let the origin say so
    pieces: list[tuple[Span, bytes]] = []
    for span in spans:
        part = next(
            (p for p in parts if p.span.start <= span.start and span.end <= p.span.end), None
        )
        if part is None:
            return None
        begin = part.offset + span.start - part.span.start
        pieces.append((span, stored.body[begin : begin + span.end - span.start + 1]))
    headers = [(n, v) for n, v in stored.headers if n != b"content-range"]
    if stored.etag:
        headers.append((b"etag", stored.etag))
    if len(pieces) == 1:
        span, data = pieces[0]
        content = (b"content-range", b"bytes %d-%d/%d" % (span.start, span.end, length))
        return RangeAnswer(206, [*headers, content, *extra], data)
    return _multipart(headers, pieces, length, extra)


def combine(
    old: StoredResponse | None, new: StoredResponse, *, max_bytes: int
) -> StoredResponse | None:
    """The partial response to store after the origin's single-part 206 ``new``: its part
    with the parts of ``old`` when both have the same strong ETag and complete length
    (RFC 9111 section 3.4), else ``new`` alone; a complete ``200`` when the parts cover the
    whole representation; ``None`` if ``new`` does not describe its body."""
    found = parts_of(new)
    if found is None:
        return None
    new_parts, length = found
    pieces = [(new_parts[0].span.start, new.body)]
    previous = parts_of(old) if old is not None and _same_strong_etag(old, new) else None
    if old is not None and previous is not None and previous[1] == length:
        old_pieces = [
            (p.span.start, old.body[p.offset : p.offset + p.span.end - p.span.start + 1])
            for p in previous[0]
        ]
        merged = _union([*old_pieces, *pieces])
        if sum(len(data) for _, data in merged) <= max_bytes:
            pieces = merged
    headers = [(n, v) for n, v in new.headers if n != b"content-range"]
    if len(pieces) == 1 and pieces[0][0] == 0 and len(pieces[0][1]) == length:
        return replace(new, status=200, headers=headers, body=pieces[0][1], plain=None)
    ranges = [
        (b"content-range", b"bytes %d-%d/%d" % (start, start + len(data) - 1, length))
        for start, data in pieces
    ]
    return replace(new, headers=[*headers, *ranges], body=b"".join(d for _, d in pieces))


def _same_strong_etag(a: StoredResponse, b: StoredResponse) -> bool:
    return bool(a.etag) and a.etag == b.etag and not a.etag.startswith(b"W/")


def _union(pieces: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Overlapping or touching pieces joined; where they overlap, a later piece's bytes
    win (the newest response)."""
    result: list[tuple[int, bytes]] = []
    for start, data in pieces:
        begin, buf, end = start, bytes(data), start + len(data)
        kept: list[tuple[int, bytes]] = []
        for s, b in result:
            e = s + len(b)
            if e < begin or s > end:
                kept.append((s, b))
                continue
            lo, hi = min(s, begin), max(e, end)
            out = bytearray(hi - lo)
            out[s - lo : e - lo] = b
            out[begin - lo : begin - lo + len(buf)] = buf
            begin, buf, end = lo, bytes(out), hi
        kept.append((begin, buf))
        result = sorted(kept)
    return result
