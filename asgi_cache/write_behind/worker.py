"""The worker: reads changes with a consumer group, hands them to the handler, acknowledges.

One loop per worker (``await wb.run()``, ``wb.start()`` or ``asgi-cache worker module:wb``;
several may run, on several hosts). Each turn takes one batch, in this order:

1. its **own pending** changes (delivered to it earlier and not acknowledged: a previous run
   of the same consumer that was stopped, or a failed handler call, to retry);
2. changes **abandoned** by other workers: pending longer than the lease (``XAUTOCLAIM``,
   checked every half lease);
3. **new** changes (``XREADGROUP ... >``), waiting up to ``poll`` seconds for some.

The handler gets the newest change of each key of the batch (``coalesce``). While it runs,
the batch's lease is renewed every third of ``lease``, so a slow handler is never taken over
(and so never run twice at once for the same batch) while its worker is alive. What it
committed is acknowledged (and leaves the stream); what it did not stays pending and is
retried after a capped exponential backoff. When a batch of several changes fails, each
change is tried alone, so one poison change does not hold the others back; a change that
still fails on its ``max_deliveries``-th delivery is moved to the dead letter with the
error as its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from .._exceptions import BackendError, SerializationError
from ..backends._streams import Record, StreamKeys, Streams
from ..codec import Serializer
from ..keys import KeySpace
from .changes import Change, Handler, committed_ids, decode_change
from .options import WriteBehindOptions

logger = logging.getLogger("asgi_cache")


@dataclass
class Counters:
    """What one write-behind name did in this process (see ``WriteBehindStatus``)."""

    written: int = 0
    applied: int = 0
    coalesced: int = 0
    batches: int = 0
    retries: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    inline: int = 0
    refused: int = 0
    lease_lost: int = 0
    last_error: str | None = None

    def failed(self, what: str, exc: BaseException) -> None:
        """Remember a failure (and log it)."""
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        logger.warning("asgi-cache: write-behind %s", self.last_error)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class Worker:
    """One consumer of a write-behind name's group.

    Args:
        streams: Returns the backend's streams (built lazily with the backend).
        keys: The name's keys.
        consumer: This worker's name in the group (unique per process and run).
        handler: The database side.
        serializer: Decodes the values.
        key_space: The cache's key space (a value is the entry of its data key).
        options: The name's options.
        counters: Where the worker's events are counted.
    """

    def __init__(
        self,
        streams: Callable[[], Streams],
        keys: StreamKeys,
        consumer: str,
        handler: Handler,
        serializer: Serializer,
        key_space: KeySpace,
        options: WriteBehindOptions,
        counters: Counters,
    ) -> None:
        self._streams = streams
        self.keys = keys
        self.consumer = consumer
        self._handler = handler
        self._serializer = serializer
        self._key_space = key_space
        self._options = options
        self.counters = counters
        self._own_first = True
        self._next_claim = 0.0
        self._stopping = False
        self._wake: anyio.Event | None = None
        self._ready = False

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, *, until_idle: bool = False) -> int:
        """Handle batches until `stop` (or, ``until_idle``, until none is left to take);
        return how many changes were acknowledged or dead-lettered."""
        self._wake = anyio.Event()
        done = 0
        failures = 0
        while not self._stopping:
            try:
                if not self._ready:
                    await self._streams().ensure_group(self.keys)
                    self._ready = True
                records, fresh = await self._next(block=0.0 if until_idle else None)
                if not records:
                    if until_idle and not self._own_first:
                        break
                    continue
                done += await self.process(records, fresh=fresh)
                failures = 0
            except BackendError as exc:
                # Redis down or restarted (the group may be gone): wait, then start over with
                # this worker's own pending changes.
                self.counters.failed("worker", exc)
                self._ready, self._own_first = False, True
                failures += 1
                await self._pause(self._backoff(failures))
        return done

    def stop(self) -> None:
        """Stop after the batch in hand (its changes are acknowledged or stay pending)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    async def _pause(self, seconds: float) -> None:
        wake = self._wake
        if wake is None or self._stopping:
            return
        with anyio.move_on_after(seconds):
            await wake.wait()

    def _backoff(self, attempt: int) -> float:
        o = self._options
        return float(min(o.max_backoff, o.retry_backoff * 2.0 ** max(0, attempt - 1)))

    async def _next(self, *, block: float | None) -> tuple[list[Record], bool]:
        streams, keys, o = self._streams(), self.keys, self._options
        if self._own_first:
            own = await streams.read(keys, self.consumer, o.batch_size, pending=True, block=0)
            if own:
                return own, False
            self._own_first = False
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + o.lease / 2
            taken = await streams.claim_idle(keys, self.consumer, o.lease, o.batch_size)
            if taken:
                self.counters.reclaimed += len(taken)
                return taken, False
        wait = o.poll if block is None else block
        return await streams.read(
            keys, self.consumer, o.batch_size, pending=False, block=wait
        ), True

    # -- one batch -----------------------------------------------------------------------------

    async def process(self, records: list[Record], *, fresh: bool) -> int:
        """Hand one batch to the handler and settle every change of it; return how many
        were acknowledged or dead-lettered."""
        streams, keys = self._streams(), self.keys
        gone = [r.id for r in records if r.fields is None]
        live = [r for r in records if r.fields is not None]
        settled = await streams.ack(keys, gone) if gone else 0
        if not live:
            return settled
        ids = [r.id for r in live]
        counts = [1] * len(live) if fresh else await streams.deliveries(keys, ids)
        deliveries: dict[str, int] = {}
        newest: dict[str, Change] = {}
        covered: dict[str, list[str]] = {}
        for record, count in zip(live, counts, strict=True):
            try:
                change = decode_change(record, self._serializer, self._key_space)
            except SerializationError as exc:
                settled += await self._dead(record.id, _reason(exc), count)
                continue
            deliveries[change.id] = count
            if not self._options.coalesce:
                newest[change.id] = change
                continue
            held = newest.get(change.key)
            if held is None:
                newest[change.key] = change
            elif change.version > held.version:
                covered[change.id] = [held.entry_id, *covered.pop(held.id, [])]
                newest[change.key] = change
            else:
                covered.setdefault(held.id, []).append(change.entry_id)
        batch = sorted(newest.values(), key=lambda c: c.entry_id)
        if not batch:
            return settled
        failures = await self._leased(ids, lambda: self._apply(batch))
        committed = [c for c in batch if c.id not in failures]
        acks = [i for c in committed for i in (c.entry_id, *covered.get(c.id, ()))]
        settled += await streams.ack(keys, acks) if acks else 0
        c = self.counters
        c.applied += len(committed)
        c.coalesced += len(acks) - len(committed)
        c.batches += bool(committed)
        worst = 0
        for change in batch:
            if change.id not in failures:
                continue
            count = deliveries[change.id]
            if count >= self._options.max_deliveries:
                settled += await self._dead(change.entry_id, failures[change.id], count)
                older = covered.get(change.id, [])
                settled += await streams.ack(keys, older) if older else 0
            else:
                worst = max(worst, count)
        if worst:
            c.retries += 1
            self._own_first = True
            await self._pause(self._backoff(worst))
        return settled

    async def _apply(self, batch: list[Change]) -> dict[str, str]:
        """Call the handler; return the ids it did not commit, with why."""
        try:
            result = await self._handler(batch)
            done = committed_ids(batch, result)
        except Exception as exc:
            self.counters.failed(f"handler ({len(batch)} changes)", exc)
            if len(batch) == 1:
                return {batch[0].id: _reason(exc)}
            failures: dict[str, str] = {}
            for change in batch:  # one poison change must not hold the others back
                failures.update(await self._apply([change]))
            return failures
        return {c.id: "not committed by the handler" for c in batch if c.id not in done}

    async def _dead(self, entry_id: str, reason: str, deliveries: int) -> int:
        moved = await self._streams().dead_letter(self.keys, entry_id, reason, deliveries)
        if moved:
            self.counters.dead_lettered += 1
            logger.warning(
                "asgi-cache: write-behind %s moved to the dead letter after %d deliveries: %s",
                entry_id,
                deliveries,
                reason,
            )
        return int(moved)

    # -- the lease -----------------------------------------------------------------------------

    async def _leased(self, ids: list[str], call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` while renewing the lease of ``ids`` every third of the lease."""
        outcome: Any = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._renew, ids)
            try:
                outcome = await call()
            finally:
                group.cancel_scope.cancel()
        return outcome

    async def _renew(self, ids: list[str]) -> None:
        every = self._options.lease / 3
        while True:
            await anyio.sleep(every)
            try:
                renewed = await self._streams().renew(self.keys, self.consumer, ids)
            except BackendError as exc:
                self.counters.failed("lease renewal", exc)
                continue
            if renewed < len(ids):
                # Another worker took some over (this one stalled past the lease): it will
                # hand them to the handler too; an upsert on (key, version) keeps that safe.
                self.counters.lease_lost += 1
                logger.warning(
                    "asgi-cache: write-behind lease of %d changes lost to another worker",
                    len(ids) - renewed,
                )
