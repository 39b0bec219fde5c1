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
    <ns>:w:{<name>}:s    write-behind stream of ``<name>`` (``:dead`` its dead letter, ``:v``
                         the per-key versions; one hash tag, so one Cluster slot)

The caller's key convention is ``<entity>:<id>:<attribute>`` (``users:100:profile``).

On Redis Cluster (``KeySpace(..., hash_tags=True)``) the entry keys wrap what follows their
key space in a hash tag, ``<ns>:d:{users:100:profile}`` and ``<ns>:h:{<hex digest>}``: Redis
Cluster then places a key by the text between the braces only, and every key derived from an
entry's full key (its lock ``<ns>:l:<ns>:d:{...}``, wake-up channel, hit-for-pass marker
``<ns>:p:{...}``, L1 channel) embeds that same hash tag, so it lives in the entry's slot and
one script can touch the entry and its lock. Tag keys stay untagged: each tag is its own slot,
so tags spread over the masters. A caller's key that begins with ``}`` gives an empty hash
tag (Redis then hashes the whole key): such an entry and its lock land in different slots,
and its fenced stores (``lock=True``) fail open on Cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ._exceptions import ConfigurationError

ALL_TAG = "*"
"""The implicit tag every entry of a namespace depends on; invalidating it clears them all."""

URL_TAG_PREFIX = "~url:"
"""How the implicit tag of one URL path begins (RFC 9111 section 4.4 URI invalidation; the
middleware makes them, metrics count their invalidations apart)."""

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

    __slots__ = ("_close", "_open", "all_tag", "hash_tags", "namespace", "prefix")

    def __init__(self, namespace: str, *, hash_tags: bool = False) -> None:
        self.namespace = namespace
        self.prefix = namespace + ":"
        self.all_tag = self.tag(ALL_TAG)
        self.hash_tags = hash_tags
        """Whether entry keys carry a hash tag (Redis Cluster), see the module docs."""
        self._open, self._close = ("{", "}") if hash_tags else ("", "")

    def data(self, key: str) -> str:
        """Key of a data entry."""
        return f"{self.prefix}d:{self._open}{key}{self._close}"

    def data_prefix(self, prefix: str) -> str:
        """The start shared by the full keys of every data entry whose key starts with
        ``prefix`` (for ``invalidate_prefix``)."""
        return f"{self.prefix}d:{self._open}{prefix}"

    def http(self, digest: str) -> str:
        """Key of an HTTP response entry."""
        return f"{self.prefix}h:{self._open}{digest}{self._close}"

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

    def tracked_prefixes(self) -> tuple[str, str, str]:
        """The prefixes of the entry keys (data, HTTP) and tag-version keys: what an L1 in
        tracking mode asks Redis to report changes of (not locks, wake-ups, markers,
        write-behind streams)."""
        return f"{self.prefix}d:", f"{self.prefix}h:", self.tag("")

    def write_behind(self, name: str) -> str:
        """Prefix of the write-behind keys of ``name``; ``{name}`` is their Cluster hash tag."""
        return f"{self.prefix}w:{{{name}}}"

    def user_key(self, full_key: str) -> str:
        """The caller's key inside a full data key (inverse of `data`)."""
        return full_key[len(self.prefix) + 2 + len(self._open) : len(full_key) - len(self._close)]
