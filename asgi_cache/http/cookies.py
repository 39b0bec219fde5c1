"""Which request cookies count: ``ignored_cookies=`` and ``vary_cookies=``.

A request with a ``Cookie`` header is private by default (a shared cache must not answer one
user's session with another's page), so a browser-facing site whose every visitor carries
analytics or consent cookies would get no hits at all. Two options, per middleware and per
route policy (the two lists add up), say which cookies do not make a request private:

- ``ignored_cookies``: names or glob patterns (``_ga*``, ``_gcl_*``, ``consent``) of cookies
  the responses never depend on: they are left out of every decision;
- ``vary_cookies``: names of cookies the response does depend on (``lang``, ``currency``):
  their values become part of the key, hashed like the values of ``vary=`` headers, so each
  value gets its own entry (and responses say ``Vary: Cookie`` to caches downstream).

Any other cookie still makes the request private (``Cache-Status: ...; detail=cookie``).
Cookie names are case-sensitive (RFC 6265 section 4.1.1); the header is parsed leniently,
as browsers send it (``name=value`` pairs separated by ``;``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from .._exceptions import ConfigurationError

COOKIE_KEY_PREFIX: Final = "cookie:"
"""Key names ``cookie:<name>`` stand for the value of one cookie (``vary_cookies``)."""
_NOT_IN_NAMES: Final = frozenset(' \t;,="\\')
_ABSENT: Final = "\x00"
"""What a varied cookie that the request does not carry contributes to the key (no
value can be it: a header value never holds NUL)."""


def parse_cookies(header: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a ``Cookie`` header, in order (lenient)."""
    pairs: list[tuple[str, str]] = []
    for part in header.split(";"):
        name, _, value = part.partition("=")
        name = name.strip()
        if name:
            pairs.append((name, value.strip()))
    return pairs


def _names(value: object, option: str, *, patterns: bool) -> tuple[str, ...]:
    what = "cookie names or glob patterns such as '_ga*'" if patterns else "cookie names"
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{option}={value!r} is not allowed: expected a list of {what}")
    names = tuple(value)
    for name in names:
        if (
            not isinstance(name, str)
            or not name
            or not name.isascii()
            or not name.isprintable()
            or any(c in _NOT_IN_NAMES for c in name)
            or (not patterns and any(c in "*?[]" for c in name))
        ):
            raise ConfigurationError(
                f"{option} entry {name!r} is not allowed: expected {what} (printable ASCII "
                "without spaces, ';', ',', '=' or quotes)"
            )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class CookieRules:
    """Which cookies are ignored and which are keyed (see the module docstring)."""

    ignored: tuple[str, ...] = ()
    """Names or glob patterns of cookies that never count."""
    vary: tuple[str, ...] = ()
    """Names of cookies whose values are part of the key."""
    _ignored_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls, ignored: Iterable[str] = (), vary: Iterable[str] = (), *, where: str = ""
    ) -> CookieRules:
        """Validate the two lists and build the rules (``where``: prefix of the option
        names in error messages, such as ``"cache.response "``).

        Raises:
            ConfigurationError: A list is not a list of cookie names (or patterns).
        """
        ignored_names = _names(ignored, f"{where}ignored_cookies", patterns=True)
        vary_names = tuple(sorted(_names(vary, f"{where}vary_cookies", patterns=False)))
        return cls._compiled(ignored_names, vary_names)

    @classmethod
    def _compiled(cls, ignored: tuple[str, ...], vary: tuple[str, ...]) -> CookieRules:
        regex = re.compile("|".join(fnmatch.translate(p) for p in ignored)) if ignored else None
        return cls(ignored, vary, regex)

    def __bool__(self) -> bool:
        return bool(self.ignored or self.vary)

    def merged(self, other: CookieRules) -> CookieRules:
        """These rules and ``other``'s together (a middleware's and a route's)."""
        if not other:
            return self
        if not self:
            return other
        ignored = tuple(dict.fromkeys((*self.ignored, *other.ignored)))
        return self._compiled(ignored, tuple(sorted({*self.vary, *other.vary})))

    def key_names(self) -> tuple[str, ...]:
        """The key names standing for the varied cookies' values (``cookie:<name>``)."""
        return tuple(COOKIE_KEY_PREFIX + name for name in self.vary)

    def ignores(self, name: str) -> bool:
        """Whether the cookie ``name`` never counts."""
        regex = self._ignored_re
        return regex is not None and regex.fullmatch(name) is not None

    def private(self, header: str) -> bool:
        """Whether a ``Cookie`` header holds a cookie that makes the request private: one
        neither ignored nor keyed."""
        if not self:
            return bool(parse_cookies(header))
        vary = self.vary
        return any(name not in vary and not self.ignores(name) for name, _ in parse_cookies(header))


def cookie_value(header: str, name: str) -> str:
    """What the cookie ``name`` contributes to a key: its first value in the header, or a
    value no cookie can have when it is absent (absent and empty are different requests)."""
    for cookie, value in parse_cookies(header):
        if cookie == name:
            return value
    return _ABSENT
