"""The options of one cache-aside read: one typed carrier for ``get_or_load`` and ``aside``.

``cache.get_or_load(...)`` resolves its keyword options into a `LoadOptions` on every
call; ``cache.aside(...)`` resolves them once, when the dependency is built (so a bad option
fails at import, not on the first request), and fills in each call's tags. Either way the
cache-aside engine (`asgi_cache.loading`) sees only resolved, validated values.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

from ._rebuild import Rebuild
from ._validate import FLAG, TAG_LIST, TTL, Check, number, seconds
from .settings import CacheSettings

_POSITIVE = seconds().or_none()
_NON_NEGATIVE = seconds(zero=True).or_none()
_BETA = number(minimum=0, words="True, False or an XFetch beta >= 0")


def _seconds(name: str, value: float | None, default: float, check: Check) -> float:
    check.require(name, value)
    return default if value is None else float(value)


class Unstorable(enum.Enum):
    """What a cache-aside read does with a loaded value that cannot be encoded."""

    RAISE = "raise"
    """Raise [`SerializationError`][asgi_cache.SerializationError] (``get_or_load``): once per model
    or dataclass type, whose later values are returned uncached without trying again."""
    LOG = "log"
    """Log the error once and return the value uncached (``aside``: the route still answers
    from its loader)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """The resolved options of a cache-aside read (see ``Cache.get_or_load``)."""

    ttl: float | None
    """Freshness lifetime before jitter; ``None`` means the cache's default TTL."""
    tags: tuple[str, ...]
    """Tags the value derives from (filled templates, for ``aside``)."""
    lock: bool
    """Take the distributed lock on a miss."""
    lock_timeout: float
    """Longest wait for another process's load, in seconds."""
    stale_ttl: float
    """Seconds after expiry during which the stale value is served while refreshing."""
    negative_ttl: float
    """Lifetime of a cached ``None``."""
    early_refresh: float
    """XFetch beta; 0 disables early refresh."""
    rebuild: Rebuild | None = None
    """Turns a decoded hit back into the loader's type (``None``: used as decoded)."""
    unstorable: Unstorable = Unstorable.RAISE
    """What to do with a loaded value that cannot be encoded."""

    @classmethod
    def build(
        cls,
        settings: CacheSettings,
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        lock: bool = True,
        lock_timeout: float | None = None,
        stale_ttl: float | None = None,
        negative_ttl: float | None = None,
        early_refresh: bool | float = False,
        rebuild: Rebuild | None = None,
        unstorable: Unstorable = Unstorable.RAISE,
    ) -> Self:
        """Validate the keyword options of ``get_or_load``/``aside``; fill in the defaults
        from ``settings``.

        Raises:
            ConfigurationError: An option has a value that is not allowed (the message names
                the option and the value).
        """
        TTL.require("ttl", ttl)
        TAG_LIST.require("tags", tags)
        FLAG.require("lock", lock)
        if early_refresh is True:
            beta = 1.0
        elif early_refresh is False:
            beta = 0.0
        else:
            beta = float(_BETA.require("early_refresh", early_refresh))
        return cls(
            ttl=ttl,
            tags=tuple(tags),
            lock=lock,
            lock_timeout=_seconds(
                "lock_timeout", lock_timeout, settings.lock_timeout, _NON_NEGATIVE
            ),
            stale_ttl=_seconds("stale_ttl", stale_ttl, 0.0, _NON_NEGATIVE),
            negative_ttl=_seconds("negative_ttl", negative_ttl, settings.negative_ttl, _POSITIVE),
            early_refresh=beta,
            rebuild=rebuild,
            unstorable=unstorable,
        )

    def with_tags(self, tags: Iterable[str]) -> Self:
        """These options for one read whose tags are ``tags``."""
        return dataclasses.replace(self, tags=tuple(tags))

    def with_rebuild(self, rebuild: Rebuild | None) -> Self:
        """These options, rebuilding hits with ``rebuild``."""
        return dataclasses.replace(self, rebuild=rebuild)
