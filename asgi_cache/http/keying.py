"""Canonical request keys and the per-URL Vary memory.

A response key is ``cache.keys.http(digest)``. The digest is two length-prefixed hashes (so
``?a=1&b=2`` and ``?a=1%26b%3D2``, or any other delimiter trick, cannot collide)::

    url digest = H("http1", scheme, host, path, <n query pairs>, name, value, ...)
    key digest = H(url digest, "vary", <n names>, name, value, ...)

The path is the decoded ASGI ``path`` the router matches on. The query is parsed, tracking
parameters dropped, and sorted by name (the relative order of repeated names is kept because
apps may read it). Varied header values go into the hash, never into a key in clear.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from .._exceptions import ConfigurationError
from ..keys import URL_TAG_PREFIX, canonical_digest
from .cookies import COOKIE_KEY_PREFIX, cookie_value
from .vary import normalize

DEFAULT_IGNORED_QUERY_PARAMS: Final = (
    "utm_*",
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "yclid",
    "_ga",
    "_gl",
)
"""Tracking parameters that never change a response, so they do not split the cache."""

_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """Keying options of one middleware."""

    allowed_hosts: tuple[str, ...] | None
    ignored_query_params: tuple[str, ...]
    _ignored_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls, allowed_hosts: Sequence[str] | None, ignored_query_params: Sequence[str]
    ) -> KeyOptions:
        """Validate and build.

        Raises:
            ConfigurationError: An option is not a list of non-empty str.
        """
        for option, value in (
            ("allowed_hosts", allowed_hosts or ()),
            ("ignored_query_params", ignored_query_params),
        ):
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ConfigurationError(
                    f"{option}={value!r} is not allowed: expected a list of non-empty str"
                )
        hosts = None if allowed_hosts is None else tuple(h.lower() for h in allowed_hosts)
        patterns = tuple(ignored_query_params)
        # One compiled alternation instead of a glob match per pattern per parameter.
        regex = re.compile("|".join(fnmatch.translate(p) for p in patterns)) if patterns else None
        return cls(hosts, patterns, regex)

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` (lowercase, port stripped) may be keyed."""
        if self.allowed_hosts is None:
            return True
        return any(
            host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
            for pattern in self.allowed_hosts
        )

    def ignored(self, name: str) -> bool:
        """Whether the query parameter ``name`` is left out of keys."""
        regex = self._ignored_re
        return regex is not None and regex.match(name) is not None


def _query_parts(query: str, options: KeyOptions) -> list[bytes]:
    if not query:
        return [b"0"]
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not options.ignored(k)]
    # Stable sort by name only: ?a=2&a=1 stays distinct from ?a=1&a=2 (apps read lists).
    pairs.sort(key=lambda kv: kv[0])
    parts = [str(len(pairs)).encode()]
    for k, v in pairs:
        parts += (k.encode(), v.encode())
    return parts


class DigestMemo:
    """Digests already computed by one middleware, so a repeated URL is parsed and hashed once.

    Keyed by the raw request parts they were computed from (never by anything that needs
    parsing first); bounded, oldest dropped first. Header values are never remembered.
    """

    __slots__ = ("_items", "get", "max_items")

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._items: dict[tuple[str | bytes, ...], str] = {}
        self.get: Callable[[tuple[str | bytes, ...]], str | None] = self._items.get
        """The digest remembered for a key, if any (the dict's own ``get``: every request
        asks, so no Python call)."""

    def put(self, key: tuple[str | bytes, ...], digest: str) -> None:
        """Remember ``digest`` for ``key``."""
        items = self._items
        if key not in items and len(items) >= self.max_items:
            del items[next(iter(items))]
        items[key] = digest


class RequestKey:
    """The key material of one request: its URL digest and its headers, ready to hash."""

    __slots__ = ("_memo", "headers", "host", "url_digest")

    def __init__(
        self, scope: dict[str, Any], options: KeyOptions, memo: DigestMemo | None = None
    ) -> None:
        raw = scope["headers"]
        if not isinstance(raw, list):
            raw = list(raw)  # any iterable (ASGI); servers send a list
        headers: dict[str, str] = {}
        for raw_name, raw_value in raw:  # (a loop beats a comprehension here on 3.11)
            headers[raw_name.decode("latin-1").lower()] = raw_value.decode("latin-1")
        if len(headers) != len(raw):  # a repeated field: its lines joined, in order
            headers = {}
            for raw_name, raw_value in raw:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]},{value}" if name in headers else value
        self.headers = headers
        scheme = scope.get("scheme", "http")
        host = headers.get("host", "").strip().lower()
        host = host.removesuffix(_DEFAULT_PORTS.get(scheme, "\x00"))
        self.host = host
        path = scope["path"]
        raw_query = scope.get("query_string", b"")
        self._memo = memo
        url_key = ("url", scheme, host, path, raw_query)
        digest = memo.get(url_key) if memo is not None else None
        if digest is None:
            digest = canonical_digest(
                [
                    b"http1",
                    scheme.encode(),
                    host.encode(),
                    path.encode("utf-8", "surrogatepass"),
                    *_query_parts(raw_query.decode("latin-1"), options),
                ]
            )
            if memo is not None:
                memo.put(url_key, digest)
        self.url_digest = digest

    def hostname(self) -> str:
        """The Host without its port (for ``allowed_hosts``)."""
        host = self.host
        if host.startswith("["):
            return host.partition("]")[0] + "]"
        return host.rpartition(":")[0] if ":" in host else host

    def header_value(self, name: str) -> str:
        """The value a varied header (or ``cookie:<name>``, one cookie) contributes to the
        key, normalised as RFC 9111 section 4.1 allows (`vary`)."""
        if name.startswith(COOKIE_KEY_PREFIX):
            return cookie_value(self.headers.get("cookie", ""), name[len(COOKIE_KEY_PREFIX) :])
        return normalize(name, self.headers.get(name, ""))

    def plain_key(self, store_key: Callable[[str], str]) -> str:
        """``store_key`` of the digest of the variant that varies on nothing (the key of most
        URLs), remembered per URL (``store_key``: the one key space of this memo's
        middleware)."""
        memo = self._memo
        if memo is None:
            return store_key(self.digest(()))
        found = memo.get(("full", self.url_digest))
        if found is None:
            found = store_key(self.digest(()))
            memo.put(("full", self.url_digest), found)
        return found

    def digest(self, vary: Iterable[str], exact: Sequence[str] = ()) -> str:
        """The digest of this request's variant for the varied header names ``vary``.

        Built on the URL digest (itself a length-prefixed hash of the URL parts), so the
        URL is hashed once per request however many variants are computed; the variant that
        varies on nothing is remembered per URL. Names in ``exact`` (the headers a route's
        dependencies read) contribute their value exactly as received, not normalized: the
        app compares credentials byte for byte, so must the key.
        """
        names = sorted(set(vary))
        memo = self._memo
        if not names and memo is not None:
            found = memo.get(("plain", self.url_digest))
            if found is not None:
                return found
        parts = [self.url_digest.encode(), b"vary", str(len(names)).encode()]
        for name in names:
            value = self.headers.get(name, "") if name in exact else self.header_value(name)
            parts += (name.encode(), value.encode("latin-1"))
        digest = canonical_digest(parts)
        if not names and memo is not None:
            memo.put(("plain", self.url_digest), digest)
        return digest


def url_tag_for(path: str) -> str:
    """The implicit tag every cached variant of one path depends on.

    Scheme, host and query are left out: invalidating ``/users/1`` (RFC 9111 section 4.4)
    reaches every variant, every query and every host of that path. Invalidating a little
    more than the exact target URI is safe; less would not be. The digest is 64 bits: its
    name is stored in every entry of the path, and a collision could only over-invalidate.
    """
    return URL_TAG_PREFIX + hashlib.blake2b(path.encode(), digest_size=8).hexdigest()


def url_tag(path_or_url: str) -> str:
    """`url_tag_for` of a path (``/users/1?x=1``) or an absolute URL."""
    return url_tag_for(unquote(urlsplit(path_or_url).path) or "/")


class VaryMemory:
    """Remembers, per URL, the header names its responses vary on (and runtime tags).

    An in-process bounded map in front of the backend copy under ``cache.keys.vary(...)``, so
    a steady-state hit costs one round trip. A stale memory can only cause a miss, never a
    wrong hit: the names are part of the hashed key.
    """

    __slots__ = ("_local", "max_items")

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._local: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {}

    def get_local(self, url_digest: str) -> tuple[tuple[str, ...], tuple[str, ...] | None] | None:
        """The remembered (vary names, tags) of a URL in this process, if any.

        Tags are ``None`` when only the names are known (learned from a hit).
        """
        return self._local.get(url_digest)

    def put_local(
        self, url_digest: str, names: tuple[str, ...], tags: tuple[str, ...] | None
    ) -> None:
        """Remember a URL's vary names and runtime tags (``None``: unknown) in this process."""
        local = self._local
        if url_digest not in local and len(local) >= self.max_items:
            del local[next(iter(local))]
        local[url_digest] = (names, tags)

    @staticmethod
    def encode(names: tuple[str, ...], tags: tuple[str, ...]) -> bytes:
        """Bytes stored in the backend."""
        return orjson.dumps([list(names), list(tags)])

    @staticmethod
    def decode(raw: bytes | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Inverse of `encode`; anything malformed is "nothing remembered"."""
        if raw:
            try:
                names, tags = orjson.loads(raw)
                if all(isinstance(n, str) for n in names) and all(isinstance(t, str) for t in tags):
                    return tuple(names), tuple(tags)
            except (orjson.JSONDecodeError, TypeError, ValueError):
                pass
        return (), ()
