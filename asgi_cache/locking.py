"""Stampede protection: in-process single-flight and the distributed lock.

Two layers keep a cold or expired hot key from sending a thousand loads to the database:

1. :class:`SingleFlight`: concurrent callers of one key in one process share one in-flight
   load (an ``asyncio`` task), and its result or exception.
2. :class:`DistributedLock`: across processes and hosts, one caller takes a Redis lock with
   ``SET key token NX PX lease``. The token is fresh for every acquisition (128 random bits),
   release is compare-and-delete in Lua (a holder never deletes its successor's lock), and a
   watchdog extends the lease while the loader still runs. The token doubles as a fencing
   version: the value is stored by a script that refuses when the lock no longer holds it.

Waiters on another process's load are woken by :class:`Notifier` when the holder publishes
on ``keys.notify(key)``: one subscription per backend (one pub/sub connection per process)
dispatches to the local waiters, so nobody polls Redis; every wait is bounded by
``lock_timeout`` in case the notification is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ._exceptions import BackendError
from ._stats import Stats
from .backends.base import Backend
from .keys import KeySpace

__all__ = ["DistributedLock", "Locks", "Notifier", "SingleFlight", "new_token"]

logger = logging.getLogger("asgi_cache")

T = TypeVar("T")

TOKEN_BYTES = 16
"""Random bytes in a lock token (128 bits), so tokens never repeat across acquisitions."""

_RESUBSCRIBE_AFTER = 1.0  # seconds between subscription attempts while Redis is unreachable


def new_token() -> str:
    """A fresh random lock token (hex, :data:`TOKEN_BYTES` bytes of entropy)."""
    return secrets.token_hex(TOKEN_BYTES)


class SingleFlight:
    """Runs at most one load per key at a time in this process; other callers share it.

    The load runs as its own task, so a caller that is cancelled (a client that went away)
    does not cancel the load the other callers are waiting on.
    """

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Task[Any]] = {}

    def in_flight(self, key: str) -> bool:
        """Whether a load of ``key`` is running."""
        return key in self._flights

    def start(self, key: str, fn: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Return the running load of ``key``, starting ``fn()`` as it if there is none."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._flights[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        return task

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Join the load of ``key`` (starting ``fn()`` if none runs) and return its result.

        Raises:
            Exception: Whatever the load raised; every caller sharing it gets the exception.
        """
        task: asyncio.Task[T] = self.start(key, fn)
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            # Mark the exception retrieved: the callers that awaited it already have it, and
            # a load whose callers all left should not log "exception was never retrieved".
            task.exception()


class DistributedLock:
    """One acquisition of the lock ``key`` on ``backend``, with a lease-extending watchdog.

    Args:
        backend: Where the lock lives.
        key: The lock key (``cache.keys.lock(full_key)``: locks have their own key space).
        lease: Initial expiry in seconds; the watchdog renews it every third of a lease.
        on_error: Called with a description and the exception when a backend call fails.
        notify: Channel published on after :meth:`release`, to wake the waiters of this key.
    """

    def __init__(
        self,
        backend: Backend,
        key: str,
        *,
        lease: float,
        on_error: Callable[[str, BaseException], None],
        notify: str | None = None,
    ) -> None:
        self.backend = backend
        self.notify = notify
        self.key = key
        self.lease = lease
        self.token = new_token()
        self.lost = False
        """Set when the watchdog found the lock taken away (expired, or another holder)."""
        self._on_error = on_error
        self._watchdog: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        """Try once to take the lock (``SET NX PX``); return whether this token now holds it.

        Raises:
            BackendError: The backend failed; the caller proceeds without the lock.
        """
        return await self.backend.acquire_lock(self.key, self.token, self.lease)

    def start_watchdog(self) -> None:
        """Keep extending the lease until :meth:`release`."""
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._extend_forever())

    async def _extend_forever(self) -> None:
        while True:
            # A timer for renewing our own lease, not a poll for the value.
            await asyncio.sleep(self.lease / 3)
            try:
                held = await self.backend.extend_lock(self.key, self.token, self.lease)
            except BackendError as exc:
                self._on_error("lock extend", exc)
                continue
            if not held:
                self.lost = True
                logger.warning(
                    "asgi-cache: lost the lock %r while loading; the value will not be stored",
                    self.key,
                )
                return

    async def release(self) -> bool:
        """Stop the watchdog and release the lock if this token still holds it.

        Then publishes on ``notify`` when it is set. Returns whether the lock was released;
        a backend failure is reported to
        ``on_error`` and returns ``False`` (the lease then runs out on its own).
        """
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        try:
            released = await self.backend.release_lock(self.key, self.token)
        except BackendError as exc:
            self._on_error("unlock", exc)
            released = False
        if self.notify is not None:
            # Wake the waiters whether the holder's work succeeded or not: on success they
            # read the value, on failure one of them takes over instead of waiting it out.
            try:
                await self.backend.publish(self.notify)
            except BackendError as exc:
                self._on_error("notify", exc)
        return released


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


class Locks:
    """The distributed locks of one cache: building them and waking their waiters.

    Args:
        backend: Returns the cache's backend (built on first use, rebuilt after a close).
        keys: The namespace's key space (locks and notify channels have their own).
        lease: Initial expiry of a lock, in seconds; the watchdog renews it.
        stats: Where lock waits and failures are reported.
    """

    def __init__(
        self, backend: Callable[[], Backend], keys: KeySpace, *, lease: float, stats: Stats
    ) -> None:
        self._backend = backend
        self.keys = keys
        self.lease = lease
        self.stats = stats
        self.notifier = Notifier(keys.notify(""))
        """Wakes this process's waiters (one subscription per backend, shared by cache-aside
        and the middleware)."""

    def lock(self, full_key: str) -> DistributedLock:
        """A fresh (not yet acquired) lock guarding ``full_key``, in the lock key space.

        Its release publishes on ``full_key``'s notify channel, waking the waiters of every
        process.
        """
        return DistributedLock(
            self._backend(),
            self.keys.lock(full_key),
            lease=self.lease,
            on_error=self.stats.error,
            notify=self.keys.notify(full_key),
        )

    async def listen(self) -> bool:
        """Make sure this process hears lock releases; say whether it does."""
        return await self.notifier.subscribe(self._backend())
