"""The in-process L1 near-cache: decoded entries of hot keys, kept next to the code.

With ``l1_ttl`` > 0 (and a Redis backend), the entry store (`Store.read`, behind every read
of the middleware, ``get`` and ``get_or_load``) answers a key it read recently from this
process's memory, without a Redis round trip. An L1 entry is served until the earlier of
``l1_ttl`` after it was read and the end of the entry's freshness; a stale entry is never
served from L1 (it goes to Redis, where a refresh may already have replaced it).

Bounds and admission: at most ``l1_max_entries`` entries and ``l1_max_bytes`` bytes (body,
metadata and key). When a new entry does not fit, expired entries go first, then the least
recently used ones, but only while the newcomer was asked for more often than the entry it
would evict (a TinyLFU filter, `FrequencySketch`): a burst of
one-off keys never pushes the hot ones out.

Invalidation is precise: every L1 entry remembers the tag keys its stored value depends on
(the Redis read returns them with the entry), and a reverse index maps each tag key to its
dependants, so invalidating ``users:42`` drops only what depends on ``users:42``.

- In this process, synchronously: a tag invalidation drops the dependants of those tags, a
  delete or a store drops that key, [`clear`][asgi_cache.Cache.clear] (the namespace tag)
  empties the L1. Each of them also records a generation, so a backend read that was in
  flight when it happened does not put its (possibly older) result into L1 afterwards
  (`NearCache.put` checks the key and its tags against what was dropped since).
- Across processes, best effort: the same events are published on the namespace's
  invalidation channels, ``<ns>:i:<sender>:`` (empty every L1), ``<ns>:i:<sender>:<full
  key>`` (drop one key) and ``<ns>:i:<sender>:<tag key>`` (drop a tag's dependants), and
  every other process's subscriber applies them (``<sender>`` is a random id per cache, so a
  process does not drop again what it has refilled since its own invalidation). L1 is
  filled only once this process is subscribed. A message lost while Redis or the subscriber
  connection is down is not replayed: another process may then serve an entry for up to
  ``l1_ttl`` after the invalidation (see ``docs/near-cache.md``).
- Or, with ``invalidation="tracking"``, from Redis itself (``CLIENT TRACKING``): every
  change of an entry or tag key by any client, expiry and eviction included
  (`asgi_cache._near_tracking`); the messages above are still published, for processes in
  pub/sub mode.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple

from ._entries import Entry
from ._frequency import FrequencySketch
from ._near_tracking import Subscription, TrackedSubscription
from ._notify import Notifier
from ._stats import L1Counts, L1Invalidation
from .backends.base import SUBSCRIPTION_LOST, SUBSCRIPTION_RESTORED, Backend, Dependency

_ITEM_OVERHEAD: Final = 200
"""Bytes counted per entry beyond its key, body and metadata (the dict slot, the tuple, the
index sets): an estimate, so that ``l1_max_bytes`` bounds small entries too."""
_MAX_REMEMBERED_DROPS: Final = 4096
"""Most keys and tags whose last drop is remembered for the generation guard; beyond it the
memory is reset and every read in flight is treated as raced (safe, never stale)."""


_UNKNOWN: Final = object()


class _Item(NamedTuple):
    entry: Entry
    expires: float
    tags: tuple[str, ...]
    """The tag keys the stored value depends on; empty when the backend could not say
    (then any tag invalidation drops it)."""
    size: int
    versions: tuple[Dependency, ...] | None
    """Each (tag key, version) the stored value recorded, the namespace tag's included;
    ``None`` when unknown (then any `NearCache.retire` drops it)."""


class NearCache:
    """A bounded, tag-indexed LRU of decoded entries with an expiry each, for one
    [`Cache`][asgi_cache.Cache].

    Args:
        ttl: Longest time in seconds an entry is served from here after it was read.
        max_entries: Most entries kept.
        max_bytes: Most bytes kept (estimated: key, body, metadata and a fixed overhead).
        channel_prefix: The namespace's invalidation channel prefix (``<ns>:i:``).
        tag_prefix: The prefix of the namespace's tag keys (``<ns>:t:``), to tell a tag
            message from a key message.
        all_tag: The namespace tag key every entry depends on (invalidating it is a clear).
        invalidation: ``pubsub`` (the namespace's channels) or ``tracking`` (Redis ``CLIENT
            TRACKING`` of ``tracked_prefixes``, falling back to pub/sub where refused).
        tracked_prefixes: The namespace's entry and tag-version key prefixes (tracking).
        clock: Unix time source (``time.time``; tests pass their own).
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        max_bytes: int = 64 * 1024 * 1024,
        channel_prefix: str,
        tag_prefix: str = "\x00",
        all_tag: str = "\x00",
        invalidation: L1Invalidation = "pubsub",
        tracked_prefixes: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.channel_prefix = channel_prefix
        self.tag_prefix = tag_prefix
        self.all_tag = all_tag
        self.sender = secrets.token_hex(8)
        """This cache's id in the channels it publishes on."""
        self.generation = 0
        """Bumped by every drop; see `put`."""
        self.hits = 0
        self.evictions = 0
        """Entries pushed out to make room (expired ones included)."""
        self.rejections = 0
        """Reads not admitted because they were asked for less often than what they would
        have evicted."""
        self.drops = 0
        """Entries dropped by invalidations, deletes and stores."""
        self.bytes = 0
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._untagged: set[str] = set()
        self._sketch = FrequencySketch(max_entries)
        # The generation guard: when each key and tag was last dropped, and the last clear.
        self._key_drops: dict[str, int] = {}
        self._tag_drops: dict[str, int] = {}
        self._any_tag_drop = 0
        self._cleared = 0
        # The version each tag was last read at after Redis reported it (tracking mode): a
        # fill that recorded another one read before that change and is not admitted.
        self._current: dict[str, str | None] = {}
        pubsub = _Subscription(self)
        self.subscription: Subscription = pubsub
        """How invalidations are heard (`TrackedSubscription` in tracking mode)."""
        if invalidation == "tracking":
            self.subscription = TrackedSubscription(self, pubsub, prefixes=tracked_prefixes)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, full_key: object) -> bool:
        return full_key in self._items

    def counts(self) -> L1Counts:
        """The L1 part of ``cache.stats()``."""
        return L1Counts(
            entries=len(self._items),
            hits=self.hits,
            bytes=self.bytes,
            evictions=self.evictions,
            rejections=self.rejections,
            drops=self.drops,
            flushes=self.subscription.flushes,
            subscribed=self.subscription.live,
            invalidation=self.subscription.mode,
            tag_checks=self.subscription.tag_checks,
        )

    # -- reading and filling -------------------------------------------------------------------

    def get(self, full_key: str) -> Entry | None:
        """The entry under ``full_key`` if held and not expired; ``None`` otherwise.

        Every call counts towards ``full_key``'s frequency, hit or miss, so a key read from
        the backend again and again earns its place (see `put`).
        """
        self._sketch.add(full_key)
        item = self._items.get(full_key)
        if item is None:
            return None
        if self.clock() >= item.expires:
            self._remove(full_key)
            return None
        self._items.move_to_end(full_key)
        self.hits += 1
        return item.entry

    def put(
        self,
        full_key: str,
        entry: Entry,
        tags: Sequence[str],
        generation: int,
        versions: Sequence[str] | None = None,
    ) -> bool:
        """Keep ``entry`` (read under ``generation``) if it is still current; say if kept.

        ``tags``: the tag keys its value depends on, or none when unknown; ``versions``: the
        version it recorded for each of them, when known. Refused when the key, one of its
        tags (any tag, when unknown) or everything was dropped since ``generation`` (the
        read may have fetched what that invalidation replaced), when a tag was read at
        another version since (`retire`), when it is no longer fresh, or when making room
        would evict an entry asked for at least as often (an expired one always makes room).
        """
        recorded = None
        if versions is not None and tags:
            recorded = tuple(zip(tags, versions, strict=True))
        if self._raced(full_key, tags, generation) or self._outdated(recorded):
            return False
        now = self.clock()
        expires = min(now + self.ttl, entry.fresh_until)
        if expires <= now:
            return False
        size = len(full_key) + len(entry.body) + len(entry.extra) + _ITEM_OVERHEAD
        if size > self.max_bytes:
            self.rejections += 1
            return False
        if full_key in self._items:
            self._remove(full_key)
        items = self._items
        while len(items) >= self.max_entries or self.bytes + size > self.max_bytes:
            victim_key, victim = next(iter(items.items()))
            if victim.expires > now and (
                self._sketch.estimate(victim_key) >= self._sketch.estimate(full_key)
            ):
                self.rejections += 1
                return False
            self._remove(victim_key)
            self.evictions += 1
        known = tuple(t for t in tags if t != self.all_tag)
        items[full_key] = _Item(entry, expires, known if tags else (), size, recorded)
        self.bytes += size
        if not tags:
            self._untagged.add(full_key)
        for tag in known:
            self._by_tag.setdefault(tag, set()).add(full_key)
        return True

    def _raced(self, full_key: str, tags: Sequence[str], generation: int) -> bool:
        if generation < self._cleared or self._key_drops.get(full_key, -1) > generation:
            return True
        if not tags:
            return self._any_tag_drop > generation
        drops = self._tag_drops
        return any(drops.get(t, -1) > generation for t in tags)

    def _outdated(self, recorded: tuple[Dependency, ...] | None) -> bool:
        current = self._current
        if not current or recorded is None:
            return False
        return any(current.get(tag, version) != version for tag, version in recorded)

    def _remove(self, full_key: str) -> None:
        item = self._items.pop(full_key)
        self.bytes -= item.size
        if not item.tags:
            self._untagged.discard(full_key)
        for tag in item.tags:
            dependants = self._by_tag.get(tag)
            if dependants is not None:
                dependants.discard(full_key)
                if not dependants:
                    del self._by_tag[tag]

    # -- dropping ------------------------------------------------------------------------------

    def _bump(self) -> int:
        self.generation += 1
        if len(self._key_drops) + len(self._tag_drops) > _MAX_REMEMBERED_DROPS:
            self._key_drops.clear()
            self._tag_drops.clear()
            self._cleared = self.generation
        return self.generation

    def drop(self, *full_keys: str) -> None:
        """Forget ``full_keys`` (a store or delete of them)."""
        generation = self._bump()
        for key in full_keys:
            self._key_drops[key] = generation
            if key in self._items:
                self._remove(key)
                self.drops += 1

    def drop_tags(self, *tag_keys: str) -> None:
        """Forget every entry depending on one of ``tag_keys`` (their invalidation), and the
        entries whose tags are unknown; the namespace tag empties everything."""
        if self.all_tag in tag_keys:
            self.clear()
            return
        generation = self._bump()
        self._any_tag_drop = generation
        doomed = set(self._untagged)
        for tag in tag_keys:
            self._tag_drops[tag] = generation
            doomed.update(self._by_tag.get(tag, ()))
        for key in doomed:
            self._remove(key)
        self.drops += len(doomed)

    def retire(self, tag_key: str, current: str | None) -> None:
        """``tag_key`` was read at version ``current`` (``None``: none) after Redis reported a
        change of it: forget every entry that recorded another version of it, or whose
        versions are unknown (tracking mode; a change of its expiry only drops nothing).

        Later fills that recorded another version are not admitted either (they read it
        before the change), until the next clear.
        """
        known = self._current
        previous = known.pop(tag_key, _UNKNOWN)
        known[tag_key] = current
        if previous != current:  # fills in flight without versions cannot be checked
            self._any_tag_drop = self._bump()
        if len(known) > _MAX_REMEMBERED_DROPS:  # forget the oldest; refuse reads in flight
            del known[next(iter(known))]
            self._cleared = self._bump()
        if tag_key == self.all_tag:
            candidates: Iterable[str] = list(self._items)
        else:
            candidates = {*self._by_tag.get(tag_key, ()), *self._untagged}
        # Kept: what recorded this very version (a report of an extended expiry).
        doomed = [
            key for key in candidates if (tag_key, current) not in (self._items[key].versions or ())
        ]
        for key in doomed:
            self._remove(key)
        self.drops += len(doomed)

    def clear(self) -> None:
        """Forget everything (a clear, an invalidation of unknown scope, or a subscription
        that may have missed messages)."""
        self._cleared = self._bump()
        self._key_drops.clear()
        self._tag_drops.clear()
        self._current.clear()  # reports may have been missed: what was read may be old
        self.drops += len(self._items)
        self._items.clear()
        self._by_tag.clear()
        self._untagged.clear()
        self.bytes = 0

    # -- across processes ----------------------------------------------------------------------

    def channel(self, name: str = "") -> str:
        """The channel dropping the full key or tag key ``name`` everywhere, or emptying
        every L1 if empty."""
        return f"{self.channel_prefix}{self.sender}:{name}"

    def on_message(self, channel: str) -> None:
        """Apply an invalidation published by another cache (its own are already applied)."""
        sender, _, name = channel[len(self.channel_prefix) :].partition(":")
        if sender == self.sender:
            return
        if not name:
            self.clear()
        elif name.startswith(self.tag_prefix):
            self.drop_tags(name)
        else:
            self.drop(name)


class _Subscription(Notifier):
    """The namespace's invalidation subscription (the lock notifier's retry logic, with
    every message applied to the L1 instead of waking waiters).

    L1 is filled only while the subscription is live. It is emptied when a subscription is
    first made (whatever it holds was not covered by one), when the backend says the
    connection was lost (a missed pong, a socket error: fills stop) and when it is confirmed
    again after a reconnect (what was published in between is gone; fills resume). Each of
    these bumps the generation, so a read in flight across them is not admitted either.
    """

    def __init__(self, near: NearCache) -> None:
        super().__init__(near.channel_prefix)
        self._near = near
        self.live = False
        """Whether invalidations are being heard now (a confirmed, unbroken subscription)."""
        self.flushes = 0
        """Times L1 was emptied because invalidations may have been missed."""
        self.tag_checks = 0
        """Always 0: pub/sub messages say what to drop."""

    @property
    def mode(self) -> L1Invalidation:
        """Always ``pubsub``."""
        return "pubsub"

    async def subscribe(self, backend: Backend) -> bool:
        """Subscribe to ``backend`` if not yet; say whether L1 may be filled now."""
        if self._backend is not backend:
            if not await super().subscribe(backend):
                return False
            if not self.live:
                self._flush()
                self.live = True
        return self.live

    def _deliver(self, channel: str) -> None:
        if channel == SUBSCRIPTION_LOST:
            self.live = False
            self._flush()
        elif channel == SUBSCRIPTION_RESTORED:
            self._flush()
            self.live = True
        else:
            self._near.on_message(channel)

    def _flush(self) -> None:
        self.flushes += 1
        self._near.clear()

    def reset(self) -> None:
        """Forget the subscription (its backend was closed); the next fill resubscribes."""
        self._backend = None
        self.live = False
