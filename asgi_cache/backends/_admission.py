"""A bound on the operations one backend has in flight in this process.

redis-py's cluster client and its Sentinel-managed pool raise at once when a pool is full,
instead of waiting for a connection as the single-node backend's ``BlockingConnectionPool``
does. `Admission` restores the single-node behaviour in front of them: at most
``limit`` operations run at once (each holds at most one connection per node, so no pool
overflows), and an operation that finds no place within ``wait`` seconds fails with
[`BackendBusyError`][asgi_cache.BackendBusyError]: the cache fails open, and the circuit
breaker does not count it (this process is saturated, Redis is not at fault).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from .._exceptions import BackendBusyError


class Admission:
    """At most ``limit`` operations at once, each waiting at most ``wait`` seconds to start.

    Args:
        name: The backend's name, for the busy message.
        limit: Operations in flight at once.
        wait: Longest wait in seconds for a place (0: none).
    """

    __slots__ = ("_slots", "limit", "name", "wait")

    def __init__(self, name: str, *, limit: int, wait: float) -> None:
        self.name = name
        self.limit = limit
        self.wait = wait
        self._slots = asyncio.Semaphore(limit)

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Await ``coro`` once a place is free; raise ``BackendBusyError`` (closing ``coro``
        unstarted) when none comes free in time."""
        try:
            await self._enter()
        except BaseException:
            coro.close()  # never started: no "never awaited" warning
            raise
        try:
            return await coro
        finally:
            self._slots.release()

    async def _enter(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a place is free: no wait
            return
        busy = BackendBusyError(
            f"{self.name}: {self.limit} operations in flight, none finished within the pool wait"
        )
        if self.wait <= 0:
            raise busy
        try:
            async with asyncio.timeout(self.wait):
                await self._slots.acquire()
        except TimeoutError:
            raise busy from None
