"""Freshness lifetime and age of a response (RFC 9111 sections 4.2.1 to 4.2.3).

Pure functions over what a response says (`ResponseFacts`) and a few
instants; the one place where a lifetime is computed, and the one place TTL jitter touches
it (`jittered`).

**Lifetime** (section 4.2.1), first that applies:

1. the route policy's ``ttl`` (opt-in routes: the author's explicit choice);
2. ``s-maxage`` (a shared cache), else ``max-age``, else ``Expires`` minus ``Date``. An
   invalid ``Expires`` (section 5.3: any value that is not an HTTP-date, ``0`` included)
   means already expired, and so does an invalid ``max-age``/``s-maxage`` (section 4.2.1:
   "caches are encouraged to consider responses that have invalid freshness information
   to be stale");
3. in ``cache_all`` mode, a *heuristic* lifetime (section 4.2.2) for a response that may
   have one: a heuristically cacheable status (RFC 9110 section 15.1) or ``public``
   (section 5.2.2.9), with a valid ``Last-Modified`` in the past: 10 % of the time since it
   (the RFC's "typical setting"), capped by the middleware's ``heuristic_max_ttl``
   (default one day, as Traffic Server's ``heuristic_max_lifetime`` and httpd's
   ``CacheMaxExpire``). Squid uses 20 % (``refresh_pattern``); nginx applies no
   heuristic at all. RFC 2616's rule against heuristics for URIs with a query is gone
   from RFC 9111 (section 4.2.2 note) and is not applied;
4. opt-in routes: the cache's ``default_ttl``; ``cache_all``: 0 (stored only to be
   revalidated, when the response has a validator).

**Age** (section 4.2.3), computed when the response arrives::

    apparent_age = max(0, response_time - date_value)
    corrected_age_value = age_value + (response_time - request_time)
    corrected_initial_age = max(apparent_age, corrected_age_value)

and the entry's creation instant is ``response_time - corrected_initial_age``, so that
``current_age = now - created`` everywhere after (resident time included), and the response
is fresh while ``current_age < lifetime``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .cache_control import HEURISTIC_STATUSES, delta_seconds
from .dates import parse_http_date

HEURISTIC_FRACTION: Final = 0.1
"""RFC 9111 section 4.2.2's "typical setting" for the heuristic lifetime."""
DEFAULT_HEURISTIC_MAX_TTL: Final = 86_400.0
"""Cap of a heuristic lifetime (one day, as Traffic Server and httpd)."""


def explicit_lifetime(
    cc: dict[str, str | None], expires: str | None, date: str | None, now: float
) -> float | None:
    """The explicit freshness lifetime a response gives a shared cache (section 4.2.1), or
    ``None`` when it gives none.

    ``cc`` is the directive set in force (``Cache-Control`` or the targeted field);
    ``expires`` is ``None`` when the response has no ``Expires`` or a targeted field is in
    force (RFC 9213 section 2.2: it then replaces ``Expires`` too).
    """
    for name in ("s-maxage", "max-age"):
        if name in cc:
            return float(delta_seconds(cc[name]) or 0)
    if expires is not None:
        when = parse_http_date(expires)
        if when is None:
            return 0.0  # section 5.3: an invalid date means "already expired"
        base = parse_http_date(date)
        if base is None:
            base = now  # no valid Date: the time the response was received
        return max(0.0, when - base)
    return None


def heuristic_lifetime(
    *,
    status: int,
    public: bool,
    last_modified: str | None,
    date: str | None,
    now: float,
    cap: float,
) -> float:
    """The heuristic lifetime of a response without explicit freshness (section 4.2.2), or
    0 when it may not have one."""
    if cap <= 0 or (status not in HEURISTIC_STATUSES and not public):
        return 0.0
    modified = parse_http_date(last_modified)
    if modified is None:
        return 0.0
    base = parse_http_date(date)
    if base is None:
        base = now
    since = base - modified
    if since <= 0:
        return 0.0  # modified "in the future" says nothing about how long it lasts
    return min(since * HEURISTIC_FRACTION, cap)


def parse_age(lines: list[str]) -> int | None:
    """The ``Age`` a response carries (section 5.1), or ``None`` if it has none or an
    invalid one.

    A list (several lines, or ``1, 2``) counts by its first member, as the section says a
    cache SHOULD; a value that is not a non-negative integer (``-1``, ``10s``, ``1.5``, ``""``)
    is ignored. A huge value is capped at 2^31 (section 1.2.2).
    """
    if not lines:
        return None
    first = ",".join(lines).split(",", 1)[0].strip(" \t")
    return delta_seconds(first)


def created_at(
    *, age: int | None, date: str | None, request_time: float, response_time: float
) -> float:
    """When the response was generated, as this cache reckons it (section 4.2.3)."""
    date_value = parse_http_date(date)
    apparent_age = 0.0 if date_value is None else max(0.0, response_time - date_value)
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = (age or 0) + response_delay
    return response_time - max(apparent_age, corrected_age_value)


def jittered(lifetime: float, jitter: Callable[[float], float]) -> float:
    """The lifetime an entry is stored with: ``lifetime`` spread by the TTL jitter, which may
    only shorten it (RFC 9111 section 4.2: nothing is fresh past its lifetime)."""
    if lifetime <= 0:
        return lifetime
    return min(lifetime, jitter(lifetime))
