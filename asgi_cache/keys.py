"""Key layout: every Redis key this library writes, in one place.

All keys start with ``<namespace>:`` followed by a one-letter key space, so entries, tags,
locks and bookkeeping can never collide and operators can find them with ``redis-cli``::

    <ns>:d:<key>         data entries; the caller's key verbatim (users:100:profile)
    <ns>:h:<hex digest>  HTTP response entries (hash of the canonical request parts)
    <ns>:v:<hex digest>  HTTP Vary memory of a URL (the header names its responses vary on)
    <ns>:p:<hex digest>  HTTP "not storable" marker of a response key (hit-for-pass)
    <ns>:t:<tag>         tag version (a random token; missing means "invalidated")
    <ns>:l:<key>         distributed lock of a data or HTTP key
    <ns>:n:<key>         notification channel/list that wakes waiters of a lock
    <ns>:i:[<key>]       pub/sub channel emptying every L1 near-cache (or dropping one key)

The caller's key convention is ``<entity>:<id>:<attribute>`` (``users:100:profile``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ._exceptions import ConfigurationError

ALL_TAG = "*"
"""The implicit tag every entry of a namespace depends on; invalidating it clears them all."""

_MAX_KEY_LEN = 1024


def validate_key(key: str) -> str:
    """Check a caller's data key and return it.

    Raises:
        ConfigurationError: The key is not a non-empty ``str`` of at most 1024 characters
            without whitespace control characters.
    """
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_LEN:
        raise ConfigurationError(
            f"cache key {key!r} is not allowed: expected a non-empty str of at most "
            f"{_MAX_KEY_LEN} characters, such as 'users:42:profile'"
        )
    if any(c in key for c in "\r\n\x00"):
        raise ConfigurationError(
            f"cache key {key!r} is not allowed: it must not contain CR, LF or NUL"
        )
    return key


def validate_tag(tag: str) -> str:
    """Check a tag name and return it (same rules as keys; ``*`` is reserved)."""
    if tag == ALL_TAG:
        raise ConfigurationError(
            "tag '*' is reserved for the whole namespace: to invalidate every entry, use "
            "cache.clear() (or the command asgi-cache clear)"
        )
    try:
        return validate_key(tag)
    except ConfigurationError:
        raise ConfigurationError(
            f"tag {tag!r} is not allowed: expected a non-empty str of at most {_MAX_KEY_LEN} "
            "characters without CR, LF or NUL, such as 'users:42'"
        ) from None


def canonical_digest(parts: Iterable[bytes]) -> str:
    """Hash a sequence of byte strings so that no two different sequences collide.

    Each part is length-prefixed before hashing, so no choice of delimiters inside the parts
    (``?``, ``&``, ``:`` or NUL) can make two different sequences encode the same way.
    """
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


class KeySpace:
    """Builds the full Redis keys of one namespace."""

    __slots__ = ("all_tag", "namespace", "prefix")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = namespace + ":"
        self.all_tag = self.tag(ALL_TAG)

    def data(self, key: str) -> str:
        """Key of a data entry."""
        return f"{self.prefix}d:{key}"

    def http(self, digest: str) -> str:
        """Key of an HTTP response entry."""
        return f"{self.prefix}h:{digest}"

    def http_pass(self, full_key: str) -> str:
        """Key of the "not storable" marker of the HTTP response key ``full_key``."""
        return f"{self.prefix}p:{full_key[len(self.prefix) + 2 :]}"

    def vary(self, digest: str) -> str:
        """Key of the Vary memory of a URL."""
        return f"{self.prefix}v:{digest}"

    def tag(self, tag: str) -> str:
        """Key of a tag's version."""
        return f"{self.prefix}t:{tag}"

    def lock(self, key: str) -> str:
        """Key of the lock guarding the full key ``key``."""
        return f"{self.prefix}l:{key}"

    def notify(self, key: str) -> str:
        """Key (or channel) that wakes the waiters of ``key``'s lock."""
        return f"{self.prefix}n:{key}"

    def l1_channel(self, full_key: str = "") -> str:
        """Channel that drops ``full_key`` from every process's L1 (all of it if empty)."""
        return f"{self.prefix}i:{full_key}"

    def user_key(self, full_key: str) -> str:
        """The caller's key inside a full data key (inverse of :meth:`data`)."""
        return full_key[len(self.prefix) + 2 :]
