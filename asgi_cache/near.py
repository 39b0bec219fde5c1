"""The in-process L1 near-cache: decoded entries of hot keys, kept next to the code.

With ``l1_ttl`` > 0 (and a Redis backend), the entry store (`Store.read`, behind every read of the
middleware, ``get`` and ``get_or_load``) answers a key it read recently from a bounded LRU dict in
this process, without a Redis round trip. An L1 entry is served until the earlier of
``l1_ttl`` after it was read and the end of the entry's freshness; a stale entry is never
served from L1 (it goes to Redis, where a refresh may already have replaced it).

Invalidation:

- In this process, synchronously: a tag invalidation or [`clear`][asgi_cache.Cache.clear]
  empties the whole L1 (entries do not remember their tags here, and being coarse is never
  wrong); a delete or a store drops that key. Each of these also bumps a generation counter,
  so a backend read that was in flight when it happened does not put its (possibly older)
  result into L1 afterwards.
- Across processes, best effort: the same events are published on the namespace's
  invalidation channels, ``<ns>:i:<sender>:`` (empty every L1) and
  ``<ns>:i:<sender>:<full key>`` (drop one key), and every other process's subscriber
  applies them (``<sender>`` is a random id per cache, so a process does not drop again
  what it has refilled since its own invalidation). L1 is filled only once this process is
  subscribed. A message lost while Redis or the subscriber connection is down is not
  replayed: another process may then serve an entry for up to ``l1_ttl`` after the
  invalidation. That bound is why L1 is off by default (see ``docs/near-cache.md``).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from ._entries import Entry
from ._notify import Notifier


class NearCache:
    """A bounded LRU of decoded entries with an expiry each, for one [`Cache`][asgi_cache.Cache].

    Args:
        ttl: Longest time in seconds an entry is served from here after it was read.
        max_entries: Most entries kept; the least recently used is evicted beyond it.
        channel_prefix: The namespace's invalidation channel prefix (``<ns>:i:``).
        clock: Unix time source (``time.time``; tests pass their own).
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        channel_prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.channel_prefix = channel_prefix
        self.sender = secrets.token_hex(8)
        """This cache's id in the channels it publishes on."""
        self.generation = 0
        """Bumped by every drop; a fill started under an older generation is discarded."""
        self.hits = 0
        self.evictions = 0
        """Entries dropped to stay within ``max_entries`` (least recently used first)."""
        self._entries: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self.subscription = _Subscription(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, full_key: str) -> Entry | None:
        """The entry under ``full_key`` if held and not expired; ``None`` otherwise."""
        item = self._entries.get(full_key)
        if item is None:
            return None
        if self.clock() >= item[1]:
            del self._entries[full_key]
            return None
        self._entries.move_to_end(full_key)
        self.hits += 1
        return item[0]

    def put(self, full_key: str, entry: Entry, generation: int) -> None:
        """Keep ``entry`` if it is fresh and nothing was dropped since ``generation``."""
        if generation != self.generation:
            return  # an invalidation happened while this entry was being read
        expires = min(self.clock() + self.ttl, entry.fresh_until)
        if expires <= self.clock():
            return
        self._entries[full_key] = (entry, expires)
        self._entries.move_to_end(full_key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def drop(self, *full_keys: str) -> None:
        """Forget ``full_keys`` (a store or delete of them)."""
        self.generation += 1
        for key in full_keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (a tag invalidation, a clear, or a lost message's fallback)."""
        self.generation += 1
        self._entries.clear()

    def channel(self, full_key: str = "") -> str:
        """The channel dropping ``full_key`` everywhere, or emptying every L1 if empty."""
        return f"{self.channel_prefix}{self.sender}:{full_key}"

    def on_message(self, channel: str) -> None:
        """Apply an invalidation published by another cache (its own are already applied)."""
        sender, _, key = channel[len(self.channel_prefix) :].partition(":")
        if sender == self.sender:
            return
        if key:
            self.drop(key)
        else:
            self.clear()


class _Subscription(Notifier):
    """The namespace's invalidation subscription (the lock notifier's retry logic, with
    every message applied to the L1 instead of waking waiters)."""

    def __init__(self, near: NearCache) -> None:
        super().__init__(near.channel_prefix)
        self._near = near

    def _deliver(self, channel: str) -> None:
        self._near.on_message(channel)

    def reset(self) -> None:
        """Forget the subscription (its backend was closed); the next fill resubscribes."""
        self._backend = None
