"""Settings: [`CacheSettings`][asgi_cache.CacheSettings] and its parsing from ``ASGI_CACHE_*``
variables.

Every setting has one field here and one environment variable. Durations are seconds as
decimals (``0.25``), booleans accept ``1/0``, ``true/false``, ``yes/no``, ``on/off``. A bad
value raises [`ConfigurationError`][asgi_cache.ConfigurationError] naming the variable (or field),
the value and what is allowed, so a misconfigured app fails at startup and not on the first request.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ._exceptions import ConfigurationError
from ._urls import SCHEMES, parse_url
from ._validate import FLAG, Check, number, one_of, problem, seconds, whole

logger = logging.getLogger("asgi_cache")

ENV_PREFIX = "ASGI_CACHE_"
URL_SCHEMES = tuple(SCHEMES)
"""Every scheme a backend serves: all those the URL parser knows."""
SERIALIZERS = ("json", "msgpack")
L1_INVALIDATIONS = ("pubsub", "tracking")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.\-]+(?::[A-Za-z0-9_.\-]+)*$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Variables read by the test suite or tools, not by CacheSettings; not warned about.
_OTHER_KNOWN = frozenset({"ASGI_CACHE_REQUIRE_REDIS"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSettings:
    """Everything a [`Cache`][asgi_cache.Cache] can be configured with.

    All fields are keyword-only and validated on construction. Build one directly, with
    [`from_env`][asgi_cache.CacheSettings.from_env], or let
    [`Cache.from_url`][asgi_cache.Cache.from_url] build it.
    """

    url: str = "memory://"
    """Backend: ``memory://``, ``redis://host:port/db``, ``rediss://...``, ``unix:///path``,
    ``redis+cluster://h1:p1,h2:p2/`` or ``redis+sentinel://s1:26379,s2:26379/<service>/<db>``
    (``rediss+`` with TLS); see docs/configuration.md."""
    namespace: str = "cache"
    """Prefix of every key this cache writes (``<namespace>:...``)."""
    default_ttl: float = 60.0
    """Freshness lifetime in seconds when a call gives ``ttl=None``; never "forever"."""
    enabled: bool = True
    """When false, every lookup is a miss and nothing is stored; loaders run directly."""
    max_body_bytes: int = 1024 * 1024
    """Largest response body the middleware stores; larger bodies stream through uncached."""
    serializer: Literal["json", "msgpack"] = "json"
    """Value codec: ``json`` (orjson) or ``msgpack`` (needs the ``msgpack`` extra)."""
    ttl_jitter: float = 0.1
    """Random spread of TTLs as a fraction (0.1 = plus or minus 10 percent); 0 disables it."""
    lock_timeout: float = 5.0
    """How long a caller waits for another process's load before serving stale or loading."""
    lock_lease: float = 10.0
    """Initial expiry of a distributed lock; a watchdog extends it while the loader runs."""
    op_timeout: float = 0.25
    """Time budget of one backend operation; a slower one is treated as a failure."""
    invalidation_timeout: float = 1.0
    """Time budget of the invalidation an unsafe request (POST/PUT/PATCH/DELETE, and
    ``@cache.invalidates``) makes before its response starts: longer than ``op_timeout``,
    and tried even while the circuit breaker is open, so that a slow Redis or a starved
    event loop does not leave the other workers serving what the write replaced. Only when
    it runs out is the invalidation queued for retry."""
    connect_timeout: float = 0.5
    """Time budget for opening a connection to Redis."""
    max_connections: int = 64
    """Size of the Redis connection pool."""
    pool_timeout: float = 0.05
    """Longest wait for a free pooled connection before the operation fails open."""
    batch_reads: bool = True
    """Send the Redis reads that concurrent requests of one process start together as one
    pipeline (one round trip) instead of one command each."""
    negative_ttl: float = 10.0
    """Lifetime of the negative entry stored when a loader returns ``None``."""
    memory_max_entries: int = 10_000
    """Entry bound of the ``memory://`` backend (least recently used are evicted)."""
    memory_max_bytes: int = 64 * 1024 * 1024
    """Byte bound of the ``memory://`` backend (least recently used are evicted)."""
    breaker_threshold: int = 5
    """Consecutive Redis failures that open the circuit breaker (Redis is then skipped without
    I/O until a probe answers); 0 turns the breaker off."""
    breaker_cooldown: float = 2.0
    """Seconds between the background probes (one ``PING`` each) while the breaker is open."""
    l1_ttl: float = 0.0
    """Longest time a hot entry is served from this process's memory (the L1 near-cache)
    without asking Redis; 0 turns the L1 off. Another process may serve an entry for up to
    this long after an invalidation whose pub/sub message was lost. Ignored for ``memory://``."""
    l1_max_entries: int = 1000
    """Entry bound of the L1 near-cache (least recently used are evicted, if the newcomer
    was read more often)."""
    l1_max_bytes: int = 32 * 1024 * 1024
    """Byte bound of the L1 near-cache (keys, bodies and metadata, estimated)."""
    l1_invalidation: Literal["pubsub", "tracking"] = "pubsub"
    """How the L1 near-cache hears invalidations from other processes: ``pubsub`` (the
    cache's own messages) or ``tracking`` (Redis >= 6.0 ``CLIENT TRACKING``: writes by any
    client, expiry and eviction too; falls back to ``pubsub`` with a warning where Redis
    refuses it). See docs/near-cache.md."""

    def __post_init__(self) -> None:
        _check_url(self.url, "CacheSettings.url")
        for f in dataclasses.fields(self):
            _CHECKS[f.name].require(f"CacheSettings.{f.name}", getattr(self, f.name))

    @property
    def backend_scheme(self) -> str:
        """The scheme of [`url`][asgi_cache.CacheSettings.url] (``memory``, ``redis``, ``rediss``,
        ``unix``, ``redis+cluster``, ``redis+sentinel`` or their ``rediss+`` forms)."""
        return urlsplit(self.url).scheme

    def replace(self, **changes: Any) -> CacheSettings:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> CacheSettings:
        """Build settings from ``ASGI_CACHE_*`` variables.

        Args:
            environ: The mapping to read; ``os.environ`` when omitted.
            overrides: Field values that take precedence over the environment.

        Raises:
            ConfigurationError: A variable has a value that is not allowed; the message names
                the variable, the value and what is allowed.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, parse in _ENV_PARSERS.items():
            var = ENV_PREFIX + name.upper()
            raw = env.get(var)
            if raw is None or name in overrides:
                continue
            if name == "url":
                _check_url(raw.strip(), var)
            check = _CHECKS[name]
            try:
                value = parse(raw.strip())
            except ValueError:
                value = _INVALID
            if value is _INVALID or not check.ok(value):
                # The message quotes what was written, not what it parsed to.
                raise ConfigurationError(problem(var, raw, check.expected))
            values[name] = value
        unknown = sorted(
            k
            for k in env
            if k.startswith(ENV_PREFIX)
            and k[len(ENV_PREFIX) :].lower() not in _ENV_PARSERS
            and k not in _OTHER_KNOWN
        )
        if unknown:
            logger.warning("asgi-cache: ignoring unknown variables %s", ", ".join(unknown))
        values.update(overrides)
        return cls(**values)


_INVALID: Any = object()


def _boolean(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(raw)


def _integer(raw: str) -> int:
    return int(raw.replace("_", ""))


def _check_url(value: object, name: str) -> None:
    """Raise the URL parser's precise error (the part that is wrong, and what is allowed)."""
    parse_url(value, name=name)


_DURATION = seconds(words="a duration in seconds", note="decimals allowed, e.g. 0.25")
_BOOLEAN = Check(FLAG.test, "a boolean: 1/0, true/false, yes/no, on/off")
_COUNT = whole()
_BYTES = whole(words="a whole number of bytes")
_CHECKS: dict[str, Check] = {
    # The URL's own checks run first (_check_url) and name the part that is wrong.
    "url": Check(lambda v: isinstance(v, str), "a URL"),
    "namespace": Check(
        lambda v: isinstance(v, str) and len(v) <= 64 and bool(_NAMESPACE_RE.match(v)),
        "1-64 characters from letters, digits, '_', '.', '-', with ':' between segments",
    ),
    "default_ttl": _DURATION,
    "enabled": _BOOLEAN,
    "max_body_bytes": _BYTES,
    "serializer": one_of(SERIALIZERS, "one of: json, msgpack"),
    "ttl_jitter": number(
        minimum=0, below=1, words="a fraction >= 0 and < 1 (0.1 = plus or minus 10 percent)"
    ),
    "lock_timeout": _DURATION,
    "lock_lease": _DURATION,
    "op_timeout": _DURATION,
    "invalidation_timeout": _DURATION,
    "connect_timeout": _DURATION,
    "max_connections": _COUNT,
    "pool_timeout": seconds(zero=True, words="a duration in seconds", note="decimals allowed"),
    "batch_reads": _BOOLEAN,
    "negative_ttl": _DURATION,
    "memory_max_entries": _COUNT,
    "memory_max_bytes": _BYTES,
    "breaker_threshold": Check(
        whole(minimum=0).test, "a whole number >= 0 (0 turns the breaker off)"
    ),
    "breaker_cooldown": _DURATION,
    "l1_ttl": seconds(
        zero=True, words="a duration in seconds", note="0 turns the L1 near-cache off"
    ),
    "l1_max_entries": _COUNT,
    "l1_max_bytes": _BYTES,
    "l1_invalidation": one_of(L1_INVALIDATIONS, "one of: pubsub, tracking"),
}

_PARSERS: dict[str, Callable[[str], Any]] = {
    "url": str,
    "namespace": str,
    "serializer": str.lower,
    "l1_invalidation": str.lower,
    "enabled": _boolean,
    "batch_reads": _boolean,
    "max_body_bytes": _integer,
    "max_connections": _integer,
    "memory_max_entries": _integer,
    "memory_max_bytes": _integer,
    "breaker_threshold": _integer,
    "l1_max_entries": _integer,
    "l1_max_bytes": _integer,
}
_ENV_PARSERS: dict[str, Callable[[str], Any]] = {
    name: _PARSERS.get(name, float) for name in _CHECKS
}
