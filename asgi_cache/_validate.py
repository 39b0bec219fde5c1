"""One set of checks for every option the library takes, and one way of saying what is wrong.

Each `Check` pairs a test with the words saying what it allows, so the settings, the
decorators, the middleware, the breaker and the command line all reject a value the same
way, with the same message grammar::

    <name>=<value!r> is not allowed: expected <what is allowed>

``<name>`` is what the caller wrote: an argument (``ttl``), a settings field
(``CacheSettings.default_ttl``) or an environment variable (``ASGI_CACHE_DEFAULT_TTL``).

Durations are finite seconds, never NaN or infinity, and at most `MAX_SECONDS`: an
infinite TTL would mean "forever", which a cache must never promise, and Redis refuses an
expiry past its millisecond range instead of storing the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ._exceptions import ConfigurationError

T = TypeVar("T")

MAX_SECONDS: Final = 10 * 365 * 24 * 3600
"""The longest duration any option takes: ten years, far beyond a useful cache lifetime."""


@dataclass(frozen=True, slots=True)
class Check:
    """A rule a value must follow, and the words saying what the rule allows."""

    test: Callable[[Any], bool]
    """Whether a value follows the rule."""
    expected: str
    """What is allowed, as it reads after ``expected`` in an error message."""

    def ok(self, value: object) -> bool:
        """Whether ``value`` follows the rule."""
        return self.test(value)

    def require(self, name: str, value: T) -> T:
        """Return ``value`` if it follows the rule.

        Raises:
            ConfigurationError: It does not; the message names ``name``, the value and what
                is allowed.
        """
        if not self.test(value):
            raise ConfigurationError(problem(name, value, self.expected))
        return value

    def or_none(self) -> Check:
        """The same rule, also allowing ``None`` (an option left to its default)."""
        test = self.test
        return Check(lambda v: v is None or test(v), f"{self.expected} or None")


def problem(name: str, value: object, expected: str) -> str:
    """The message for a value that is not allowed (the grammar every check uses)."""
    return f"{name}={value!r} is not allowed: expected {expected}"


def is_real(value: object) -> bool:
    """An ``int`` or ``float`` (never a ``bool``) that is finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value: object) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def seconds(*, zero: bool = False, words: str = "seconds", note: str = "") -> Check:
    """A finite duration in seconds, above 0 (or from 0 with ``zero``), up to ten years.

    ``note`` adds a remark to the words (``"0 turns it off"``).
    """
    bound = ">= 0" if zero else "> 0"
    remarks = "; ".join(r for r in (note, "at most 10 years") if r)

    def test(value: object) -> bool:
        return (
            is_real(value)
            and (value >= 0 if zero else value > 0)  # type: ignore[operator]
            and value <= MAX_SECONDS  # type: ignore[operator]
        )

    return Check(test, f"{words} {bound} ({remarks})")


def whole(*, minimum: int = 1, words: str = "a whole number") -> Check:
    """A whole number of at least ``minimum``."""
    bound = f"> {minimum - 1}" if minimum == 1 else f">= {minimum}"
    return Check(lambda v: is_whole(v) and v >= minimum, f"{words} {bound}")


def number(*, minimum: float, below: float | None = None, words: str) -> Check:
    """A finite number from ``minimum`` on, and under ``below`` when given."""
    return Check(
        lambda v: is_real(v) and v >= minimum and (below is None or v < below),
        words,
    )


def one_of(choices: Collection[object], words: str) -> Check:
    """One of ``choices``."""
    return Check(lambda v: v in choices, words)


TTL: Final = seconds().or_none()
"""A freshness lifetime: seconds > 0, or ``None`` for the cache's default TTL."""

TAG_LIST: Final = Check(lambda v: not isinstance(v, str), "a list of tag names")
"""Tags of an entry: any collection but a lone ``str``, which would be read letter by letter
(each tag name is checked where it is used)."""

FLAG: Final = Check(lambda v: isinstance(v, bool), "a bool")
"""``True`` or ``False``; ``1``, ``"yes"`` and other truthy values are refused."""

ASCII_TEXT: Final = Check(
    lambda v: isinstance(v, str) and bool(v.strip()) and v.isascii(), "ASCII text"
)
"""A non-blank ``str`` of ASCII characters (header names and values)."""
