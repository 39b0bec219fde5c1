"""Automatic batching of concurrent reads: one round trip for the reads of many requests.

Under load a process has many requests looking up entries at once. Sending each lookup as
its own command costs a pooled-connection checkout and a round trip per request; most of a
Redis hit is that client overhead, not Redis. `ReadBatcher` keeps at most one read in
flight per process: a read that finds the way clear goes at once, alone (no added latency when
there is no concurrency); reads that arrive while one is in flight queue up and go out
together, as one pipeline, the moment it returns. The batch size follows the load by itself,
without timers: the longer a round trip, the more reads share the next one. Right after a
batch, whose callers resume together and mostly read again, the next read waits one event-loop
tick for them instead of going alone (once a lone read follows, reads go at once again).

Each caller gets its own reply or its own error: a failing command fails only its caller, a
failing round trip fails every caller in it, and a caller that gives up (its timeout, a
cancellation) leaves the others unaffected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

ReadOne = Callable[[str], Awaitable[Any]]
ReadMany = Callable[[Sequence[str]], Awaitable[Sequence[Any]]]
"""Reads many keys in one round trip; an item that is an exception is that key's failure."""
_Pending = tuple[str, "asyncio.Future[Any]", float]  # key, its caller's future, deadline


class ReadBatcher:
    """Coalesces concurrent reads into one in-flight round trip at a time.

    Args:
        read_one: Reads one key (used when no other read is in flight).
        read_many: Reads many keys in one round trip (a pipeline).
        timeout: Budget in seconds of one read, from the call, waiting for a batch included;
            a read that takes longer fails with `TimeoutError`.
    """

    __slots__ = (
        "_busy",
        "_contended",
        "_deferred",
        "_pending",
        "_read_many",
        "_read_one",
        "_tasks",
        "batches",
        "round_trips",
        "timeout",
    )

    def __init__(self, read_one: ReadOne, read_many: ReadMany, *, timeout: float) -> None:
        self._read_one = read_one
        self._read_many = read_many
        self.timeout = timeout
        self._busy = False
        self._contended = False  # the last round trip was a batch: more reads are coming
        self._deferred = False  # a flush is waiting one tick for them
        self._pending: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.round_trips = 0
        """How many round trips (single reads and batches) were sent."""
        self.batches = 0
        """How many of them were batches (pipelines of two or more reads)."""

    async def read(self, key: str) -> Any:
        """Read ``key``: alone if nothing is in flight, else with the next batch.

        Every read is bounded by ``timeout`` from the moment it is asked, waiting included;
        a read that runs out fails with `TimeoutError`.
        """
        loop = asyncio.get_running_loop()
        if not self._busy and not self._contended:
            self._busy = True
            self.round_trips += 1
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._read_one(key)
            finally:
                self._busy = False
                self._next()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((key, future, loop.time() + self.timeout))
        if not self._busy:
            self._defer()
        return await future

    def _defer(self) -> None:
        # The last round trip was a batch: its callers resume in this very tick and most read
        # again. Gather them for one tick rather than sending one read alone and the others a
        # round trip later.
        self._busy = True
        self._deferred = True
        asyncio.get_running_loop().call_soon(self._release)

    def _release(self) -> None:
        self._busy = False
        self._next()

    def _next(self) -> None:
        pending = self._pending
        if not pending or self._busy:
            return
        if len(pending) == 1 and self._contended and not self._deferred:
            self._defer()
            return
        self._deferred = False
        self._pending = []
        self._busy = True
        self._contended = len(pending) > 1
        task = asyncio.get_running_loop().create_task(self._send(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        # One round trip for the callers still waiting, under their earliest deadline (one
        # timer per round trip, not one per read); a lone one uses the single read.
        live = [item for item in batch if not item[1].done()]
        try:
            if not live:
                return
            self.round_trips += 1
            keys = [key for key, _, _ in live]
            results: Sequence[Any]
            async with asyncio.timeout_at(min(deadline for _, _, deadline in live)):
                if len(live) == 1:
                    results = [await self._read_one(keys[0])]
                else:
                    self.batches += 1
                    results = await self._read_many(keys)
            for (_, future, _), result in zip(live, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        except BaseException as exc:
            # A cancelled round trip (the backend closing) must not leave its callers waiting,
            # nor pass them a cancellation that is not theirs: they get a connection error.
            error = exc if isinstance(exc, Exception) else ConnectionError("read cancelled")
            for _, future, _ in live:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._busy = False
            self._next()

    async def aclose(self) -> None:
        """Wait for the batches in flight (their callers are still waiting for them)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
