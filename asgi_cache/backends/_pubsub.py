"""The Redis backend's subscriber: one pub/sub connection and one reader per backend.

Every ``subscribe`` of a [`RedisBackend`][asgi_cache.backends.RedisBackend] shares one pub/sub
connection (one ``PSUBSCRIBE`` per prefix) read by one background task, which dispatches each
message to the callbacks of the prefixes it matches. After a fault redis-py reconnects and
resubscribes on the next read; until Redis confirms again publishes are missed, so every
waiter bounds its wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .._exceptions import BackendError
from .._tasks import BackgroundTasks

Run = Callable[[str, Awaitable[Any]], Awaitable[Any]]
"""Runs one operation under the backend's budget and error mapping."""


class Subscriber:
    """The pub/sub side of one Redis backend.

    Args:
        client: The backend's client (its pool provides the subscriber connection).
        run: The backend's operation runner (budget and error mapping).
    """

    def __init__(self, client: aioredis.Redis, run: Run) -> None:
        self._client = client
        self._run = run
        self._callbacks: list[tuple[str, Callable[[str], None]]] = []
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader = BackgroundTasks("redis pub/sub reader")
        self._confirmed: dict[str, asyncio.Event] = {}

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        """See [`Backend.subscribe`][asgi_cache.backends.Backend.subscribe]."""
        pattern = glob_escape(prefix) + "*"
        confirmed = self._confirmed.get(pattern)
        if confirmed is None:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub()
            # Registered first: the reader may see the confirmation before psubscribe returns.
            confirmed = self._confirmed[pattern] = asyncio.Event()
            try:
                await self._run("PSUBSCRIBE", self._pubsub.psubscribe(pattern))
            except BackendError:
                del self._confirmed[pattern]
                raise
            if not self._reader:
                pubsub = self._pubsub
                self._reader.start_soon(lambda: self._read_messages(pubsub))
        if (prefix, callback) not in self._callbacks:
            self._callbacks.append((prefix, callback))
        # Redis confirms a subscription on the subscriber connection; only after that is a
        # PUBLISH from another connection guaranteed to reach it.
        await self._run("PSUBSCRIBE", confirmed.wait())

    async def _read_messages(self, pubsub: aioredis.client.PubSub) -> None:
        failures = 0
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except Exception:
                # Connection lost: redis-py reconnects and resubscribes on the next read.
                # Until Redis confirms again, publishes are missed; waiters bound their waits.
                for event in self._confirmed.values():
                    event.clear()
                failures += 1
                await anyio.sleep(min(2.0, 0.05 * 2**failures))
                continue
            failures = 0
            if message is None:  # pragma: no cover - only with health checks enabled
                continue
            kind = message["type"]
            if kind == "psubscribe":
                pending = self._confirmed.get(_text(message["channel"]))
                if pending is not None:
                    pending.set()
            elif kind == "pmessage":
                channel = _text(message["channel"])
                for prefix, callback in list(self._callbacks):
                    if channel.startswith(prefix):
                        callback(channel)

    async def aclose(self) -> None:
        """Stop the reader and close the subscriber connection (a later subscribe reopens)."""
        pubsub, self._pubsub = self._pubsub, None
        self._callbacks.clear()
        self._confirmed.clear()
        await self._reader.aclose()
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: bytes | str) -> str:
    # Total: a foreign publish on a channel that is not UTF-8 must not stop the reader.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for ``SCAN MATCH`` and ``PSUBSCRIBE``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
