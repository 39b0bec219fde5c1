"""What the cache did with a request, as an RFC 9211 ``Cache-Status`` value (and ``X-Cache``).

Every answer of a cacheable route carries one `CacheStatus`, built by one of its
named constructors, never spelled as a string at the place that answers::

    asgi-cache; hit; ttl=42                        fresh entry, 42 s of freshness left
    asgi-cache; hit; detail=coalesced              another request's response (this process)
    asgi-cache; hit; detail=lock                   the lock holder's response (any process)
    asgi-cache; hit; ttl=-3; detail=max-stale      stale by 3 s, accepted by the request
    asgi-cache; fwd=stale; detail=stale-while-revalidate    stale, a refresh runs meanwhile
    asgi-cache; fwd=stale; fwd-status=500; detail=stale-if-error   stale, the origin failed
    asgi-cache; fwd=stale; fwd-status=304; stored  revalidated by the origin, entry freshened
    asgi-cache; fwd=miss; stored                   from the origin, stored
    asgi-cache; fwd=request; stored                the client asked for the origin (no-cache)
    asgi-cache; fwd=miss; detail=too-large         from the origin, not stored, and why
    asgi-cache; fwd=bypass; detail=cookie          the request could not use the cache

The parameters are written in the order RFC 9211 section 2 lists them (``hit``/``fwd``,
``fwd-status``, ``ttl``, ``stored``) with ``detail`` last; ``ttl`` (section 2.5) is the
remaining freshness lifetime, rounded down so it never claims more than the entry has.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache


class Fwd(enum.Enum):
    """Why the request went forward to the origin (RFC 9211 section 2.2, ``fwd``)."""

    BYPASS = "bypass"
    """The request or route cannot use the cache (``detail`` says why)."""
    MISS = "miss"
    """Nothing usable was stored."""
    REQUEST = "request"
    """The client asked for a response from the origin (``no-cache``, ``max-age=0``)."""
    STALE = "stale"
    """The stored response was stale."""


class XCache(enum.Enum):
    """The one-word ``X-Cache`` summary: where the body came from."""

    HIT = "HIT"
    """From the cache, fresh (or just revalidated)."""
    STALE = "STALE"
    """From the cache, stale (stale-while-revalidate, stale-if-error)."""
    MISS = "MISS"
    """From the origin."""
    BYPASS = "BYPASS"
    """From the origin, the cache not consulted."""


@dataclass(frozen=True, slots=True)
class CacheStatus:
    """One ``Cache-Status`` outcome; build it with the named constructors."""

    x_cache: XCache
    hit: bool = False
    fwd: Fwd | None = None
    fwd_status: int | None = None
    ttl: int | None = None
    stored: bool = False
    detail: str | None = None

    @classmethod
    def fresh_hit(cls, ttl: float) -> CacheStatus:
        """A fresh entry, ``ttl`` seconds of freshness left (rounded down)."""
        return _fresh_hit(max(0, int(ttl)))

    @classmethod
    def stale_hit(cls, ttl: float, detail: str) -> CacheStatus:
        """A stale entry the request accepted as it is (``max-stale``): ``ttl`` is negative,
        how long ago it went stale in whole seconds (RFC 9211 section 2.5)."""
        return cls(XCache.STALE, hit=True, ttl=min(-1, int(ttl)), detail=detail)

    @classmethod
    def shared(cls, detail: str) -> CacheStatus:
        """Another request's response: ``coalesced`` in process, or the ``lock`` holder's."""
        return cls(XCache.HIT, hit=True, detail=detail)

    @classmethod
    def stale(cls, detail: str, fwd_status: int | None = None) -> CacheStatus:
        """A stale entry served (RFC 5861): while revalidating, or because the origin failed."""
        return cls(XCache.STALE, fwd=Fwd.STALE, fwd_status=fwd_status, detail=detail)

    @classmethod
    def revalidated(cls, *, stored: bool) -> CacheStatus:
        """The origin answered our revalidation with 304: the stored body is served."""
        return cls(XCache.HIT, fwd=Fwd.STALE, fwd_status=304, stored=stored)

    @classmethod
    def forwarded(
        cls,
        fwd: Fwd,
        detail: str | None = None,
        *,
        fwd_status: int | None = None,
        stored: bool = False,
    ) -> CacheStatus:
        """The origin's response (``detail``: why it was not stored, or not looked up)."""
        x_cache = XCache.BYPASS if fwd is Fwd.BYPASS else XCache.MISS
        return cls(x_cache, fwd=fwd, fwd_status=fwd_status, stored=stored, detail=detail)

    def value(self) -> str:
        """The parameters after the cache's name (``hit; ttl=42``)."""
        params = ["hit"] if self.hit else []
        if self.fwd is not None:
            params.append(f"fwd={self.fwd.value}")
        if self.fwd_status is not None:
            params.append(f"fwd-status={self.fwd_status}")
        if self.ttl is not None:
            params.append(f"ttl={self.ttl}")
        if self.stored:
            params.append("stored")
        if self.detail is not None:
            params.append(f"detail={self.detail}")
        return "; ".join(params)


@dataclass(frozen=True, slots=True)
class StatusHeaders:
    """Renders outcomes as the response headers of one middleware.

    Args:
        name: The cache's name in ``Cache-Status``.
        x_cache: Also send ``X-Cache``.
    """

    name: str
    x_cache: bool

    def __call__(self, status: CacheStatus) -> list[tuple[bytes, bytes]]:
        """The ``Cache-Status`` (and ``X-Cache``) headers for ``status`` (a new list)."""
        if (
            status.x_cache is XCache.HIT
            and status.ttl is not None
            and status.fwd is None
            and status.detail is None
            and status.fwd_status is None
            and not status.stored
        ):
            return list(self.fresh(status.ttl))
        headers = [(b"cache-status", f"{self.name}; {status.value()}".encode())]
        if self.x_cache:
            headers.append((b"x-cache", status.x_cache.value.encode()))
        return headers

    def fresh(self, ttl: int) -> tuple[tuple[bytes, bytes], ...]:
        """The headers of a fresh hit with ``ttl`` whole seconds of freshness left (those of
        `CacheStatus.fresh_hit`), without building the outcome: the hot path, its headers
        differ only by the ttl, built once per ttl."""
        return _fresh_hit_headers(self.name, self.x_cache, ttl)


# Built once per whole-second ttl, not per hit (keys are plain str/bool/int: hashed in C).
@lru_cache(maxsize=4096)
def _fresh_hit(ttl: int) -> CacheStatus:
    return CacheStatus(XCache.HIT, hit=True, ttl=ttl)


@lru_cache(maxsize=4096)
def _fresh_hit_headers(name: str, x_cache: bool, ttl: int) -> tuple[tuple[bytes, bytes], ...]:
    cache_status = (b"cache-status", f"{name}; hit; ttl={ttl}".encode())
    if x_cache:
        return cache_status, (b"x-cache", XCache.HIT.value.encode())
    return (cache_status,)
