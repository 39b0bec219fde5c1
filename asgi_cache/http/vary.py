"""Normalising the request fields a response varies on (RFC 9111 section 4.1).

Two requests select the same stored variant when their selecting fields match after
"adding or removing whitespace where allowed in the field's syntax; combining multiple field
lines with the same field name; normalizing both header field values in a way that is known
to have identical semantics, according to the header field's specification (e.g.,
reordering field values when order is not significant; case-normalization, where values are
defined to be case-insensitive)". So the key hashes a normal form:

- ``Accept-Encoding``: the set of known codings the request accepts (RFC 9110 section
  12.5.3; codings are case-insensitive, ``q=0`` refuses one, ``*`` stands for the others):
  ``gzip, br`` and ``BR;q=0.9 , gzip`` share a variant. This is also what the stored
  gzip representation is chosen by (`encoding`).
- ``Accept``, ``Accept-Charset``, ``Accept-Language`` (sections 12.5.1, 12.5.2, 12.5.4):
  each member lowercased where the grammar is case-insensitive (media types and parameter
  names, charsets, language ranges; parameter *values* of ``Accept`` keep their case),
  whitespace removed, weights written canonically (``q=1``, ``q=0.50`` and no ``q`` at all
  are one weight), then members ordered by weight, highest first, keeping the request's
  order among equal weights (order only ranks members of the same weight).
- any other field: surrounding whitespace trimmed; the value otherwise as received (its
  syntax is unknown, so nothing else is known to be equivalent).

Varnish and Traffic Server compare the raw values (Varnish normalises only
``Accept-Encoding`` by default, in ``vcl_recv``); Squid and nginx likewise. Normalising
more shares variants that are the same by the RFC's rule, which is what it allows.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

KNOWN_CODINGS: Final = frozenset({"zstd", "br", "gzip", "deflate"})
_WEIGHTED: Final = frozenset({"accept", "accept-charset", "accept-language"})


def normalize(name: str, value: str) -> str:
    """The normal form of a selecting field's value (``name`` lowercase)."""
    if name == "accept-encoding":
        return normalize_accept_encoding(value)
    if name in _WEIGHTED:
        return _normalize_weighted(value, keep_param_case=name == "accept")
    return value.strip(" \t")


@lru_cache(maxsize=512)
def normalize_accept_encoding(value: str) -> str:
    """The known codings an ``Accept-Encoding`` value accepts, sorted and comma-joined."""
    codings: set[str] = set()
    for item in value.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        q = params.strip().lower().replace(" ", "")
        if q.startswith("q="):
            weight = _weight(q[2:])
            if weight is None or weight <= 0:
                continue
        if coding == "*":
            codings |= KNOWN_CODINGS
        elif coding in KNOWN_CODINGS:
            codings.add(coding)
    return ",".join(sorted(codings))


@lru_cache(maxsize=512)
def _normalize_weighted(value: str, *, keep_param_case: bool) -> str:
    members: list[tuple[float, str]] = []
    for item in value.split(","):
        parts = [p.strip(" \t") for p in item.split(";")]
        token = parts[0].lower()
        if not token:
            continue  # empty list elements do not count (RFC 9110 section 5.6.1)
        weight = 1.0
        params: list[str] = []
        for param in parts[1:]:
            key, sep, arg = param.partition("=")
            key = key.strip(" \t").lower()
            arg = arg.strip(" \t")
            if key == "q":
                found = _weight(arg)
                if found is None:
                    return value.strip(" \t")  # not the field's syntax: keep it as it is
                weight = found
            elif key:
                params.append(f"{key}{sep}{arg if keep_param_case else arg.lower()}")
        members.append((weight, ";".join([token, *params])))
    # Stable: members of equal weight keep the request's order.
    members.sort(key=lambda member: -member[0])
    return ",".join(f"{m};q={w:g}" if w != 1.0 else m for w, m in members)


def _weight(text: str) -> float | None:
    # RFC 9110 section 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    if not text or len(text) > 5:
        return None
    try:
        weight = float(text)
    except ValueError:
        return None
    if not 0.0 <= weight <= 1.0 or text[0] not in "01":
        return None
    return weight
