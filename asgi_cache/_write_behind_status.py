"""What ``cache.stats()`` and ``health()`` report of each write-behind name.

Part of the stats interface (`asgi_cache._stats` reports it), kept in a module of
its own so that `_stats` stays within the module budget.
"""

from __future__ import annotations

from typing import NotRequired, Protocol, TypedDict


class WriteBehindStatus(TypedDict):
    """One write-behind name's part of ``cache.stats()`` and ``await cache.health()``
    (under ``write_behind``, by name). The counters are this process's; the backlog fields
    come from the backend and appear in ``health()`` (and ``asgi-cache worker --status``)."""

    name: str
    """The write-behind name."""
    running: bool
    """Whether a worker of this name runs in this process."""
    written: int
    """Changes this process appended (``wb.write`` and ``wb.delete``)."""
    applied: int
    """Changes this process's worker saw the handler commit."""
    coalesced: int
    """Changes acknowledged together with a newer change of the same key in one batch:
    database writes saved."""
    batches: int
    """Handler calls that committed."""
    retries: int
    """Handler calls that failed (their changes stay pending and are retried)."""
    reclaimed: int
    """Changes taken over from a worker that held them past the lease."""
    dead_lettered: int
    """Changes moved to the dead letter after ``max_deliveries``."""
    inline: int
    """Changes handed to the handler inline because the backlog was full."""
    refused: int
    """Changes refused because the backlog was full (policy ``"refuse"``)."""
    lease_lost: int
    """Lease renewals that found a batch taken over by another worker."""
    last_error: str | None
    """The last handler or backend failure the worker saw, or ``None``."""
    backlog: NotRequired[int]
    """Changes not yet acknowledged (``health()`` only)."""
    pending: NotRequired[int]
    """Changes delivered to a worker and not yet acknowledged (``health()`` only)."""
    dead_letters: NotRequired[int]
    """Changes in the dead letter (``health()`` only)."""
    lag_seconds: NotRequired[float]
    """Age of the oldest change not yet acknowledged (``health()`` only)."""
    consumers: NotRequired[int]
    """Workers known to the consumer group (``health()`` only)."""
    error: NotRequired[str]
    """Why the backlog fields are missing: the backend did not answer (``health()`` only)."""


class WriteBehindSource(Protocol):
    """What a cache keeps of each of its write-behind names, to report them."""

    def status(self) -> WriteBehindStatus:
        """This process's counters, without a round trip."""
        ...

    async def probe(self) -> WriteBehindStatus:
        """The counters plus the backlog as the backend sees it."""
        ...
