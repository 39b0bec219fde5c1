"""Work the library runs on its own: refreshes, probes, retries, subscribers.

Such work outlives the request or call that started it (a stale response is served at once
and refreshed behind it), so it cannot run in the caller's task. It runs in one anyio task
group per owner instead (`BackgroundTasks`): closing the owner cancels everything
still running through the group's cancel scope and waits for it to unwind, and one job's
failure is logged without touching the others.

anyio has no task outside a task group, and a cache may be used without ever being started
(scripts, tests) or on several event loops in turn, so the group is hosted by one asyncio
task started on first use. The host ends when the last job does, so an idle owner holds no
task at all; the next job starts a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

logger = logging.getLogger("asgi_cache")

Job = Callable[[], Awaitable[object]]


class BackgroundTasks:
    """The background jobs of one owner, in one anyio task group.

    Args:
        what: What the jobs are, for the host task's name and failure logs.
    """

    __slots__ = ("_group", "_host", "_pending", "_running", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self._group: TaskGroup | None = None
        self._host: asyncio.Task[None] | None = None
        self._pending: list[Job] = []
        self._running = 0

    def __len__(self) -> int:
        """How many jobs are started and not finished."""
        return self._running

    def start_soon(self, job: Job) -> None:
        """Run ``job()`` in the background, starting the host if none runs."""
        loop = asyncio.get_running_loop()
        host = self._host
        if host is not None and host.get_loop() is not loop:
            self._forget()  # the host ran on an event loop that is gone
        self._running += 1
        group = self._group
        if group is not None:
            group.start_soon(self._run, job)
            return
        self._pending.append(job)
        if self._host is None:
            self._host = loop.create_task(self._serve(), name=f"asgi-cache {self.what}")

    async def _serve(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                pending, self._pending = self._pending, []
                for job in pending:
                    group.start_soon(self._run, job)
            # Leaving the block waited for every job, those started meanwhile included.
        finally:
            self._group = None
            self._host = None

    async def _run(self, job: Job) -> None:
        try:
            await job()
        except Exception:
            # Each job's failure is its own: the task group must not cancel the others.
            logger.warning("asgi-cache: %s failed", self.what, exc_info=True)
        finally:
            self._running -= 1

    async def drain(self) -> None:
        """Wait until no job runs, those started meanwhile included (shutdown, tests)."""
        while (host := self._host) is not None and host.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([host])

    async def aclose(self) -> None:
        """Cancel every job and wait for them to unwind; the owner may start jobs again."""
        host, group = self._host, self._group
        if host is not None and host.get_loop() is asyncio.get_running_loop():
            if group is not None:
                group.cancel_scope.cancel()
            else:
                host.cancel()  # not started yet: its jobs never run
            await asyncio.wait([host])  # our own cancellation still raises here
        self._forget()

    def _forget(self) -> None:
        self._group = None
        self._host = None
        self._pending = []
        self._running = 0
