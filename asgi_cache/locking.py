"""Stampede protection: in-process single-flight, the distributed lock, one lock protocol.

Two layers keep a cold or expired hot key from sending a thousand loads to the database:

1. `SingleFlight` (`asgi_cache._flights`): concurrent callers of one key in one process
   share one in-flight load (an ``asyncio`` task), and its result or exception.
2. `DistributedLock`: across processes and hosts, one caller takes a Redis lock with
   ``SET key token NX PX lease``. The token is fresh for every acquisition (128 random bits),
   release is compare-and-delete in Lua (a holder never deletes its successor's lock), and a
   watchdog extends the lease while the holder works (`DistributedLock.held`). The
   token doubles as a fencing version: the value is stored by a script that refuses when the
   lock no longer holds it.

Cache-aside and the middleware take their turn at a key's lock the same way,
`Locks.turn`::

    acquire -> re-read -> hold        this caller does the work, the lock held meanwhile
                       -> found       the previous holder stored it between our read and lock
    (held elsewhere) wait -> found    the holder's value landed
                          -> timed out the holder took longer than the wait budget
                          -> released  the holder stored nothing (``take_over=False``)
                          -> (again)   the holder stored nothing: take a turn again
    (backend failed)   no lock service: go on alone

Waiters are woken by a `Notifier` when the holder publishes on
``keys.notify(key)``: one subscription per backend (one pub/sub connection per process)
dispatches to the local waiters, so nobody polls Redis while pub/sub works; when it does
not, a waiter polls with backoff. Every wait is bounded by the caller's budget in case a
notification is lost.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import anyio

from ._exceptions import BackendError
from ._notify import Notifier
from ._stats import Stats
from .backends.base import Backend
from .keys import KeySpace

logger = logging.getLogger("asgi_cache")

T = TypeVar("T")

TOKEN_BYTES = 16
"""Random bytes in a lock token (128 bits), so tokens never repeat across acquisitions."""

_POLL_FIRST: Final = 0.01  # without pub/sub, a waiter reads again after 10 ms...
_POLL_MAX: Final = 0.2  # ...doubling up to 200 ms between reads


def new_token() -> str:
    """A fresh random lock token (hex, `TOKEN_BYTES` bytes of entropy)."""
    return secrets.token_hex(TOKEN_BYTES)


class DistributedLock:
    """One acquisition of the lock ``key`` on ``backend``, with a lease-extending watchdog.

    Args:
        backend: Where the lock lives.
        key: The lock key (``cache.keys.lock(full_key)``: locks have their own key space).
        lease: Initial expiry in seconds; the watchdog renews it every third of a lease.
        on_error: Called with a description and the exception when a backend call fails.
        notify: Channel published on after `release`, to wake the waiters of this key.
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

    async def acquire(self) -> bool:
        """Try once to take the lock (``SET NX PX``); return whether this token now holds it.

        Raises:
            BackendError: The backend failed; the caller proceeds without the lock.
        """
        return await self.backend.acquire_lock(self.key, self.token, self.lease)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the acquired lock while the block runs, then release it.

        A watchdog extends the lease every third of a lease meanwhile, in an anyio task group
        with the block; however the block ends (value, exception, cancellation), the
        watchdog is cancelled and the lock released, which wakes the waiters.
        """
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._extend_forever)
                try:
                    yield
                except Exception as exc:
                    # Re-raised below as it is: out of a task group it would come wrapped in
                    # an ExceptionGroup, and callers expect their loader's own exception.
                    failure = exc
                group.cancel_scope.cancel()
        finally:
            await self.release()
        if failure is not None:
            raise failure

    async def _extend_forever(self) -> None:
        while True:
            # A timer for renewing our own lease, not a poll for the value.
            await anyio.sleep(self.lease / 3)
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
        """Release the lock if this token still holds it, then publish on ``notify``.

        Returns whether the lock was released; a backend failure is reported to
        ``on_error`` and returns ``False`` (the lease then runs out on its own).
        """
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


class TurnOutcome(enum.Enum):
    """How a turn at a key's lock ended (see `Locks.turn`)."""

    HOLD = "hold"
    """This caller holds the lock: do the work inside the turn's block (the lock is held,
    its lease extended, until the block ends)."""
    FOUND = "found"
    """Another holder's result is there: `Turn.found`."""
    TIMED_OUT = "timed out"
    """The holder took longer than the wait budget (or the caller asked not to wait)."""
    NO_LOCK = "no lock service"
    """The backend failed (counted and logged): go on alone, as without a lock."""
    RELEASED = "released"
    """The holder released the lock without storing a value and the caller asked not to
    take over (``take_over=False``): go on alone, at once."""


@dataclass(frozen=True, slots=True)
class Turn(Generic[T]):
    """The outcome of one turn at a key's lock."""

    outcome: TurnOutcome
    found: T | None = None
    """What the read found (with `TurnOutcome.FOUND`)."""
    lock: DistributedLock | None = None
    """The lock this caller holds (with `TurnOutcome.HOLD`), for fenced stores."""


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

    @contextlib.asynccontextmanager
    async def turn(
        self,
        full_key: str,
        *,
        read: Callable[[], Awaitable[T | None]],
        recheck: Callable[[], Awaitable[T | None]] | None,
        max_wait: float,
        wait: bool = True,
        take_over: bool = True,
    ) -> AsyncIterator[Turn[T]]:
        """Take a turn at ``full_key``'s lock; the block runs with its outcome.

        The one protocol of cache-aside and the middleware: try to take the lock; once held,
        ``recheck`` (the previous holder may have stored the value between the caller's
        miss and its lock: then the lock is released at once and that value is
        `FOUND`); else the caller holds it for the block. While another
        process holds it, wait (no polling while pub/sub works) until its value lands,
        ``read`` finds it, or ``max_wait`` seconds pass; a holder that released without a
        value (it failed, or lost its lease) is replaced by trying again, unless
        ``take_over`` is ``False``.

        Args:
            full_key: The entry the lock guards.
            read: Reads the entry a holder stores (``None`` while there is none).
            recheck: Run once the lock is held; ``None`` skips it (the client asked for the
                origin).
            max_wait: Longest wait for another holder, in seconds (then
                `TIMED_OUT`; nothing is cancelled).
            wait: ``False`` gives up at once when another process holds the lock (a
                background refresh: someone else is refreshing).
            take_over: ``True`` (cache-aside): a waiter woken by a holder that stored
                nothing takes its turn at the lock again, so a failed load is retried by one
                process, not by all. ``False`` (the middleware, where a response may simply
                not be storable): the waiter gets `RELEASED` and goes to
                the origin at once, as a reverse proxy's waiting list does.
        """
        turn = await self._take(full_key, read, recheck, max_wait, wait, take_over)
        if turn.lock is None:
            yield turn
            return
        async with turn.lock.held():
            yield turn

    async def _take(
        self,
        full_key: str,
        read: Callable[[], Awaitable[T | None]],
        recheck: Callable[[], Awaitable[T | None]] | None,
        max_wait: float,
        wait: bool,
        take_over: bool,
    ) -> Turn[T]:
        deadline = time.monotonic() + max_wait
        while True:
            lock = self.lock(full_key)
            try:
                acquired = await lock.acquire()
            except BackendError as exc:
                self.stats.error("lock", exc)
                return Turn(TurnOutcome.NO_LOCK)
            if acquired:
                return await self._recheck(lock, recheck)
            if not wait:
                return Turn(TurnOutcome.TIMED_OUT)
            self.stats.lock_waited()
            waited = time.monotonic()
            try:
                with self.stats.span("asgi_cache.lock_wait"):
                    found, woken = await self._wait(full_key, read, deadline)
            finally:
                self.stats.lock_wait_done(time.monotonic() - waited)
            if found is not None:
                return Turn(TurnOutcome.FOUND, found=found)
            if not woken:
                return Turn(TurnOutcome.TIMED_OUT)
            if not take_over:
                return Turn(TurnOutcome.RELEASED)
            # Woken without a value: the holder failed or lost its lease. Try to take over.

    async def _recheck(
        self, lock: DistributedLock, recheck: Callable[[], Awaitable[T | None]] | None
    ) -> Turn[T]:
        try:
            found = None if recheck is None else await recheck()
        except BaseException:
            await lock.release()
            raise
        if found is None:
            return Turn(TurnOutcome.HOLD, lock=lock)
        await lock.release()  # and wake the waiters: they read it too
        return Turn(TurnOutcome.FOUND, found=found)

    async def _wait(
        self, full_key: str, read: Callable[[], Awaitable[T | None]], deadline: float
    ) -> tuple[T | None, bool]:
        """Wait for the holder of ``full_key``'s lock: what ``read`` then finds, and whether
        the holder said it released (``False``: the budget ran out first)."""
        notifier = self.notifier
        if await self.listen():
            with notifier.waiter(self.keys.notify(full_key)) as woken:
                # Registered before this read, so a value that lands after it wakes us.
                found = await read()
                if found is not None:
                    return found, True
                with anyio.move_on_after(max(0.0, deadline - time.monotonic())) as budget:
                    await woken
            return await read(), not budget.cancelled_caught
        # No notifications (pub/sub unavailable): poll with backoff, still bounded.
        delay = _POLL_FIRST
        while (remaining := deadline - time.monotonic()) > 0:
            await anyio.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX)
            found = await read()
            if found is not None:
                return found, True
        return None, False
