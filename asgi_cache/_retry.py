"""Invalidations that could not reach the backend, kept and retried until they land.

An invalidation must never be dropped silently: a tag version that is not retired would let
every entry carrying the tag be served after the data changed. When the backend fails, the
tag keys and entry keys to retire wait here and a background task retries them with capped
exponential backoff. The queue is bounded; on overflow it retires the whole namespace (one
tag version) instead of dropping anything: coarser, but never wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio

from ._exceptions import BackendError
from ._tasks import BackgroundTasks

logger = logging.getLogger("asgi_cache")


class InvalidationQueue:
    """Pending tag and key invalidations of one cache, retried in the background.

    Args:
        invalidate: Retires tag keys (the backend's ``invalidate``).
        delete: Deletes entry keys (the backend's ``delete``).
        all_tag: The namespace-wide tag key retired on overflow.
        max_pending: Most keys kept before overflowing to a namespace-wide invalidation.
        initial_backoff: First retry delay in seconds; doubles per failure up to ``max_backoff``.
    """

    def __init__(
        self,
        *,
        invalidate: Callable[[Sequence[str]], Awaitable[int]],
        delete: Callable[..., Awaitable[int]],
        all_tag: str,
        max_pending: int = 10_000,
        initial_backoff: float = 0.05,
        max_backoff: float = 5.0,
    ) -> None:
        self._invalidate = invalidate
        self._delete = delete
        self._all_tag = all_tag
        self.max_pending = max_pending
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._tags: dict[str, None] = {}  # insertion-ordered sets
        self._keys: dict[str, None] = {}
        self._overflowed = False
        self._retrying = BackgroundTasks("invalidation retry")
        self._drained = asyncio.Event()
        self._drained.set()
        self.retried = 0
        self.overflows = 0

    def __len__(self) -> int:
        return len(self._tags) + len(self._keys)

    def add(self, *, tags: Sequence[str] = (), keys: Sequence[str] = ()) -> None:
        """Queue tag keys and entry keys whose invalidation failed, and start retrying."""
        for tag in tags:
            self._tags[tag] = None
        for key in keys:
            self._keys[key] = None
        if len(self) > self.max_pending:
            # Overflow: one namespace-wide invalidation covers everything queued.
            self._tags = {self._all_tag: None}
            self._keys.clear()
            self._overflowed = True
            self.overflows += 1
            logger.error(
                "asgi-cache: invalidation queue overflowed (%d); the whole namespace will be "
                "invalidated once the backend answers",
                self.max_pending,
            )
        self._drained.clear()
        if not self._retrying:
            self._retrying.start_soon(self._run)

    async def flush(self) -> bool:
        """Try every queued invalidation once, now; return whether the queue is empty."""
        tags, keys = list(self._tags), list(self._keys)
        try:
            if tags:
                await self._invalidate(tags)
            if keys:
                await self._delete(*keys)
        except BackendError:
            return False
        for tag in tags:
            self._tags.pop(tag, None)
        for key in keys:
            self._keys.pop(key, None)
        self.retried += len(tags) + len(keys)
        if not self:
            self._overflowed = False
            self._drained.set()
        return not self

    async def wait_drained(self) -> None:
        """Wait until every queued invalidation has landed."""
        await self._drained.wait()

    async def _run(self) -> None:
        delay = self.initial_backoff
        while self:
            await anyio.sleep(delay)
            if await self.flush():
                logger.info("asgi-cache: queued invalidations delivered")
                return
            delay = min(delay * 2, self.max_backoff)

    async def aclose(self) -> None:
        """Stop retrying; one last attempt is made, and anything left is logged as lost."""
        await self._retrying.aclose()
        if self and not await self.flush():
            logger.error(
                "asgi-cache: shutting down with %d undelivered invalidations: %s",
                len(self),
                ", ".join([*self._tags, *self._keys][:20]),
            )
