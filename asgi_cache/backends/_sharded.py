"""Pub/sub of the cluster backend: sharded channels (``SPUBLISH``/``SSUBSCRIBE``, Redis 7).

Classic pub/sub on Redis Cluster broadcasts every message over the cluster bus to every node,
and a classic subscriber hangs on one node: when that node dies, it hears nothing again. A
sharded channel lives in one slot, so a message goes to the slot's master (and its replicas)
only, and redis-py moves a sharded subscription to the slot's new master after a failover.

Sharded channels have no patterns, while a backend's subscriptions are by prefix (the L1's
``<ns>:i:``, the lock wake-ups' ``<ns>:n:``). So every message goes on one of
`SHARDS` fixed bus channels, ``asgi-cache:bus:{0}`` ... ``{15}`` (spread over the masters
by their hash tags), chosen by a hash of its channel, and carries its channel as payload;
each backend subscribes to all of them once and dispatches by prefix, as the single-node
subscriber does. A publish costs one ``SPUBLISH`` to one master; every process sharing the
cluster hears every message (as with classic pub/sub) and keeps those it subscribed to.

One reader task per node the subscriptions live on (one connection each) reads that node;
a supervisor starts readers for nodes that appear (after a failover the subscriptions move to
the promoted replica) and lets the others end. Until a moved subscription is confirmed again,
messages are missed: every callback hears `SUBSCRIPTION_LOST` when a reader fails and
`SUBSCRIPTION_RESTORED` once every bus channel it carried is confirmed again (the L1 empties
itself on both), and every lock waiter bounds its wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable
from typing import Any, Final

from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from .._tasks import BackgroundTasks
from ._pubsub import Run, _text, deliver
from .base import SUBSCRIPTION_LOST, SUBSCRIPTION_RESTORED

SHARDS: Final = 16
"""Bus channels the messages of every namespace are spread over."""
BUS: Final = tuple(f"asgi-cache:bus:{{{i}}}" for i in range(SHARDS))
"""The bus channels' names (a hash tag each, so each has a slot of its own)."""
_SUPERVISE_EVERY = 0.5
_READ_WAIT = 0.5


def bus_channel(channel: str) -> str:
    """The bus channel that carries the messages of ``channel``."""
    return BUS[zlib.crc32(channel.encode()) % SHARDS]


class ShardedSubscriber:
    """The sharded pub/sub side of one cluster backend.

    Args:
        client: The backend's cluster client.
        run: The backend's operation runner (budget, admission, error mapping).
    """

    def __init__(self, client: RedisCluster, run: Run) -> None:
        self._client = client
        self._run = run
        self._callbacks: list[tuple[str, Callable[[str], None]]] = []
        self._pubsub: ClusterPubSub | None = None
        self._confirmed = asyncio.Event()
        self._confirmations: set[str] = set()
        self._readers: set[str] = set()
        self._lost: set[str] = set()  # bus channels not confirmed since a reader failed
        self.reconnects = 0
        """How many times every bus channel was confirmed again after a loss."""
        self._tasks = BackgroundTasks("redis-cluster sharded pub/sub reader")

    async def publish(self, channel: str) -> None:
        """See [`Backend.publish`][asgi_cache.backends.Backend.publish]."""
        await self._run("SPUBLISH", self._client.spublish(bus_channel(channel), channel))

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        """See [`Backend.subscribe`][asgi_cache.backends.Backend.subscribe]."""
        if (prefix, callback) not in self._callbacks:
            self._callbacks.append((prefix, callback))
        if self._pubsub is None:
            # SSUBSCRIBE picks each channel's node from the slot map: fetch it first.
            await self._run("connect", self._client.initialize())
            pubsub = self._pubsub = self._client.pubsub()
            try:
                await self._run("SSUBSCRIBE", pubsub.ssubscribe(*BUS))
            except BaseException:
                self._pubsub = None
                with contextlib.suppress(RedisError, RedisClusterException, OSError):
                    await pubsub.aclose()
                raise
            self._tasks.start_soon(lambda: self._supervise(pubsub))
        # Every bus channel confirmed on its node: a publish that follows is delivered.
        await self._run("SSUBSCRIBE", self._confirmed.wait())

    async def _supervise(self, pubsub: ClusterPubSub) -> None:
        while True:
            for name in list(pubsub.node_pubsub_mapping):
                if name not in self._readers:
                    self._readers.add(name)
                    self._tasks.start_soon(lambda n=name: self._read(pubsub, n))  # type: ignore[misc]
            await asyncio.sleep(_SUPERVISE_EVERY)

    async def _read(self, pubsub: ClusterPubSub, name: str) -> None:
        failures = 0
        try:
            while name in pubsub.node_pubsub_mapping:
                node = self._client.get_node(node_name=name)
                if node is None:
                    return
                try:
                    message = await pubsub.get_sharded_message(target_node=node, timeout=_READ_WAIT)
                except Exception:
                    # (connection errors, a KeyError from a slot map being rebuilt). The
                    # node is gone or failing over: move its subscriptions to the new
                    # owner of their slots, whose reader the supervisor starts.
                    self._confirmed.clear()
                    failures += 1
                    await self._follow_slots(pubsub)
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                    continue
                failures = 0
                if message is not None:
                    self._dispatch(message)
        finally:
            self._readers.discard(name)

    async def _follow_slots(self, pubsub: ClusterPubSub) -> None:
        # A subscriber sends no commands, so nothing refreshes its client's slot map: refresh
        # it here, then subscribe again, which moves each channel whose slot changed owner
        # (redis-py's lazy re-route); a confirmation comes from the new owner.
        with contextlib.suppress(TimeoutError, RedisError, RedisClusterException, OSError):
            async with asyncio.timeout(_READ_WAIT * 4):
                await self._client.nodes_manager.initialize()
                await pubsub.ssubscribe(*BUS)

    def _lose(self, pubsub: ClusterPubSub, name: str) -> None:
        # What the failing node carried is missed until confirmed again elsewhere.
        node_pubsub = pubsub.node_pubsub_mapping.get(name)
        channels = {_text(c) for c in getattr(node_pubsub, "shard_channels", {})} or set(BUS)
        if not self._lost:
            self._announce(SUBSCRIPTION_LOST)
        self._lost |= channels

    def _announce(self, event: str) -> None:
        for _, callback in list(self._callbacks):
            callback(event)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = _text(message["type"])
        if kind == "ssubscribe":
            channel = _text(message["channel"])
            self._confirmations.add(channel)
            if len(self._confirmations) >= SHARDS:
                self._confirmed.set()
            if channel in self._lost:
                self._lost.discard(channel)
                if not self._lost:  # every bus channel confirmed again after a loss
                    self.reconnects += 1
                    self._announce(SUBSCRIPTION_RESTORED)
        elif kind == "smessage":
            deliver(self._callbacks, _text(message["data"]))

    async def aclose(self) -> None:
        """Stop the readers and close the subscriber connections."""
        pubsub, self._pubsub = self._pubsub, None
        self._callbacks.clear()
        self._confirmations.clear()
        self._confirmed.clear()
        self._lost.clear()
        await self._tasks.aclose()
        self._readers.clear()
        if pubsub is not None:
            with contextlib.suppress(RedisError, RedisClusterException, OSError):
                await pubsub.aclose()
