"""What happened in one cache, told one event at a time: the numbers behind ``cache.stats()``.

Every part of the library reports through the methods of `Stats`, one method per
thing that happens (a hit, a miss, a failed backend call...), never by writing counters.
`Stats.counts` is the plain tally ``cache.stats()`` reports. An `Observer`
(``Stats.observer``: the metrics feature's tally, `asgi_cache.metrics`) is handed every
event with its details: where a hit came from, why a request bypassed the cache, which route
template a request matched, how long a load or a lock wait took. Its labels are bounded by
construction: layers, results, reasons, operations and kinds are names written in this
package, routes are templates (``/users/{user_id}``), never a key or a URL.

Backend failures and corrupt values are also logged here, at most once per interval and
kind (`RateLimitedLog`), so an outage under load writes one line per interval, not
one per request.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Literal, NotRequired, Protocol, TypedDict

from ._exceptions import BackendBusyError, BackendReplyError, BackendTimeoutError
from ._write_behind_status import WriteBehindStatus
from .backends.breaker import BreakerSnapshot

logger = logging.getLogger("asgi_cache")
_NO_SPAN: AbstractContextManager[object] = nullcontext()


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


class Source(enum.IntEnum):
    """Where a lookup was answered; falsy when the backend failed (a miss that could not be
    checked), so ``if not source`` reads as "the backend did not answer"."""

    FAILED = 0
    """The backend failed (or invalidations wait for it): nothing could be read."""
    BACKEND = 1
    """The backend answered (with an entry or without)."""
    L1 = 2
    """This process's L1 near-cache answered; the backend was not asked."""


class Observer(Protocol):
    """What `Stats` hands every event to, with its details (see the module docs)."""

    def lookup(self, result: str, source: Source) -> None:
        """A lookup ended as ``result`` (``hit``, ``miss``, ``stale``), answered at
        ``source``; a ``miss`` that another request answered after all is reported once more
        as ``coalesced``."""

    def bypassed(self, reason: str) -> None:
        """A request could not use the cache, for ``reason`` (a ``Cache-Status`` detail)."""

    def served(self, route: str, cached: bool, seconds: float) -> None:
        """An HTTP request of the route template ``route`` was answered in ``seconds``,
        from the cache (``cached``) or by the app."""

    def load_done(self, seconds: float) -> None:
        """A loader call (counted by ``loaded`` when it started) ended after ``seconds``."""

    def lock_wait_done(self, seconds: float) -> None:
        """A lock wait (counted by ``lock_waited`` when it started) ended after ``seconds``."""

    def invalidated(self, kind: str, count: int) -> None:
        """``count`` invalidations of ``kind`` (``tag``, ``url``, ``key``, ``prefix``,
        ``clear``) landed."""

    def error(self, operation: str, kind: str) -> None:
        """A backend ``operation`` failed with an error of ``kind`` (``timeout``, ``busy``,
        ``reply``, ``connection``)."""

    def probed(self, report: Mapping[str, object]) -> None:
        """The health probe described the backend (``await cache.health()``)."""


L1Invalidation = Literal["pubsub", "tracking"]
"""How the L1 near-cache hears invalidations (``ASGI_CACHE_L1_INVALIDATION``)."""


class L1Counts(TypedDict):
    """The L1 near-cache's part of ``cache.stats()``."""

    entries: int
    """Entries held in this process."""
    hits: int
    """Reads answered from this process's memory (also counted in ``hits``)."""
    bytes: int
    """Estimated bytes held (keys, bodies, metadata and a fixed overhead per entry)."""
    evictions: int
    """Entries pushed out to make room for more frequently read ones (or expired)."""
    rejections: int
    """Reads not kept because they were asked for less often than what they would evict
    (the TinyLFU admission filter) or were larger than the byte bound."""
    drops: int
    """Entries dropped by invalidations, deletes, stores and clears (here or elsewhere)."""
    flushes: int
    """Times L1 was emptied because invalidations may have been missed: the subscription
    was made, lost (a socket error, a missed pong) or confirmed again after a reconnect."""
    subscribed: bool
    """Whether invalidations are heard now; L1 is filled only then."""
    invalidation: L1Invalidation
    """How invalidations are heard, in effect now: ``pubsub``, or ``tracking`` (Redis
    ``CLIENT TRACKING``; ``pubsub`` again when Redis refused it, see docs/near-cache.md)."""
    tag_checks: int
    """Tag versions read again after Redis reported a change of a tag key (tracking
    mode: a change may be an extension of its expiry only, which drops nothing)."""


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
    write_behind: NotRequired[dict[str, WriteBehindStatus]]
    """Each write-behind name of the cache (``cache.write_behind(...)``), when it has any."""


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
        "observer",
        "tracer",
    )

    def __init__(self, log: RateLimitedLog | None = None) -> None:
        self.log = log or RateLimitedLog(logger)
        self.observer: Observer | None = None
        """Handed every event with its details (the metrics feature installs one)."""
        self.tracer: Callable[[str], AbstractContextManager[object]] | None = None
        """Makes the spans of `span` (OpenTelemetry, when asked for; else none)."""
        self._hits = self._misses = self._coalesced = self._stale = 0
        self._errors = self._corrupt = self._sets = self._deletes = 0
        self._loads = self._lock_waits = self._invalidations = 0

    # -- lookups -------------------------------------------------------------------------------

    def hit(self, source: Source = Source.BACKEND) -> None:
        """A lookup found a fresh value or response (at ``source``)."""
        self._hits += 1
        if self.observer is not None:
            self.observer.lookup("hit", source)

    def miss(self, source: Source = Source.BACKEND) -> None:
        """A lookup found nothing usable; the loader or the app is asked."""
        self._misses += 1
        if self.observer is not None:
            self.observer.lookup("miss", source)

    def coalesced(self) -> None:
        """A lookup counted as a miss was answered by another request's load after all (in
        process, or by the lock holder in another process): it is reported as a hit."""
        self._coalesced += 1
        if self.observer is not None:
            self.observer.lookup("coalesced", Source.BACKEND)

    def served_stale(self, source: Source = Source.BACKEND) -> None:
        """A stale value or response was served (while refreshing, on error, or on a lock
        wait that ran out)."""
        self._stale += 1
        if self.observer is not None:
            self.observer.lookup("stale", source)

    def bypassed(self, reason: str) -> None:
        """A request of a cacheable route could not use the cache (``reason``: the
        ``Cache-Status`` detail). Not a lookup: ``counts()`` leaves it out."""
        if self.observer is not None:
            self.observer.bypassed(reason)

    def served(self, route: str, cached: bool, seconds: float) -> None:
        """An HTTP request of the route template ``route`` was answered (see
        `Observer.served`); timed only for observers."""
        if self.observer is not None:
            self.observer.served(route, cached, seconds)

    def span(self, name: str) -> AbstractContextManager[object]:
        """A tracing span around work named ``name`` (``asgi_cache.load``,
        ``asgi_cache.lock_wait``); nothing at all unless spans were asked for."""
        tracer = self.tracer
        return _NO_SPAN if tracer is None else tracer(name)

    @property
    def timing(self) -> bool:
        """Whether anyone reads durations (an observer is installed): callers skip the
        clock otherwise."""
        return self.observer is not None

    # -- work ----------------------------------------------------------------------------------

    def loaded(self) -> None:
        """A loader was called."""
        self._loads += 1

    def load_done(self, seconds: float) -> None:
        """A loader call ended (returned or raised) after ``seconds``."""
        if self.observer is not None:
            self.observer.load_done(seconds)

    def lock_waited(self) -> None:
        """A caller waits for another process's load or response."""
        self._lock_waits += 1

    def lock_wait_done(self, seconds: float) -> None:
        """A lock wait ended (woken, found, or out of time) after ``seconds``."""
        if self.observer is not None:
            self.observer.lock_wait_done(seconds)

    def stored(self) -> None:
        """An entry was stored."""
        self._sets += 1

    def deleted(self, count: int, kind: str = "key") -> None:
        """``count`` entries were deleted (``kind``: by ``key`` or by ``prefix``)."""
        self._deletes += count
        if self.observer is not None:
            self.observer.invalidated(kind, count)

    def invalidated(self, count: int, kind: str = "tag") -> None:
        """``count`` tags were invalidated (``kind``: ``tag``, or ``url`` for the implicit
        tags of RFC 9111 section 4.4 URI invalidation)."""
        self._invalidations += count
        if self.observer is not None:
            self.observer.invalidated(kind, count)

    def cleared(self) -> None:
        """The whole namespace was invalidated (``cache.clear()``)."""
        if self.observer is not None:
            self.observer.invalidated("clear", 1)

    def probed(self, report: Mapping[str, object]) -> None:
        """The health probe described the backend (memory, evictions, latency)."""
        if self.observer is not None:
            self.observer.probed(report)

    # -- trouble -------------------------------------------------------------------------------

    def error(self, operation: str, exc: BaseException) -> None:
        """A backend call failed and the cache failed open (logged once per interval)."""
        self._errors += 1
        if self.observer is not None:
            self.observer.error(operation, error_kind(exc))
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


def error_kind(exc: BaseException) -> str:
    """The bounded name of a backend failure, for a metric label: ``timeout``, ``busy`` (no
    pooled connection free), ``reply`` (an error answer, such as OOM), else ``connection``."""
    match exc:
        case BackendTimeoutError():
            return "timeout"
        case BackendBusyError():
            return "busy"
        case BackendReplyError():
            return "reply"
        case _:
            return "connection"


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
