"""The Redis backend's subscriber: one pub/sub connection and one reader per backend.

Every ``subscribe`` of a [`RedisBackend`][asgi_cache.backends.RedisBackend] shares one pub/sub
connection (one ``PSUBSCRIBE`` per prefix) read by one background task, which dispatches each
message to the callbacks of the prefixes it matches. After a fault redis-py reconnects and
resubscribes on the next read; until Redis confirms again publishes are missed, so every
waiter bounds its wait.

What was missed is announced: every callback is called with ``SUBSCRIPTION_LOST`` (from
`asgi_cache.backends.base`) when the reader finds the connection broken, and with
``SUBSCRIPTION_RESTORED`` when Redis confirms its pattern again after a reconnect (whether
or not the loss was seen: redis-py may reconnect inside one read). With ``ping_interval``, a
connection quiet for that long is sent a ``PING``; no ``PONG`` within one more interval (a
paused or unreachable server, a half-open socket) counts as lost: the connection is dropped
and made again.
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
from .._validate import seconds
from .base import SUBSCRIPTION_LOST, SUBSCRIPTION_RESTORED

Run = Callable[[str, Awaitable[Any]], Awaitable[Any]]
"""Runs one operation under the backend's budget and error mapping."""


class Subscriber:
    """The pub/sub side of one Redis backend.

    Args:
        client: The backend's client (its pool provides the subscriber connection).
        run: The backend's operation runner (budget and error mapping).
        ping_interval: Seconds of silence after which the connection is pinged (and after
            which a missing pong counts as a lost connection); ``None``: never pinged.
    """

    def __init__(
        self, client: aioredis.Redis, run: Run, *, ping_interval: float | None = None
    ) -> None:
        if ping_interval is not None:
            seconds().require("ping_interval", ping_interval)
        self._client = client
        self._run = run
        self.ping_interval = ping_interval
        self.reconnects = 0
        """Times the subscription was confirmed again after a reconnect."""
        self.missed_pongs = 0
        """Times a ping went unanswered for a whole interval (the connection was dropped)."""
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
        lost: set[str] = set()  # the patterns not confirmed since a loss was announced
        pinged = False  # a ping is waiting for its pong
        while True:
            try:
                message = await pubsub.get_message(timeout=self.ping_interval)
                if message is None:  # quiet for a whole ping interval
                    if pinged:
                        self.missed_pongs += 1
                        raise _MissedPong
                    await pubsub.ping()
                    pinged = True
                    continue
            except Exception as exc:
                # Connection lost: redis-py reconnects and resubscribes on the next read.
                # Until Redis confirms again, publishes are missed; waiters bound their waits.
                for event in self._confirmed.values():
                    event.clear()
                if not lost:
                    lost = set(self._confirmed)
                    self._announce(SUBSCRIPTION_LOST)
                pinged = False
                if isinstance(exc, _MissedPong) and pubsub.connection is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.connection.disconnect()
                failures += 1
                await anyio.sleep(min(2.0, 0.05 * 2**failures))
                continue
            failures = 0
            kind = message["type"]
            if kind == "pong":
                pinged = False
            elif kind == "psubscribe":
                pinged = False
                pattern = _text(message["channel"])
                pending = self._confirmed.get(pattern)
                if pending is not None:
                    again = pending.is_set() or pattern in lost
                    pending.set()
                    lost.discard(pattern)
                    if again:
                        # Confirmed again: the connection was made anew, and what was
                        # published on this pattern in between is gone.
                        self.reconnects += 1
                        self._announce(SUBSCRIPTION_RESTORED, pattern)
            elif kind == "pmessage":
                deliver(self._callbacks, _text(message["channel"]))

    def _announce(self, event: str, pattern: str | None = None) -> None:
        for prefix, callback in list(self._callbacks):
            if pattern is None or glob_escape(prefix) + "*" == pattern:
                callback(event)

    async def aclose(self) -> None:
        """Stop the reader and close the subscriber connection (a later subscribe reopens)."""
        pubsub, self._pubsub = self._pubsub, None
        self._callbacks.clear()
        self._confirmed.clear()
        await self._reader.aclose()
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


class _MissedPong(Exception):
    """No pong came within a ping interval: the connection is treated as lost."""


def deliver(callbacks: list[tuple[str, Callable[[str], None]]], channel: str) -> None:
    """Call every callback whose prefix ``channel`` starts with."""
    for prefix, callback in list(callbacks):
        if channel.startswith(prefix):
            callback(channel)


def _text(value: bytes | str) -> str:
    # Total: a foreign publish on a channel that is not UTF-8 must not stop the reader.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for ``SCAN MATCH`` and ``PSUBSCRIBE``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
