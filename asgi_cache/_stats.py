"""What happened in one cache, told one event at a time: the numbers behind ``cache.stats()``.

Every part of the library reports through the methods of `Stats`, one method per
thing that happens (a hit, a miss, a failed backend call...), never by writing counters. A
metrics exporter can hang on the same methods (subclass and call ``super()``) and sees every
event with its details; `Stats.counts` is the plain tally ``cache.stats()`` reports.

Backend failures and corrupt values are also logged here, at most once per interval and
kind (`RateLimitedLog`), so an outage under load writes one line per interval, not
one per request.
"""

from __future__ import annotations

import logging
import time
from typing import NotRequired, TypedDict

from .backends.breaker import BreakerSnapshot

logger = logging.getLogger("asgi_cache")


class Counts(TypedDict):
    """The tally of one cache's events since it was created (part of ``cache.stats()``)."""

    hits: int
    """Lookups answered from the cache (including misses another request answered)."""
    misses: int
    """Lookups that went to the loader or the app."""
    stale: int
    """Stale values or responses served (stale-while-revalidate, stale-if-error, lock waits)."""
    errors: int
    """Backend calls that failed (each one failed open)."""
    corrupt: int
    """Stored values that did not decode, or no longer fit what the caller asked for."""
    sets: int
    """Entries stored."""
    deletes: int
    """Entries deleted."""
    loads: int
    """Loader calls."""
    lock_waits: int
    """Waits for another process's load or response."""
    invalidations: int
    """Tags invalidated."""
    hit_rate: float
    """``(hits + stale) / (hits + stale + misses)``, 0.0 before any lookup."""


class L1Counts(TypedDict):
    """The L1 near-cache's part of ``cache.stats()``."""

    entries: int
    """Entries held in this process."""
    hits: int
    """Reads answered from this process's memory (also counted in ``hits``)."""


class CacheStats(Counts):
    """What ``cache.stats()`` returns: the counts, plus the state of what they depend on."""

    backend: str
    """The backend's name (``memory``, ``redis``)."""
    enabled: bool
    """Whether the cache is on (``CacheSettings.enabled``)."""
    pending_invalidations: int
    """Invalidations waiting for the backend to come back, retried until they land."""
    invalidation_overflows: int
    """Times the retry queue overflowed into one namespace-wide invalidation."""
    l1: NotRequired[L1Counts]
    """The L1 near-cache, when it is on."""
    breaker: NotRequired[BreakerSnapshot]
    """The circuit breaker, when the backend has one."""


class Stats:
    """The events of one [`Cache`][asgi_cache.Cache], counted.

    Args:
        log: Where failures and corrupt values are logged (rate limited).
    """

    __slots__ = (
        "_coalesced",
        "_corrupt",
        "_deletes",
        "_errors",
        "_hits",
        "_invalidations",
        "_loads",
        "_lock_waits",
        "_misses",
        "_sets",
        "_stale",
        "log",
    )

    def __init__(self, log: RateLimitedLog | None = None) -> None:
        self.log = log or RateLimitedLog(logger)
        self._hits = self._misses = self._coalesced = self._stale = 0
        self._errors = self._corrupt = self._sets = self._deletes = 0
        self._loads = self._lock_waits = self._invalidations = 0

    # -- lookups -------------------------------------------------------------------------------

    def hit(self) -> None:
        """A lookup found a fresh value or response."""
        self._hits += 1

    def miss(self) -> None:
        """A lookup found nothing usable; the loader or the app is asked."""
        self._misses += 1

    def coalesced(self) -> None:
        """A lookup counted as a miss was answered by another request's load after all (in
        process, or by the lock holder in another process): it is reported as a hit."""
        self._coalesced += 1

    def served_stale(self) -> None:
        """A stale value or response was served (while refreshing, on error, or on a lock
        wait that ran out)."""
        self._stale += 1

    # -- work ----------------------------------------------------------------------------------

    def loaded(self) -> None:
        """A loader was called."""
        self._loads += 1

    def lock_waited(self) -> None:
        """A caller waits for another process's load or response."""
        self._lock_waits += 1

    def stored(self) -> None:
        """An entry was stored."""
        self._sets += 1

    def deleted(self, count: int) -> None:
        """``count`` entries were deleted."""
        self._deletes += count

    def invalidated(self, count: int) -> None:
        """``count`` tags were invalidated."""
        self._invalidations += count

    # -- trouble -------------------------------------------------------------------------------

    def error(self, operation: str, exc: BaseException) -> None:
        """A backend call failed and the cache failed open (logged once per interval)."""
        self._errors += 1
        self.log.log(
            logging.WARNING,
            operation,
            "asgi-cache: %s failed, failing open: %s",
            operation,
            exc,
        )

    def corrupt(self, full_key: str, exc: BaseException) -> None:
        """The bytes under ``full_key`` are not a valid entry; they count as a miss."""
        self._corrupt += 1
        self.log.log(
            logging.WARNING, "corrupt", "asgi-cache: ignoring bad value at %r: %s", full_key, exc
        )

    def mismatch(self, full_key: str, detail: object) -> None:
        """An entry decoded but does not fit what the caller wants (a response under a data
        key, a value that no longer fits the loader's type after a deploy); a miss, and the
        reload replaces it. Counted with ``corrupt``; logged at debug level only."""
        self._corrupt += 1
        logger.debug("asgi-cache: cannot use the entry at %r: %s", full_key, detail)

    # -- reading -------------------------------------------------------------------------------

    def counts(self) -> Counts:
        """The tally so far, with ``hit_rate``."""
        hits = self._hits + self._coalesced
        misses = self._misses - self._coalesced
        looked_up = hits + self._stale + misses
        return Counts(
            hits=hits,
            misses=misses,
            stale=self._stale,
            errors=self._errors,
            corrupt=self._corrupt,
            sets=self._sets,
            deletes=self._deletes,
            loads=self._loads,
            lock_waits=self._lock_waits,
            invalidations=self._invalidations,
            hit_rate=round((hits + self._stale) / looked_up, 4) if looked_up else 0.0,
        )


class RateLimitedLog:
    """Logs a kind of message at most once per ``interval`` seconds, counting the rest.

    A Redis outage under load would otherwise write one line per request; this writes one line
    per interval and says how many similar ones were suppressed.
    """

    __slots__ = ("_last", "_logger", "_suppressed", "interval")

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log ``message`` unless a ``kind`` message was logged within the interval.

        Returns whether it was logged.
        """
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args)
        return True
