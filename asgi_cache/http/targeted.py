"""Targeted cache control (RFC 9213): ``CDN-Cache-Control`` and fields like it.

A targeted field carries cache directives for one class of caches. This cache has a
*target list* (the middleware's ``targeted_cache_control=``, ``("CDN-Cache-Control",)`` by
default in ``cache_all`` mode): for each response, the first field of the list that is
present, valid and non-empty is used *instead of* ``Cache-Control`` and ``Expires``
(section 2.2); when none is, the response's ``Cache-Control`` and ``Expires`` apply as
usual. Fields on the list are not forwarded to clients (the middleware strips them), so a
directive meant for this cache does not reach browsers or another cache downstream.

Syntax (section 2.1): a targeted field is a Structured Field Dictionary (RFC 8941 section
3.2). A member with no value is ``True``; ``max-age=60`` is an Integer; ``private="a, b"``
and ``no-cache="x"`` carry a String (the field names). Parameters are ignored. A field that
does not parse as a Dictionary is invalid and ignored as a whole; a member whose value
violates the directive's own constraints (``max-age=1.5``, ``max-age=-1``, ``max-age="60"``)
is not consumed (section 2.1: implementations SHOULD NOT coerce such values).

The result is the same ``{directive: argument or None}`` mapping
`parse_cache_control` returns, so every rule downstream reads one shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from .._exceptions import ConfigurationError
from .._validate import problem

_FIELD_NAME: Final = re.compile(
    r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+-cache-control", re.IGNORECASE | re.ASCII
)
_KEY: Final = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_INTEGER: Final = re.compile(r"-?\d{1,15}", re.ASCII)
_DECIMAL: Final = re.compile(r"-?\d{1,12}\.\d{1,3}", re.ASCII)
_TOKEN: Final = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_BYTES: Final = re.compile(r":[A-Za-z0-9+/=]*:")
_NUMERIC_DIRECTIVES: Final = frozenset(
    {"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"}
)

Item = bool | int | str | None
"""A bare item as this module keeps it (``None``: a value it does not consume)."""


class _Invalid(Exception):
    """The field is not a valid Structured Field Dictionary."""


class _Parser:
    """RFC 8941 section 4.2 parsing of a Dictionary, keeping what cache directives use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def dictionary(self) -> dict[str, Item]:
        out: dict[str, Item] = {}
        self._ows(" ")
        if self.pos == len(self.text):
            return out
        while True:
            key = self._key()
            value: Item = True
            if self._peek("="):
                self.pos += 1
                value = self._member_value()
            else:
                self._parameters()
            out[key] = value  # section 4.2.2: a later member of the same name overwrites
            self._ows(" \t")
            if self.pos == len(self.text):
                return out
            if not self._peek(","):
                raise _Invalid
            self.pos += 1
            self._ows(" \t")
            if self.pos == len(self.text):
                raise _Invalid  # a trailing comma

    def _member_value(self) -> Item:
        if self._peek("("):
            self._inner_list()
            return None  # no cache directive takes a list
        item = self._bare_item()
        self._parameters()
        return item

    def _inner_list(self) -> None:
        self.pos += 1
        while True:
            self._ows(" ")
            if self._peek(")"):
                self.pos += 1
                self._parameters()
                return
            self._bare_item()
            self._parameters()
            if not (self._peek(" ") or self._peek(")")):
                raise _Invalid

    def _parameters(self) -> None:
        while self._peek(";"):
            self.pos += 1
            self._ows(" ")
            self._key()
            if self._peek("="):
                self.pos += 1
                self._bare_item()

    def _bare_item(self) -> Item:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise _Invalid
        ch = text[pos]
        if ch == '"':
            return self._string()
        if ch == "?":
            if text[pos + 1 : pos + 2] in ("0", "1"):
                self.pos += 2
                return text[pos + 1] == "1"
            raise _Invalid
        if ch == ":":
            self._match(_BYTES)
            return None  # a Byte Sequence: no cache directive takes one
        if ch == "-" or "0" <= ch <= "9":
            decimal = _DECIMAL.match(text, pos)
            if decimal and not _follows_digit(text, decimal.end()):
                self.pos = decimal.end()
                return None  # a Decimal: no cache directive takes one
            return int(self._match(_INTEGER))
        return self._match(_TOKEN)

    def _string(self) -> str:
        out: list[str] = []
        self.pos += 1
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            self.pos += 1
            if ch == "\\":
                if self.pos >= len(text) or text[self.pos] not in '"\\':
                    raise _Invalid
                out.append(text[self.pos])
                self.pos += 1
            elif ch == '"':
                return "".join(out)
            elif not " " <= ch <= "~":
                raise _Invalid
            else:
                out.append(ch)
        raise _Invalid  # unterminated

    def _key(self) -> str:
        return self._match(_KEY)

    def _match(self, pattern: re.Pattern[str]) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise _Invalid
        self.pos = found.end()
        if pattern is _INTEGER and _follows_digit(self.text, self.pos):
            raise _Invalid  # more than 15 digits
        return found.group()

    def _peek(self, ch: str) -> bool:
        return self.text.startswith(ch, self.pos)

    def _ows(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1


def _follows_digit(text: str, pos: int) -> bool:
    return pos < len(text) and text[pos].isdigit()


def parse_targeted(lines: Sequence[str]) -> dict[str, str | None] | None:
    """The directives of one targeted field (its lines joined), or ``None`` if it is
    invalid or empty (then the next field of the target list, or ``Cache-Control``, is
    used: RFC 9213 section 2.2).
    """
    text = ",".join(lines).strip(" ")
    if not text:
        return None
    try:
        members = _Parser(text).dictionary()
    except (_Invalid, ValueError):
        return None
    if not members:
        return None
    out: dict[str, str | None] = {}
    for name, value in members.items():
        if value is True:
            out[name] = None
        elif name in _NUMERIC_DIRECTIVES:
            # Only a non-negative Integer is a delta-seconds (section 2.1): anything else is
            # not consumed, so the directive counts as absent... except that its presence
            # still marks the response, which the conservative reading keeps as stale.
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                out[name] = str(value)
            else:
                out[name] = "invalid"
        elif isinstance(value, str):
            out[name] = value
        # False, lists, decimals and byte sequences are not consumed.
    return out


def select_targeted(
    targeted: Sequence[bytes], fields: dict[bytes, list[str]]
) -> dict[str, str | None] | None:
    """The directives of the first field of the target list that is present, valid and
    non-empty (RFC 9213 section 2.2), or ``None`` when the response has none."""
    for name in targeted:
        lines = fields.get(name)
        if lines:
            found = parse_targeted(lines)
            if found is not None:
                return found
    return None


def target_list(value: object, option: str = "targeted_cache_control") -> tuple[bytes, ...]:
    """Validate the middleware's target list: field names ending in ``-Cache-Control``
    (RFC 9213 section 2: the naming convention of targeted fields), most specific first.

    Raises:
        ConfigurationError: ``value`` is not a list of such names.
    """
    expected = 'a list of field names ending in "-Cache-Control", such as ("CDN-Cache-Control",)'
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigurationError(problem(option, value, expected))
    names: list[bytes] = []
    for name in value:
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise ConfigurationError(problem(option, value, expected))
        names.append(name.lower().encode("ascii"))
    return tuple(dict.fromkeys(names))
