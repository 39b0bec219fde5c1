"""L1 invalidation by Redis ``CLIENT TRACKING`` (``ASGI_CACHE_L1_INVALIDATION=tracking``).

In this mode the L1 near-cache does not subscribe to the namespace's invalidation channels:
Redis itself reports every change of an entry or tag-version key, by any client, and every
expiry and eviction (`Backend.track`, `asgi_cache.backends._tracking`; Redis >= 6.0). What
each report does to the L1 of this process:

- an entry key (``<ns>:d:...``, ``<ns>:h:...``): that key is dropped;
- everything (``FLUSHDB``, ``FLUSHALL``): the L1 is emptied;
- a tag-version key (``<ns>:t:...``): its version is read again, and the tag's dependants
  that recorded another version are dropped (`NearCache.retire`; every L1 entry keeps the
  versions its read recorded). A tag key is also reported when only its expiry was
  extended (a store extends the expiry of its tags, the namespace tag included, with
  ``PEXPIRE ... GT`` whenever that lengthens it), which must not drop anything. Reports
  that arrive while a read is out are read again after it, so a change is never judged by
  a version read before it; a fill that recorded an older version than the one read is not
  admitted. Until the read comes back (one round trip) the dependants are still served:
  the window of a tag change in tracking mode. A failed read drops them (`drop_tags`).

Gaps empty the L1 as in pub/sub mode (the first tracking set up, a lost connection, every
primary tracked again), and the L1 is filled only while every primary is tracked. A process's
own writes come back as reports too: they drop again what this process may have refilled
since its own (synchronous) drop, which costs one more read and never serves an older value.

Where Redis refuses ``CLIENT TRACKING``, one warning names the setting and the L1 falls back
to the pub/sub subscription for the life of the cache (``stats()["l1"]["invalidation"]``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ._exceptions import BackendError
from ._stats import L1Invalidation
from ._tasks import BackgroundTasks
from .backends.base import (
    INVALIDATE_ALL,
    SUBSCRIPTION_LOST,
    SUBSCRIPTION_RESTORED,
    Backend,
    TrackingRefused,
)

if TYPE_CHECKING:
    from .near import NearCache

logger = logging.getLogger("asgi_cache")

_RETRY_AFTER = 1.0  # seconds between attempts to set up tracking while Redis is unreachable


class Subscription(Protocol):
    """How an L1 hears invalidations (the pub/sub subscription, or tracking)."""

    @property
    def live(self) -> bool:
        """Whether invalidations are heard now (L1 is filled only then)."""
        ...

    @property
    def flushes(self) -> int:
        """Times L1 was emptied because invalidations may have been missed."""
        ...

    @property
    def tag_checks(self) -> int:
        """Tag versions read again after a report of their key (tracking)."""
        ...

    @property
    def mode(self) -> L1Invalidation:
        """The invalidation mode in effect."""
        ...

    async def subscribe(self, backend: Backend) -> bool:
        """Start hearing ``backend``'s invalidations if not yet; say whether L1 may fill."""
        ...

    def reset(self) -> None:
        """Forget the backend (it was closed); the next fill starts again."""
        ...


class TrackedSubscription:
    """The L1's invalidations from Redis ``CLIENT TRACKING``, with a pub/sub fallback.

    Args:
        near: The L1 it keeps coherent.
        fallback: The pub/sub subscription used instead where tracking is refused.
        prefixes: The key prefixes to track (the namespace's entry and tag-version keys).
        retry_after: Seconds between attempts while Redis is unreachable.
    """

    def __init__(
        self,
        near: NearCache,
        fallback: Subscription,
        *,
        prefixes: Sequence[str],
        retry_after: float = _RETRY_AFTER,
    ) -> None:
        self._near = near
        self._fallback = fallback
        self.prefixes = tuple(prefixes)
        self.retry_after = retry_after
        self.refused = False
        """Whether Redis refused tracking (the pub/sub fallback is in use)."""
        self._live = False
        self._flushes = 0
        self.tag_checks = 0
        """Tag versions read again after a report of their key (each one a ``GET``)."""
        self._backend: Backend | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()
        self._pending: dict[str, None] = {}
        self._checks = BackgroundTasks("L1 tag version check")

    @property
    def mode(self) -> L1Invalidation:
        """``tracking``, or ``pubsub`` once Redis refused tracking."""
        return "pubsub" if self.refused else "tracking"

    @property
    def live(self) -> bool:
        """Whether invalidations are heard now (every primary tracked)."""
        return self._fallback.live if self.refused else self._live

    @property
    def flushes(self) -> int:
        """Times L1 was emptied because invalidations may have been missed."""
        return self._flushes + self._fallback.flushes

    @property
    def checking(self) -> bool:
        """Whether tag versions are being read again, or wait to be."""
        return bool(self._pending or self._checks)

    async def subscribe(self, backend: Backend) -> bool:
        """Set up tracking on ``backend`` if not yet; say whether L1 may be filled now."""
        if self.refused:
            return await self._fallback.subscribe(backend)
        if self._backend is backend:
            return self._live
        async with self._lock:
            if self._backend is not backend and not self.refused:
                if time.monotonic() < self._retry_at:
                    return False
                try:
                    await backend.track(self.prefixes, self._deliver)
                except TrackingRefused as exc:
                    self.refused = True
                    logger.warning(
                        "asgi-cache: ASGI_CACHE_L1_INVALIDATION=tracking, but %s; the L1 "
                        "near-cache falls back to pubsub invalidation (grant the user "
                        "+client|tracking, or set ASGI_CACHE_L1_INVALIDATION=pubsub; see "
                        "docs/near-cache.md)",
                        exc,
                    )
                except BackendError as exc:
                    self._retry_at = time.monotonic() + self.retry_after
                    logger.debug("asgi-cache: L1 tracking unavailable: %s", exc)
                    return False
                else:
                    self._backend = backend
                    if not self._live:
                        self._flush()
                        self._live = True
        if self.refused:
            return await self._fallback.subscribe(backend)
        return self._live

    def _deliver(self, name: str) -> None:
        near = self._near
        if name in (SUBSCRIPTION_LOST, SUBSCRIPTION_RESTORED):
            # A gap: what was reported meanwhile is gone; fills stop until it is over.
            self._flush()
            self._live = name == SUBSCRIPTION_RESTORED
        elif name == INVALIDATE_ALL:
            near.clear()
        elif name.startswith(near.tag_prefix):
            self._pending[name] = None
            if not self._checks:
                self._checks.start_soon(self._check_tags)
        else:
            near.drop(name)

    async def _check_tags(self) -> None:
        while self._pending and (backend := self._backend) is not None:
            batch = list(self._pending)
            self._pending.clear()
            found = await asyncio.gather(
                *(backend.get_raw(t) for t in batch), return_exceptions=True
            )
            self.tag_checks += len(batch)
            for tag, current in zip(batch, found, strict=True):
                if isinstance(current, BaseException):
                    self._near.drop_tags(tag)  # unknown now: its dependants cannot stay
                else:
                    self._near.retire(tag, _version(current))

    def _flush(self) -> None:
        self._flushes += 1
        self._near.clear()

    def reset(self) -> None:
        """Forget the backend (it was closed); the next fill sets tracking up again."""
        self._fallback.reset()
        self._pending.clear()
        self._live = False
        self._backend = None


def _version(raw: bytes | None) -> str | None:
    # As the reads decode versions (total: foreign bytes give a version matching nothing).
    return None if raw is None else raw.decode("utf-8", "replace")
