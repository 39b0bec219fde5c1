"""Cache-Control parsing and the freshness rules of a shared cache (RFC 9111, RFC 5861).

Pure functions over header values: no I/O, no state, so every rule is unit-testable and the
middleware stays a thin state machine around them.
"""

from __future__ import annotations

from typing import Final

CACHEABLE_BY_DEFAULT: Final = frozenset({200})
"""Statuses an opt-in route stores unless its policy says otherwise: only full successful
responses."""

HEURISTIC_STATUSES: Final = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
"""RFC 9110 section 15.1's heuristically cacheable statuses."""

UNDERSTOOD_STATUSES: Final = frozenset(
    {
        *(200, 201, 202, 203, 204, 205, 206),
        *(300, 301, 302, 303, 305, 307, 308),
        *range(400, 418),
        *(421, 422, 426),
        *range(500, 506),
    }
)
"""The final statuses RFC 9110 section 15 defines, whose semantics this cache knows: what
``cache_all`` mode may store (RFC 9111 section 3; 304 is never stored, it updates a stored
response), and what ``must-understand`` (section 5.2.2.3) accepts."""

_MAX_DELTA: Final = 2**31  # RFC 9111 section 1.2.2: cap delta-seconds at 2^31


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Parse a Cache-Control field into ``{directive: argument or None}``.

    Directive names are case-insensitive (RFC 9111 section 5.2) and lowercased here; quoted
    arguments are unquoted. A directive that appears twice keeps its first value, which is
    the conservative reading for the directives that carry numbers.
    """
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in _split_commas(value):
        name, sep, arg = part.partition("=")
        name = name.strip().lower()
        if not name or name in out:
            continue
        if not sep:
            out[name] = None
            continue
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
            arg = arg[1:-1].replace('\\"', '"')
        out[name] = arg
    return out


def _split_commas(value: str) -> list[str]:
    # Commas inside a quoted argument (no-cache="a, b") do not separate directives.
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p for p in (s.strip() for s in parts) if p]


def delta_seconds(arg: str | None) -> int | None:
    """An RFC 9111 delta-seconds argument, or ``None`` when missing or malformed."""
    if arg is None or not (arg.isascii() and arg.isdigit()):  # "²".isdigit() is True
        return None
    return min(int(arg), _MAX_DELTA)


def field_names(arg: str | None) -> frozenset[bytes]:
    """The field names of a qualified ``no-cache="a, b"`` or ``private="a"`` (RFC 9111
    sections 5.2.2.4 and 5.2.2.7), lowercased; empty for the unqualified form."""
    if not arg:
        return frozenset()
    names = (n.strip().lower() for n in arg.split(","))
    return frozenset(n.encode("latin-1") for n in names if n)


def parse_vary(values: list[str]) -> tuple[str, ...] | None:
    """The lowercased, sorted, deduplicated field names of Vary; ``None`` for ``Vary: *``."""
    names: set[str] = set()
    for value in values:
        for name in value.split(","):
            name = name.strip().lower()
            if name == "*":
                return None
            if name:
                names.add(name)
    return tuple(sorted(names))


def merge_vary(values: list[str]) -> str:
    """One ``Vary`` field value for several: each field name once, whatever its case, in
    first-seen order and spelling (RFC 9110 section 12.5.5: field names are
    case-insensitive, and several Vary fields are one list)."""
    names: dict[str, str] = {}
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name:
                names.setdefault(name.lower(), name)
    return ", ".join(names.values())
