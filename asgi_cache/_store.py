"""The entry store: what the data API, cache-aside and the middleware read and write.

Data flows one way: a feature asks the `Store`; the store turns values into versioned
entries (`asgi_cache.codec`), records the tag versions they depend on
(`Tags`) and calls the backend. It fails open: a backend error or
timeout is a miss on reads and a counted, logged `WriteResult.FAILED` on writes, never
an exception to the feature.

With the L1 near-cache on, a fresh entry read recently comes from this process's memory,
without a backend round trip; every store and delete brings the L1s in line through
`Tags.apply`.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

from ._entries import CorruptEntry, DecodeMemo, Entry, EntryKind, encode_entry, model_name
from ._exceptions import BackendError, ConfigurationError
from ._rebuild import Rebuild
from ._runtime import Runtime
from ._stats import Source
from ._tags import Tags, TagSnapshot
from ._validate import TTL
from .codec import Serializer
from .keys import validate_key
from .locking import DistributedLock, Locks
from .near import NearCache

logger = logging.getLogger("asgi_cache")
# Members read on every hit, bound once: an enum member lookup is a descriptor call (3.11).
_L1, _BACKEND = Source.L1, Source.BACKEND


class WriteResult(enum.Enum):
    """What became of a write."""

    STORED = "stored"
    """The entry is in the backend."""
    REFUSED = "refused"
    """Not stored, by design: a tag moved on since the snapshot, the fence's lock is held by
    someone else, the entry was already past its lifetime, or the cache is disabled."""
    FAILED = "failed"
    """Not stored because the backend failed (counted and logged), or because the tag read
    before the load failed (an empty snapshot)."""


class Store:
    """The entries of one cache.

    Args:
        runtime: The cache's shared state (settings, keys, events, backend, L1).
        tags: Its tags, for snapshots and for the L1 fan-out after a store.
    """

    __slots__ = (
        "_decoded_memo",
        "_random",
        "_warned",
        "keys",
        "locks",
        "near",
        "runtime",
        "serializer",
        "settings",
        "stats",
        "tags",
    )

    def __init__(self, runtime: Runtime, tags: Tags) -> None:
        self.runtime = runtime
        self.tags = tags
        self.settings = runtime.settings
        self.keys = runtime.keys
        self.stats = runtime.stats
        self.near = runtime.near
        self.serializer = Serializer(runtime.settings.serializer)
        self.locks = Locks(
            lambda: runtime.backend, runtime.keys, lease=self.settings.lock_lease, stats=self.stats
        )
        """Builds the distributed lock of a key, and wakes its waiters."""
        self._random = random.Random()
        self._warned: set[str] = set()
        self._decoded_memo = DecodeMemo()
        """The entries read last, by key: reading the same bytes again decodes nothing."""

    @property
    def in_process(self) -> bool:
        """Whether entries live in this process's memory (the ``memory://`` backend)."""
        return self.runtime.in_process

    # -- reading -------------------------------------------------------------------------------

    async def read(self, full_key: str) -> Entry | None:
        """The entry under ``full_key``; ``None`` on a miss of any kind.

        A backend failure, an invalidated entry and a corrupt or foreign value are all misses
        (the latter reported as ``corrupt``). Hit and miss counting is left to the caller,
        which knows whether the entry is usable.
        """
        entry, _ = await self.lookup(full_key)
        return entry

    async def lookup(self, full_key: str) -> tuple[Entry | None, Source]:
        """Like `read`, also saying whether the backend answered (or the L1 did).

        Returns:
            The entry (``None`` on a miss of any kind) and where it was answered:
            `Source.FAILED` (falsy) only when the backend failed, so the caller can
            skip work that needs it (locks, stores); `Source.L1` when this process's
            near-cache held it.
        """
        if not self.settings.enabled:
            return None, Source.BACKEND
        if self.tags.queue and not await self.tags.settle():
            # Invalidations are waiting to land (the backend was unreachable): until they
            # do, what the backend holds may be older than them, so it is not read.
            return None, Source.FAILED
        near = self.near
        if near is not None:
            entry = near.get(full_key)
            if entry is not None:
                return entry, _L1
            # Filled only while subscribed, so no invalidation of what it holds goes unheard.
            if await near.subscription.subscribe(self.runtime.backend):
                return await self._fill(near, full_key)
        try:
            raw = await self.runtime.backend.get(full_key)
        except BackendError as exc:
            self.stats.error("read", exc)
            return None, Source.FAILED
        if raw is None:
            return None, Source.BACKEND
        return self._decoded(full_key, raw), _BACKEND

    async def _fill(self, near: NearCache, full_key: str) -> tuple[Entry | None, Source]:
        # An L1 miss: read the entry with the tag keys it depends on, and keep it in L1
        # unless an invalidation of the key or of one of its tags raced the read.
        generation = near.generation
        try:
            found = await self.runtime.backend.get_tagged(full_key)
        except BackendError as exc:
            self.stats.error("read", exc)
            return None, Source.FAILED
        if found is None:
            return None, Source.BACKEND
        entry = self._decoded(full_key, found[0])
        if entry is not None:
            deps = found[1]
            near.put(full_key, entry, [t for t, _ in deps], generation, [v for _, v in deps])
        return entry, Source.BACKEND

    def _decoded(self, full_key: str, raw: bytes) -> Entry | None:
        try:
            return self._decoded_memo.decode(raw, full_key)
        except CorruptEntry as exc:
            self.stats.corrupt(full_key, exc)
            return None

    def decode(
        self, full_key: str, entry: Entry, rebuild: Rebuild | None = None
    ) -> tuple[bool, Any]:
        """Decode a value entry: ``(True, value)``, or ``(False, None)`` if it is unusable.

        With ``rebuild``, the value is rebuilt into the caller's type; a stored shape that no
        longer fits it (a deploy changed the model) is unusable too, reported as a mismatch.
        """
        try:
            value = self.serializer.decode(entry)
        except CorruptEntry as exc:
            self.stats.corrupt(full_key, exc)
            return False, None
        if rebuild is None or entry.kind is EntryKind.NEGATIVE:
            return True, value
        try:
            return True, rebuild(value)
        except Exception as exc:
            self.stats.mismatch(full_key, f"cannot rebuild: {exc}")
            return False, None

    def warn_untyped(self, model: str, *, call: str, hint: str) -> None:
        """Warn once per model that ``call`` returns a dict on a hit where a miss returns
        the model itself; ``hint`` says how to fix it."""
        if model in self._warned:
            return
        self._warned.add(model)
        logger.warning(
            "asgi-cache: %s returns a dict on a hit where the value stored was a %s (hits "
            "and misses differ in type); %s",
            call,
            model,
            hint,
        )

    # -- writing -------------------------------------------------------------------------------

    async def write(
        self,
        full_key: str,
        entry: Entry,
        snapshot: TagSnapshot,
        *,
        fence: DistributedLock | None = None,
    ) -> WriteResult:
        """Store ``entry`` until its ``stale_until`` if ``snapshot``'s tags are still current.

        With ``fence`` (a lock this caller acquired), store only while its token still holds
        the lock, so a holder whose lease ran out cannot overwrite what the next holder
        wrote. Failures are counted and logged, never raised.
        """
        if not self.settings.enabled:
            return WriteResult.REFUSED
        if not snapshot.deps:
            return WriteResult.FAILED
        lifetime = entry.stale_until - time.time()
        if lifetime <= 0:
            return WriteResult.REFUSED
        payload = encode_entry(entry, full_key)
        backend = self.runtime.backend
        if fence is None:
            change = backend.set(full_key, payload, lifetime, snapshot.deps)
        else:
            change = backend.set_if_locked(
                full_key, payload, lifetime, snapshot.deps, fence.key, fence.token
            )
        try:
            # Whatever this process held for the key is older than what was written (even
            # when the caller is cancelled while the write may have landed).
            stored = await self.tags.apply(change, (full_key,))
        except BackendError as exc:
            self.stats.error("write", exc)
            return WriteResult.FAILED
        if not stored:
            return WriteResult.REFUSED
        self.stats.stored()
        return WriteResult.STORED

    def value_entry(
        self,
        key: str,
        value: Any,
        *,
        ttl: float,
        stale_ttl: float = 0.0,
        load_time: float = 0.0,
        negative: bool = False,
    ) -> Entry:
        """Encode ``value`` as an entry fresh for ``ttl`` seconds (jitter already applied).

        Raises:
            SerializationError: The value cannot be encoded; the message names key and type.
        """
        now = time.time()
        if negative:
            kind, body, tagged, model = EntryKind.NEGATIVE, b"", False, None
        else:
            kind, body, tagged, model = self.serializer.encode(value, key=key)
        return Entry(
            kind=kind,
            body=body,
            created_at=now,
            fresh_until=now + ttl,
            stale_until=now + ttl + stale_ttl,
            load_time=load_time,
            # The model's name, so a read without a type can say what it should have asked.
            extra=model.encode() if model else b"",
            tagged=tagged,
        )

    # -- lifetimes -----------------------------------------------------------------------------

    def resolve_ttl(self, ttl: float | None) -> float:
        """The freshness lifetime for ``ttl``: ``None`` means the default TTL, never forever.

        Raises:
            ConfigurationError: ``ttl`` is not finite seconds > 0 (or ``None``).
        """
        if ttl is None:
            return self.settings.default_ttl
        return float(TTL.require("ttl", ttl))

    def jittered(self, ttl: float) -> float:
        """``ttl`` spread by the configured jitter (never below 1 ms)."""
        jitter = self.settings.ttl_jitter
        if jitter:
            ttl *= 1.0 + self._random.uniform(-jitter, jitter)
        return max(ttl, 0.001)

    # -- the data API --------------------------------------------------------------------------

    def value_of(
        self,
        full_key: str,
        entry: Entry | None,
        default: Any = None,
        rebuild: Rebuild | None = None,
        source: Source = Source.BACKEND,
    ) -> Any:
        """The value a `read` of ``full_key`` found, counted as a hit, or ``default``
        counted as a miss (nothing, stale, corrupt, an HTTP response, a shape ``rebuild``
        refuses, or a cached "not found"); see ``Cache.get``. Kept apart from the read so a
        hit costs no extra await."""
        if entry is None or not entry.is_fresh(time.time()):
            self.stats.miss(source)
            return default
        if entry.kind is EntryKind.RESPONSE:
            self.stats.mismatch(full_key, "an HTTP response under a data key")
            self.stats.miss(source)
            return default
        ok, value = self.decode(full_key, entry, rebuild)
        if not ok or entry.kind is EntryKind.NEGATIVE:
            self.stats.miss(source)
            return default
        if rebuild is None:
            model = model_name(entry)
            if model is not None:
                short = model.rpartition(".")[2]
                self.warn_untyped(
                    model,
                    call=f"cache.get({self.keys.user_key(full_key)!r})",
                    hint=f"pass returns={short} to rebuild it",
                )
        self.stats.hit(source)
        return value

    async def set_value(
        self, key: str, value: Any, ttl: float | None, tags: Sequence[str]
    ) -> WriteResult:
        """Cache ``value`` under the caller's ``key`` (see ``Cache.set``).

        Raises:
            ConfigurationError: ``key``, ``ttl`` or a tag is not allowed.
            SerializationError: The value cannot be encoded.
        """
        validate_key(key)
        fresh = self.jittered(self.resolve_ttl(ttl))
        entry = self.value_entry(key, value, ttl=fresh)
        snapshot = await self.tags.snapshot(tags, ttl=fresh)
        return await self.write(self.keys.data(key), entry, snapshot)

    # -- bookkeeping and locks -----------------------------------------------------------------

    async def read_note(self, key: str, *, what: str) -> tuple[bytes | None, bool]:
        """Bookkeeping bytes under ``key`` (no tags, no entry format), and whether the backend
        answered; a failure is reported as ``what``."""
        try:
            return await self.runtime.backend.get_raw(key), True
        except BackendError as exc:
            self.stats.error(what, exc)
            return None, False

    async def write_note(self, key: str, value: bytes, ttl: float, *, what: str) -> None:
        """Keep bookkeeping bytes under ``key`` for ``ttl`` seconds (best effort)."""
        try:
            await self.runtime.backend.set_raw(key, value, ttl)
        except BackendError as exc:
            self.stats.error(what, exc)

    async def break_lock(self, full_key: str, *, what: str) -> bool:
        """Delete the lock of ``full_key``, whoever holds it, so that the holder's fenced
        store is refused; return whether the backend answered (a failure is reported as
        ``what``)."""
        try:
            await self.runtime.backend.delete(self.keys.lock(full_key))
        except BackendError as exc:
            self.stats.error(what, exc)
            return False
        return True


class HasStore(Protocol):
    """What a feature built around a cache, such as the middleware, is given: an object with
    a store ([`Cache`][asgi_cache.Cache] keeps its own as ``_store``)."""

    @property
    def _store(self) -> Store: ...


def store_of(cache: HasStore) -> Store:
    """The store of ``cache``, for the features built around a cache by their users.

    The only place the store is taken from a [`Cache`][asgi_cache.Cache] from outside it
    (the ``cache=`` of [`CacheMiddleware`][asgi_cache.CacheMiddleware]); the cache hands it to
    everything it builds itself.

    Raises:
        ConfigurationError: ``cache`` is not a [`Cache`][asgi_cache.Cache].
    """
    store = getattr(cache, "_store", None)
    if not isinstance(store, Store):
        raise ConfigurationError(f"cache={cache!r} is not allowed: expected a Cache")
    return store
