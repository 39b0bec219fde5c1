"""Write-behind's streams on Redis: `Streams` on one node and on a cluster.

Every command and script of one write-behind name touches only its keys, which share a hash
tag (`StreamKeys`), so the same code serves one node and a cluster; only the change itself
differs: on one node one script also sets the cache entry (`WRITE_SCRIPT`), on a cluster the
entry lives in another slot and the writer appends first, then stores it (`ClusterStreams`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from ._stream_scripts import (
    ACK_SCRIPT,
    APPEND_SCRIPT,
    DEAD_LETTER_SCRIPT,
    DELIVERIES_SCRIPT,
    NEXT_VERSION_SCRIPT,
    RENEW_SCRIPT,
    REPLAY_SCRIPT,
    WRITE_SCRIPT,
)
from ._streams import EntryWrite, Fields, Record, Runner, StreamInfo, StreamKeys, id_time
from ._wire import encode_deps_header


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: Any) -> Fields | None:
    # redis-py parses an entry's fields into a dict; a pending entry that is gone from the
    # stream comes back with none.
    if not flat:
        return None
    return {_text(k): v if isinstance(v, bytes) else str(v).encode() for k, v in flat.items()}


def _records(entries: Any) -> list[Record]:
    return [Record(_text(entry_id), _fields(flat)) for entry_id, flat in entries or ()]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStreams:
    """`Streams` on Redis Streams, through the Redis backend's client and error boundary.

    Args:
        client: The backend's ``redis.asyncio.Redis``.
        run: The backend's error boundary: ``run(what, coro, budget=...)`` maps every
            redis-py error and timeout to [`BackendError`][asgi_cache.BackendError].
        op_timeout: The backend's per-operation budget; a blocking read waits at most half
            of it (the connection's socket timeout is bounded by it).
    """

    atomic = True

    def __init__(self, client: Any, run: Runner, *, op_timeout: float) -> None:
        self._client = client
        self._run = run
        self._op_timeout = op_timeout
        scripts = (WRITE_SCRIPT, ACK_SCRIPT, DEAD_LETTER_SCRIPT, REPLAY_SCRIPT, RENEW_SCRIPT)
        self._write, self._ack, self._dead, self._replay, self._renew = (
            client.register_script(s) for s in scripts
        )
        self._deliveries = client.register_script(DELIVERIES_SCRIPT)
        self._next_version = client.register_script(NEXT_VERSION_SCRIPT)
        self._append = client.register_script(APPEND_SCRIPT)

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
        """See `Streams.write`; ``budget`` replaces the per-operation one."""
        deps = entry.deps
        argv: list[Any] = [
            limit,
            key,
            "d" if deleted else "s",
            encode_deps_header(deps),
            entry.payload,
            _ms(entry.ttl),
            change_id,
            int(time.time() * 1000),
            *(d[1] for d in deps),
        ]
        names = [keys.stream, keys.versions, entry.full_key, *(d[0] for d in deps)]
        call = self._write(keys=names, args=argv)
        return int(await self._run("write-behind write", call, budget=budget))

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
        """See `Streams.append`."""
        op = "d" if deleted else "s"
        argv = [limit, key, op, "", payload, 0, change_id, int(time.time() * 1000)]
        call = self._append(keys=[keys.stream, keys.versions], args=argv)
        return int(await self._run("write-behind append", call, budget=budget))

    async def latest_version(self, keys: StreamKeys, key: str) -> int:
        raw = await self._run("HGET", self._client.hget(keys.versions, key))
        return int(raw or 0)

    async def next_version(self, keys: StreamKeys, key: str) -> int:
        call = self._next_version(keys=[keys.versions], args=[key])
        return int(await self._run("write-behind version", call))

    async def ensure_group(self, keys: StreamKeys) -> None:
        async def create() -> None:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self._client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)

        await self._run("XGROUP CREATE", create())

    async def read(
        self, keys: StreamKeys, consumer: str, count: int, *, pending: bool, block: float
    ) -> list[Record]:
        wait = None if pending or block <= 0 else _ms(min(block, self._op_timeout / 2))
        call = self._client.xreadgroup(
            keys.group, consumer, {keys.stream: "0" if pending else ">"}, count=count, block=wait
        )
        reply = await self._run("XREADGROUP", call)
        if not reply:
            return []
        return _records(reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0])

    async def claim_idle(
        self, keys: StreamKeys, consumer: str, min_idle: float, count: int
    ) -> list[Record]:
        call = self._client.xautoclaim(
            keys.stream, keys.group, consumer, _ms(min_idle), start_id="0-0", count=count
        )
        reply = await self._run("XAUTOCLAIM", call)
        records = _records(reply[1])
        # Entries deleted while pending come back in the third part (Redis 7): acknowledge them.
        gone = [_text(i) for i in (reply[2] if len(reply) > 2 else ())]
        return records + [Record(i, None) for i in gone]

    async def deliveries(self, keys: StreamKeys, ids: Sequence[str]) -> list[int]:
        if not ids:
            return []
        call = self._deliveries(keys=[keys.stream], args=[keys.group, *ids])
        return [int(n) for n in await self._run("XPENDING", call)]

    async def renew(self, keys: StreamKeys, consumer: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        call = self._renew(keys=[keys.stream], args=[keys.group, consumer, *ids])
        return int(await self._run("lease renewal", call))

    async def ack(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        call = self._ack(keys=[keys.stream], args=[keys.group, *ids])
        return int(await self._run("XACK", call))

    async def dead_letter(
        self, keys: StreamKeys, entry_id: str, reason: str, deliveries: int
    ) -> bool:
        call = self._dead(
            keys=[keys.stream, keys.dead], args=[keys.group, entry_id, reason, deliveries]
        )
        return bool(await self._run("dead letter", call))

    async def dead_letters(self, keys: StreamKeys, count: int) -> list[Record]:
        return _records(await self._run("XRANGE", self._client.xrange(keys.dead, count=count)))

    async def replay(self, keys: StreamKeys, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        call = self._replay(keys=[keys.stream, keys.dead], args=list(ids))
        return int(await self._run("replay", call))

    async def info(self, keys: StreamKeys) -> StreamInfo:
        async def gather() -> StreamInfo:
            # One command at a time, not a pipeline: ``TIME`` names no key, which a cluster
            # pipeline cannot route (a status probe can afford the round trips).
            client = self._client
            backlog = await client.xlen(keys.stream)
            dead = await client.xlen(keys.dead)
            first = await client.xrange(keys.stream, count=1)
            now = await client.time()
            pending = consumers = 0
            with contextlib.suppress(ResponseError):  # NOGROUP: no worker ran yet
                summary = await self._client.xpending(keys.stream, keys.group)
                pending = int(summary["pending"])
                consumers = len(summary.get("consumers") or ())
            lag = 0.0
            if first:
                lag = max(0.0, now[0] + now[1] / 1e6 - id_time(_text(first[0][0])))
            return StreamInfo(
                backlog=int(backlog),
                pending=pending,
                dead_letters=int(dead),
                lag_seconds=round(lag, 3),
                consumers=consumers,
            )

        result: StreamInfo = await self._run("write-behind info", gather())
        return result


class ClusterStreams(RedisStreams):
    """`Streams` on Redis Cluster: the same commands and scripts (the keys of one name
    share a hash tag, so each runs in one slot), except that a change cannot set its cache
    entry in the same step (`atomic` is false: the caller appends, then stores the entry)."""

    atomic = False
