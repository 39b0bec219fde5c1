"""In-process single-flight: concurrent callers of one key share one load.

The first layer of stampede protection (`asgi_cache.locking` has the second, the distributed
lock): one ``asyncio`` task per key runs the load, and every caller of that key in this
process awaits its result or exception. A caller may refuse a running load that is too old
for it (``outdated``: this process wrote since the load started), which starts a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """Runs at most one load per key at a time in this process; other callers share it.

    The load runs as its own task, so a caller that is cancelled (a client that went away)
    does not cancel the load the other callers are waiting on. (A plain ``asyncio`` task on
    purpose: its callers await one shared result, which anyio's structured tasks do not
    hand out.)
    """

    def __init__(self) -> None:
        self._flights: dict[str, tuple[asyncio.Task[Any], int]] = {}  # the load, its mark

    def in_flight(self, key: str) -> bool:
        """Whether a load of ``key`` is running."""
        return key in self._flights

    def start(
        self,
        key: str,
        fn: Callable[[], Awaitable[T]],
        *,
        mark: int = 0,
        outdated: Callable[[int], bool] | None = None,
    ) -> asyncio.Task[T]:
        """Return the running load of ``key``, starting ``fn()`` as it if there is none.

        ``mark``: a mark of the caller's (see `asgi_cache._tags.Tags.mark`) recorded with a
        load it starts. ``outdated``: given a running load's mark, whether the caller must
        not share it (a write since it started may make its result older than the caller
        may see); then a new load starts, and later callers share that one.
        """
        running = self._flights.get(key)
        if (
            running is None
            or running[0].get_loop() is not asyncio.get_running_loop()
            or (outdated is not None and outdated(running[1]))
        ):
            # None running, one left by an event loop that ended without finishing it
            # (awaiting it from this loop would raise), or one too old: start afresh.
            task = asyncio.ensure_future(fn())
            self._flights[key] = (task, mark)
            task.add_done_callback(lambda t: self._finished(key, t))
            return task
        found: asyncio.Task[T] = running[0]
        return found

    async def run(
        self,
        key: str,
        fn: Callable[[], Awaitable[T]],
        *,
        mark: int = 0,
        outdated: Callable[[int], bool] | None = None,
    ) -> T:
        """Join the load of ``key`` (starting ``fn()`` if none runs, or if the running one is
        ``outdated``: see `start`) and return its result.

        Raises:
            Exception: Whatever the load raised; every caller sharing it gets the exception.
        """
        task: asyncio.Task[T] = self.start(key, fn, mark=mark, outdated=outdated)
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        running = self._flights.get(key)
        if running is not None and running[0] is task:
            del self._flights[key]
        if not task.cancelled():
            # Mark the exception retrieved: the callers that awaited it already have it, and
            # a load whose callers all left should not log "exception was never retrieved".
            task.exception()
