"""Refresh on write: after an unsafe request invalidated a URL or tags, fetch the affected
GET entries again in the background, so the next reader hits a fresh entry.

An invalidating cache makes every read after a write a miss that waits for the origin (the
ceiling of the seed workload: 77.8 % hits). With ``@cache.invalidates(..., refresh=True)``
(or ``CacheMiddleware(refresh_on_write=True)`` for every unsafe request), the middleware
remembers, per process, how to ask for each GET entry it answered (the request, its route's
policy and parameters; never one with credentials), indexed by the entry's tags and its URL
tag. Once a write's invalidation has landed, every remembered entry depending on what it
invalidated is fetched again through the app, in the background:

- one refresh at a time per entry; a write arriving while its refresh runs makes it run
  once more afterwards (coalesced: the running one may have read the database before the
  write), never more;
- at most ``concurrency`` refreshes at once for the whole app (``anyio.CapacityLimiter``),
  so a write touching a tag of many entries cannot flood the origin;
- a refresh is an ordinary cache lookup then miss: a reader that refilled the entry first
  makes it a hit (no origin call); a reader arriving while it runs waits for it (coalesced
  in process); and it stores under the tag versions read before the app was called, so a
  later write that lands while it runs makes its store refused, never a stale entry.

What is remembered is bounded (``limit`` entries, least recently seen forgotten first) and
per process: an entry only another worker answered is refilled by the next reader.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Final

import anyio

from .._tasks import BackgroundTasks

logger = logging.getLogger("asgi_cache.http")

Fetch = Callable[[], Awaitable[None]]
"""Asks the app for one remembered GET again, through the cache (built by the exchange)."""

REFRESH_CONCURRENCY: Final = 4
"""Most refreshes running at once per middleware."""
REMEMBERED: Final = 10_000
"""Most GET entries remembered per middleware for refresh on write."""


class WriteRefresher:
    """The GET entries of one middleware that a write may refresh, and their refreshes.

    Args:
        background: Where refreshes run (the middleware's background tasks).
        limit: Most entries remembered.
        concurrency: Most refreshes at once.
    """

    def __init__(
        self,
        background: BackgroundTasks,
        *,
        limit: int = REMEMBERED,
        concurrency: int = REFRESH_CONCURRENCY,
    ) -> None:
        self._background = background
        self.limit = limit
        self.concurrency = concurrency
        self._fetches: OrderedDict[str, tuple[Fetch, tuple[str, ...]]] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._running: dict[str, bool] = {}  # full key -> a write came while it ran
        self._limiter: anyio.CapacityLimiter | None = None
        self.refreshes = 0
        """Refreshes run (each one a lookup, and an app call on a miss)."""
        self.coalesced = 0
        """Writes whose refresh of an entry joined one already running for it."""

    def __contains__(self, full_key: object) -> bool:
        return full_key in self._fetches

    def remember(self, full_key: str, tags: tuple[str, ...], fetch: Fetch) -> None:
        """Remember how to fetch the entry ``full_key`` again, and the tags it depends on."""
        if full_key in self._fetches:
            self._fetches.move_to_end(full_key)
            return
        self._fetches[full_key] = (fetch, tags)
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(full_key)
        while len(self._fetches) > self.limit:
            old_key, (_, old_tags) = self._fetches.popitem(last=False)
            for tag in old_tags:
                keys = self._by_tag.get(tag)
                if keys is not None:
                    keys.discard(old_key)
                    if not keys:
                        del self._by_tag[tag]

    def affected(self, tags: Iterable[str]) -> set[str]:
        """The remembered entries depending on one of ``tags``."""
        found: set[str] = set()
        for tag in tags:
            found.update(self._by_tag.get(tag, ()))
        return found

    def schedule(self, tags: Iterable[str]) -> int:
        """Refresh, in the background, every remembered entry depending on ``tags`` (their
        invalidation has landed); return how many refreshes were started."""
        started = 0
        for full_key in self.affected(tags):
            if full_key in self._running:
                self._running[full_key] = True  # once more when the running one ends
                self.coalesced += 1
                continue
            self._running[full_key] = False
            started += 1
            self._background.start_soon(partial(self._refresh, full_key))
        return started

    async def _refresh(self, full_key: str) -> None:
        if self._limiter is None:  # built on the event loop that runs the refreshes
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        try:
            while True:
                remembered = self._fetches.get(full_key)
                if remembered is None:  # pragma: no cover - forgotten while it waited
                    return
                async with self._limiter:
                    try:
                        await remembered[0]()
                    except Exception:
                        logger.warning("asgi-cache: refresh on write failed", exc_info=True)
                self.refreshes += 1
                if not self._running.get(full_key):
                    return
                self._running[full_key] = False
        finally:
            self._running.pop(full_key, None)
