"""Which event loop a cache's connections belong to, and what happens when it changes.

A connection (a redis-py socket, a pub/sub reader, a future a waiter sleeps on) belongs to the
event loop it was made on. A cache object often outlives that loop: a script calls
``asyncio.run`` twice, a task runner starts a loop per job, pytest gives every test its own
loop. `LoopBinding` follows the loop so that such a cache keeps working instead of
failing with asyncio's raw ``RuntimeError`` ("attached to a different loop", "Event loop is
closed"):

1. On first use in a loop the cache binds to it and starts a *guard*: a task that does
   nothing until the loop shuts down. ``asyncio.run`` (and ``asyncio.Runner``, which
   pytest-asyncio uses) cancels every task still pending before it closes the loop, so the
   guard wakes up while the loop can still run coroutines, and closes the cache there: its
   connections are closed on their own loop, and the pending invalidations get their last
   delivery attempt, as in [`aclose`][asgi_cache.Cache.aclose].
2. Used from another loop while the old one is closed or idle (a loop closed without
   cancelling its tasks, so the guard never ran), the cache *abandons* what belonged to the
   old loop: connections are dropped (they cannot be closed on a loop that is gone; redis-py
   warns about them with a ``ResourceWarning`` when they are collected) and rebuilt lazily.
3. Used from another loop while the old one is still **running** (two threads, each with its
   loop, sharing one cache), nothing can be rebound safely: that raises
   [`EventLoopError`][asgi_cache.EventLoopError], which says to build one cache per loop.

The check costs one ``asyncio.get_running_loop()`` and an identity comparison per backend
access. Only asyncio is supported (redis-py's client is asyncio-only), so anyio's trio
backend is out of scope here as everywhere in the package.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ._exceptions import EventLoopError

logger = logging.getLogger("asgi_cache")

OTHER_LOOP_RUNNING = (
    "this Cache is in use on another event loop that is still running (another thread?); "
    "its connections belong to that loop. Build one Cache per event loop (per thread), or "
    "use the cache from the loop it runs on (asyncio.run_coroutine_threadsafe)"
)
"""The message of the [`EventLoopError`][asgi_cache.EventLoopError] raised by
`LoopBinding.check`."""


class LoopBinding:
    """Follows the event loop an owner's connections belong to (see the module docs).

    Args:
        on_loop_end: Awaited on the old loop when it shuts down while bound: the owner closes
            what belongs to it (``Runtime.aclose``).
        on_abandon: Called (synchronously) when the owner is used from a new loop and the old
            one ended without the guard running: the owner drops what belongs to the old loop.
    """

    __slots__ = ("_ending", "_guard", "_loop", "_on_abandon", "_on_loop_end")

    def __init__(
        self, *, on_loop_end: Callable[[], Awaitable[None]], on_abandon: Callable[[], None]
    ) -> None:
        self._on_loop_end = on_loop_end
        self._on_abandon = on_abandon
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: asyncio.Task[None] | None = None
        self._ending: asyncio.AbstractEventLoop | None = None  # shutting down: never rebind

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the owner is bound to, or ``None`` before first use and after a close."""
        return self._loop

    def check(self) -> None:
        """Bind to the running loop, rebinding from one that ended; no-op outside a loop.

        Raises:
            EventLoopError: The owner is bound to another loop that is still running.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a synchronous caller (a property read): nothing loop-bound is touched
        bound = self._loop
        if bound is loop or loop is self._ending:
            # Bound already; or the loop is shutting down and the owner closes on it (its
            # last invalidation attempt uses the backend): a new guard would never be run.
            return
        if bound is not None:
            if bound.is_running():
                raise EventLoopError(OTHER_LOOP_RUNNING)
            # The old loop ended (or sits idle) without its tasks being cancelled, so the
            # guard never ran: what belonged to it is dropped here, not closed.
            self._forget()
            self._on_abandon()
        self._loop = loop
        self._guard = loop.create_task(self._watch(loop), name="asgi-cache event loop guard")

    def release(self) -> None:
        """Forget the loop because the owner closed; the next use binds again."""
        guard = self._guard
        self._forget()
        if guard is not None and not guard.done() and guard is not _current_task():
            guard.cancel()

    async def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await loop.create_future()  # never resolved: only a cancellation ends the wait
        except asyncio.CancelledError:
            if self._loop is loop:
                # Cancelled while still bound: the loop is shutting down (a release() would
                # have unbound first). Close on this loop while it can still run coroutines.
                self._forget()
                self._ending = loop
                try:
                    await self._on_loop_end()
                except Exception:
                    logger.warning(
                        "asgi-cache: closing at the end of an event loop failed", exc_info=True
                    )
            raise

    def _forget(self) -> None:
        self._loop = None
        self._guard = None


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None  # outside a loop: no task is running
