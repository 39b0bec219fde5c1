"""The write-behind log of ``memory://``: Redis Streams semantics inside one process.

Each write-behind name gets a `_Log`: entries with ``<ms>-<seq>`` ids, one consumer
group (pending entries with their owner, delivery time and delivery count), a dead letter and
the per-key versions. Every method runs without an await between its reads and writes, so
each is atomic on the event loop, as a script is on Redis.

The limits are those of ``memory://`` itself: the log lives and dies with the process (a
crash loses what the handler has not committed), and only workers of this process see it. It
suits tests, development and single-process apps that accept that; anything that must survive
a restart needs Redis (``docs/write-behind.md``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from ._streams import EntryWrite, Fields, Record, StreamInfo, StreamKeys, id_time

if TYPE_CHECKING:
    from .memory import MemoryBackend

_META = ("reason", "from", "deliveries")
"""The fields a dead letter adds to the entry it holds."""


@dataclass
class _Pending:
    consumer: str
    since: float  # monotonic time of the last delivery or renewal
    count: int


@dataclass
class _Log:
    entries: OrderedDict[str, Fields] = field(default_factory=OrderedDict)
    undelivered: OrderedDict[str, None] = field(default_factory=OrderedDict)
    pending: dict[str, _Pending] = field(default_factory=dict)
    dead: OrderedDict[str, Fields] = field(default_factory=OrderedDict)
    versions: dict[str, int] = field(default_factory=dict)
    consumers: set[str] = field(default_factory=set)
    last: tuple[int, int] = (0, 0)
    arrived: anyio.Event | None = None

    def bump(self, key: str) -> int:
        """The key's next version: the clock in microseconds, or one more than the last."""
        version = max(time.time_ns() // 1000, self.versions.get(key, 0) + 1)
        self.versions[key] = version
        return version

    def next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, seq = self.last
        self.last = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
        return f"{self.last[0]}-{self.last[1]}"

    def append(self, fields: Fields, *, into: OrderedDict[str, Fields] | None = None) -> str:
        entry_id = self.next_id()
        if into is not None:
            into[entry_id] = fields
            return entry_id
        self.entries[entry_id] = fields
        self.undelivered[entry_id] = None
        if self.arrived is not None:
            self.arrived.set()
            self.arrived = None
        return entry_id

    def deliver(self, entry_id: str, consumer: str) -> Record:
        p = self.pending.get(entry_id)
        if p is None:
            self.pending[entry_id] = _Pending(consumer, time.monotonic(), 1)
        else:
            p.consumer, p.since, p.count = consumer, time.monotonic(), p.count + 1
        return Record(entry_id, self.entries.get(entry_id))


class MemoryStreams:
    """`Streams` in this process's memory.

    Args:
        backend: The memory backend whose entries the writes set and delete.
    """

    atomic = True

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self._logs: dict[str, _Log] = {}

    def _log(self, keys: StreamKeys) -> _Log:
        log = self._logs.get(keys.stream)
        if log is None:
            log = self._logs[keys.stream] = _Log()
        return log

    async def write(
        self,
        keys: StreamKeys,
        key: str,
        entry: EntryWrite,
        *,
        deleted: bool,
        change_id: str,
        limit: int,
        budget: float | None = None,
    ) -> int:
        """See `Streams.write`."""
        log = self._log(keys)
        if limit and len(log.entries) >= limit:
            return 0
        version = log.bump(key)
        log.append(
            _fields(key, entry.payload, deleted=deleted, version=version, change_id=change_id)
        )
        # The memory backend's calls never suspend: the step stays atomic on the event loop.
        backend = self._backend
        if deleted or not await backend.set(entry.full_key, entry.payload, entry.ttl, entry.deps):
            await backend.delete(entry.full_key)
        return version

    async def append(
        self,
        keys: StreamKeys,
        key: str,
        payload: bytes,
        *,
        deleted: bool,
        change_id: str,
        limit: int,
        budget: float | None = None,
    ) -> int:
        log = self._log(keys)
        if limit and len(log.entries) >= limit:
            return 0
        version = log.bump(key)
        log.append(_fields(key, payload, deleted=deleted, version=version, change_id=change_id))
        return version

    async def latest_version(self, keys: StreamKeys, key: str) -> int:
        return self._log(keys).versions.get(key, 0)

    async def next_version(self, keys: StreamKeys, key: str) -> int:
        return self._log(keys).bump(key)

    async def ensure_group(self, keys: StreamKeys) -> None:
        self._log(keys)

    async def read(
        self, keys: StreamKeys, consumer: str, count: int, *, pending: bool, block: float
    ) -> list[Record]:
        log = self._log(keys)
        log.consumers.add(consumer)
        if pending:
            own = sorted((i for i, p in log.pending.items() if p.consumer == consumer), key=_order)
            return [log.deliver(i, consumer) for i in own[:count]]
        if not log.undelivered and block > 0:
            arrived = log.arrived = log.arrived or anyio.Event()
            with anyio.move_on_after(block):
                await arrived.wait()
        ids = list(log.undelivered)[:count]
        for entry_id in ids:
            del log.undelivered[entry_id]
        return [log.deliver(i, consumer) for i in ids]

    async def claim_idle(
        self, keys: StreamKeys, consumer: str, min_idle: float, count: int
    ) -> list[Record]:
        log = self._log(keys)
        log.consumers.add(consumer)
        limit = time.monotonic() - min_idle
        idle = sorted((i for i, p in log.pending.items() if p.since <= limit), key=_order)
        return [log.deliver(i, consumer) for i in idle[:count]]

    async def deliveries(self, keys: StreamKeys, ids: Sequence[str]) -> list[int]:
        pending = self._log(keys).pending
        return [pending[i].count if i in pending else 0 for i in ids]

    async def renew(self, keys: StreamKeys, consumer: str, ids: Sequence[str]) -> int:
        renewed = 0
        for entry_id in ids:
            p = self._log(keys).pending.get(entry_id)
            if p is not None and p.consumer == consumer:
                p.since = time.monotonic()
                renewed += 1
        return renewed

    async def ack(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        log = self._log(keys)
        acked = 0
        for entry_id in ids:
            acked += log.pending.pop(entry_id, None) is not None
            log.entries.pop(entry_id, None)
        return acked

    async def dead_letter(
        self, keys: StreamKeys, entry_id: str, reason: str, deliveries: int
    ) -> bool:
        log = self._log(keys)
        log.pending.pop(entry_id, None)
        fields = log.entries.pop(entry_id, None)
        if fields is None:
            return False
        extra = {"reason": reason, "from": entry_id, "deliveries": str(deliveries)}
        log.append({**fields, **{k: v.encode() for k, v in extra.items()}}, into=log.dead)
        return True

    async def dead_letters(self, keys: StreamKeys, count: int) -> list[Record]:
        return [Record(i, f) for i, f in list(self._log(keys).dead.items())[:count]]

    async def replay(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        log = self._log(keys)
        moved = 0
        for entry_id in ids:
            fields = log.dead.pop(entry_id, None)
            if fields is not None:
                log.append({k: v for k, v in fields.items() if k not in _META})
                moved += 1
        return moved

    async def info(self, keys: StreamKeys) -> StreamInfo:
        log = self._log(keys)
        first = next(iter(log.entries), None)
        lag = 0.0 if first is None else max(0.0, time.time() - id_time(first))
        return StreamInfo(
            backlog=len(log.entries),
            pending=len(log.pending),
            dead_letters=len(log.dead),
            lag_seconds=round(lag, 3),
            consumers=len(log.consumers),
        )


def _fields(key: str, payload: bytes, *, deleted: bool, version: int, change_id: str) -> Fields:
    """A change's stream fields, as the Redis scripts write them."""
    return {
        "k": key.encode(),
        "op": b"d" if deleted else b"s",
        "v": b"" if deleted else payload,
        "n": str(version).encode(),
        "i": change_id.encode(),
        "t": str(int(time.time() * 1000)).encode(),
    }


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)
