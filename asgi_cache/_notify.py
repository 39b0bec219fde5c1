"""Wake-ups over pub/sub: `Notifier` wakes this process's waiters when another process
publishes on a channel (a lock released, a value stored).

One subscription per backend (one pub/sub connection per process, shared by every waiter)
covers every channel under a prefix and dispatches each publish to the futures waiting on
that channel. Delivery is best effort: every wait must be bounded by its caller. The L1
near-cache's invalidation subscription reuses the same subscribe-and-retry logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from ._exceptions import BackendError
from .backends.base import Backend

logger = logging.getLogger("asgi_cache")

_RESUBSCRIBE_AFTER = 1.0  # seconds between subscription attempts while Redis is unreachable


class Notifier:
    """Wakes this process's waiters when a value lands under a notify channel.

    It subscribes once per backend to every channel starting with ``prefix`` and dispatches
    each publish to the futures waiting on that channel.

    Args:
        prefix: The channel prefix of one namespace (``cache.keys.notify("")``).
        retry_after: Seconds between subscription attempts while the backend refuses.
    """

    def __init__(self, prefix: str, *, retry_after: float = _RESUBSCRIBE_AFTER) -> None:
        self.prefix = prefix
        self.retry_after = retry_after
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._backend: Backend | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def subscribe(self, backend: Backend) -> bool:
        """Make sure ``backend`` delivers this namespace's notifications; say if it does.

        A failed subscription is retried at most once per ``retry_after`` seconds, so an
        unreachable Redis does not cost every waiter a timeout.
        """
        if self._backend is backend:
            return True
        async with self._lock:
            if self._backend is backend:
                return True
            if time.monotonic() < self._retry_at:
                return False
            try:
                await backend.subscribe(self.prefix, self._deliver)
            except BackendError as exc:
                self._retry_at = time.monotonic() + self.retry_after
                logger.debug("asgi-cache: lock notifications unavailable: %s", exc)
                return False
            self._backend = backend
            return True

    def _deliver(self, channel: str) -> None:
        for future in self._waiters.pop(channel, ()):
            if not future.done():
                future.set_result(None)

    @contextlib.contextmanager
    def waiter(self, channel: str) -> Iterator[asyncio.Future[None]]:
        """A future resolved by the next publish on ``channel`` while the block runs."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(channel, set())
        waiters.add(future)
        try:
            yield future
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(channel) is waiters:
                del self._waiters[channel]
