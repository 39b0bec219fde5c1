"""A circuit breaker around any backend: skip a backend that is down, probe it to recover.

While a backend answers, calls pass straight through (``closed``). After ``threshold``
consecutive failures the breaker opens: every call then fails at once with
[`BackendError`][asgi_cache.BackendError] without touching the network, so the cache's fail-open
paths add no latency while Redis is down, slow or unreachable. One background task pings the backend
once per ``cooldown`` (``half_open`` while the ping is in flight) and closes the breaker when it
answers.

Only [`BackendError`][asgi_cache.BackendError] counts as a failure: the backend could not be reached
or did not answer in time (refused or reset connections, timeouts, ``LOADING``, ``max number
of clients reached``). Answers that merely say "no" (a lock held by someone else, an entry not
stored because a tag moved on, a miss) are successes. Two kinds of ``BackendError`` are not
counted either:

- [`BackendReplyError`][asgi_cache.BackendReplyError]: the backend answered, fast, with an error
  about that command (``READONLY`` on a replica, ``OOM`` under ``noeviction``, ``WRONGTYPE`` on a
  foreign key). Skipping it would cost the reads that still work and gain no latency.
- [`BackendBusyError`][asgi_cache.BackendBusyError]: no pooled connection came free in time. This
  process is saturated; the operations holding the connections succeed or time out on their own, and
  those count.

Cancellation is neither success nor failure: a caller that gave up says nothing about the
backend.

Operations that were in flight together and fail together count as *one* failure: a failure
counts only if no other failure was counted since the operation started. Otherwise one stall of
this process (a long GC pause, a CPU-starved container) that makes 64 concurrent operations
time out at once would open the breaker, although Redis is fine. Under a real outage the
count still climbs: each new operation started after the last counted failure fails too. So
a hung Redis opens the breaker after about ``threshold x op_timeout`` of wall time, whatever
the concurrency, and a refused connection after ``threshold`` quick failures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, TypedDict, TypeVar

import anyio

from .._exceptions import BackendBusyError, BackendError, BackendReplyError
from .._tasks import BackgroundTasks
from .._validate import seconds, whole
from .base import Backend, Dependency

logger = logging.getLogger("asgi_cache")

BreakerState = Literal["closed", "open", "half_open"]
T = TypeVar("T")


class BreakerSnapshot(TypedDict):
    """The state of a [`CircuitBreakerBackend`][asgi_cache.backends.CircuitBreakerBackend], as
    ``cache.stats()`` reports it."""

    state: BreakerState
    """``closed``, ``open`` or ``half_open``."""
    consecutive_failures: int
    """Failures counted since the last success."""
    threshold: int
    """Consecutive failures that open the breaker."""
    cooldown: float
    """Seconds between probes while open."""
    transitions: int
    """Every state change so far."""
    opened: int
    """Times the breaker opened."""
    short_circuited: int
    """Calls refused without I/O while open."""
    last_error: str | None
    """Text of the last failure seen (the probe's included), or ``None``."""
    state_age: float
    """Seconds in the current state."""


# closed -> open is what an operator must notice; the probe's own back and forth is detail.
_LEVELS: Final[dict[tuple[str, str], int]] = {
    ("closed", "open"): logging.WARNING,
    ("half_open", "closed"): logging.WARNING,
    ("open", "half_open"): logging.DEBUG,
    ("half_open", "open"): logging.DEBUG,
}


class CircuitBreakerBackend(Backend):
    """Wraps ``backend`` so that a failing backend is skipped until it answers a probe.

    Args:
        backend: The backend to protect (usually a
            [`RedisBackend`][asgi_cache.backends.RedisBackend]).
        threshold: Consecutive failures that open the breaker.
        cooldown: Seconds between background probes while the breaker is open.

    Raises:
        ConfigurationError: ``threshold`` is not a whole number > 0 or ``cooldown`` is not a
            duration > 0.
    """

    def __init__(self, backend: Backend, *, threshold: int = 5, cooldown: float = 2.0) -> None:
        whole().require("threshold", threshold)
        seconds(words="a duration in seconds").require("cooldown", cooldown)
        self.inner = backend
        self.name = backend.name
        self.in_process = backend.in_process
        self.hash_tags = getattr(backend, "hash_tags", False)
        self.threshold = threshold
        self.cooldown = float(cooldown)
        self._state: BreakerState = "closed"
        self._failures = 0
        self._epoch = 0  # bumped on every counted failure
        self._transitions = 0
        self._opened = 0
        self._short_circuited = 0
        self._last_error: str | None = None
        self._changed_at = time.monotonic()
        self._probes = BackgroundTasks("circuit breaker probe")

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """``closed`` (calls pass), ``open`` (calls fail fast) or ``half_open`` (probing)."""
        return self._state

    def snapshot(self) -> BreakerSnapshot:
        """The breaker's state for ``cache.stats()`` and health output (see
        [`BreakerSnapshot`][asgi_cache.backends.BreakerSnapshot] for each field)."""
        return BreakerSnapshot(
            state=self._state,
            consecutive_failures=self._failures,
            threshold=self.threshold,
            cooldown=self.cooldown,
            transitions=self._transitions,
            opened=self._opened,
            short_circuited=self._short_circuited,
            last_error=self._last_error,
            state_age=round(time.monotonic() - self._changed_at, 3),
        )

    def _move(self, new: BreakerState) -> None:
        old = self._state
        if old == new:
            return
        self._state = new
        self._transitions += 1
        self._changed_at = time.monotonic()
        if new == "open" and old == "closed":
            self._opened += 1
            logger.warning(
                "asgi-cache: circuit breaker closed -> open after %d consecutive %s failures "
                "(last: %s); skipping it, probing every %.3g s",
                self._failures,
                self.name,
                self._last_error,
                self.cooldown,
            )
        elif new == "closed":
            logger.log(
                _LEVELS.get((old, new), logging.DEBUG),
                "asgi-cache: circuit breaker %s -> closed: %s answered the probe",
                old,
                self.name,
            )
        else:
            logger.log(
                _LEVELS.get((old, new), logging.DEBUG),
                "asgi-cache: circuit breaker %s -> %s (last error: %s)",
                old,
                new,
                self._last_error,
            )

    def _admit(self, what: str) -> None:
        """Refuse the call at once, without I/O, unless the breaker is closed."""
        if self._state == "closed":
            return
        self._short_circuited += 1
        self._ensure_probe()
        raise BackendError(
            f"{self.name} {what} skipped: circuit breaker {self._state} "
            f"(last error: {self._last_error})"
        )

    async def _track(self, call: Awaitable[T]) -> T:
        epoch = self._epoch
        try:
            result = await call
        except (BackendBusyError, BackendReplyError):
            raise
        except BackendError as exc:
            self._failure(exc, epoch)
            raise
        self._failures = 0
        return result

    def _failure(self, exc: BackendError, epoch: int) -> None:
        self._last_error = str(exc)
        if epoch != self._epoch:
            return  # failed together with one already counted
        self._epoch += 1
        self._failures += 1
        if self._state == "closed" and self._failures >= self.threshold:
            self._move("open")
            self._ensure_probe()

    # -- probing -------------------------------------------------------------------------------

    def _ensure_probe(self) -> None:
        """Make sure one probe task runs while the breaker is open."""
        if not self._probes:
            self._probes.start_soon(self._probe_loop)

    async def _probe_loop(self) -> None:
        while self._state != "closed":
            await anyio.sleep(self.cooldown)
            self._move("half_open")
            try:
                await self.inner.ping()
            except BackendError as exc:
                self._last_error = str(exc)
                self._move("open")
            else:
                self._failures = 0
                self._move("closed")

    # -- the Backend protocol ------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """See [`Backend.get`][asgi_cache.backends.Backend.get]; fails fast while the breaker is
        open."""
        self._admit("get")
        return await self._track(self.inner.get(key))

    async def get_tagged(self, key: str) -> tuple[bytes, tuple[Dependency, ...]] | None:
        """See [`Backend.get_tagged`][asgi_cache.backends.Backend.get_tagged]; fails fast
        while the breaker is open."""
        self._admit("get_tagged")
        return await self._track(self.inner.get_tagged(key))

    async def set(
        self, key: str, value: bytes, ttl: float, deps: Sequence[Dependency] = ()
    ) -> bool:
        """See [`Backend.set`][asgi_cache.backends.Backend.set]; "not stored" is an answer, not a
        failure."""
        self._admit("set")
        return await self._track(self.inner.set(key, value, ttl, deps))

    async def delete(self, *keys: str) -> int:
        """See [`Backend.delete`][asgi_cache.backends.Backend.delete]; fails fast while the breaker
        is open."""
        self._admit("delete")
        return await self._track(self.inner.delete(*keys))

    async def get_raw(self, key: str) -> bytes | None:
        """See [`Backend.get_raw`][asgi_cache.backends.Backend.get_raw]; fails fast while the
        breaker is open."""
        self._admit("get_raw")
        return await self._track(self.inner.get_raw(key))

    async def set_raw(self, key: str, value: bytes, ttl: float) -> None:
        """See [`Backend.set_raw`][asgi_cache.backends.Backend.set_raw]; fails fast while the
        breaker is open."""
        self._admit("set_raw")
        await self._track(self.inner.set_raw(key, value, ttl))

    async def versions(self, tag_keys: Sequence[str], ttl: float) -> list[str]:
        """See [`Backend.versions`][asgi_cache.backends.Backend.versions]; fails fast while the
        breaker is open."""
        self._admit("versions")
        return await self._track(self.inner.versions(tag_keys, ttl))

    async def invalidate(self, tag_keys: Sequence[str], *, budget: float | None = None) -> int:
        """See [`Backend.invalidate`][asgi_cache.backends.Backend.invalidate]; fails fast while the
        breaker is open, except with a ``budget`` of its own: an invalidation that must land now (an
        unsafe request's) is tried anyway, since a breaker opened by slow reads says little about
        whether one write can get through, and a skipped one leaves stale entries served
        elsewhere."""
        if budget is None:
            self._admit("invalidate")
        return await self._track(self.inner.invalidate(tag_keys, budget=budget))

    async def delete_prefix(
        self, prefix: str, *, batch: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        """See [`Backend.delete_prefix`][asgi_cache.backends.Backend.delete_prefix]; fails fast
        while the breaker is open."""
        self._admit("delete_prefix")
        return await self._track(self.inner.delete_prefix(prefix, batch=batch, progress=progress))

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        """See [`Backend.acquire_lock`][asgi_cache.backends.Backend.acquire_lock]; a lock held by
        another is not a failure."""
        self._admit("lock")
        return await self._track(self.inner.acquire_lock(key, token, ttl))

    async def extend_lock(self, key: str, token: str, ttl: float) -> bool:
        """See [`Backend.extend_lock`][asgi_cache.backends.Backend.extend_lock]; fails fast while
        the breaker is open."""
        self._admit("lock extend")
        return await self._track(self.inner.extend_lock(key, token, ttl))

    async def release_lock(self, key: str, token: str) -> bool:
        """See [`Backend.release_lock`][asgi_cache.backends.Backend.release_lock]; fails fast while
        the breaker is open."""
        self._admit("unlock")
        return await self._track(self.inner.release_lock(key, token))

    async def set_if_locked(
        self,
        key: str,
        value: bytes,
        ttl: float,
        deps: Sequence[Dependency],
        lock_key: str,
        token: str,
    ) -> bool:
        """See [`Backend.set_if_locked`][asgi_cache.backends.Backend.set_if_locked]; "not stored" is
        an answer, not a failure."""
        self._admit("fenced set")
        return await self._track(self.inner.set_if_locked(key, value, ttl, deps, lock_key, token))

    async def publish(self, channel: str) -> None:
        """See [`Backend.publish`][asgi_cache.backends.Backend.publish]; fails fast while the
        breaker is open."""
        self._admit("publish")
        await self._track(self.inner.publish(channel))

    async def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        """See [`Backend.subscribe`][asgi_cache.backends.Backend.subscribe]; fails fast while the
        breaker is open."""
        self._admit("subscribe")
        await self._track(self.inner.subscribe(prefix, callback))

    async def track(self, prefixes: Sequence[str], callback: Callable[[str], None]) -> None:
        """See [`Backend.track`][asgi_cache.backends.Backend.track]; fails fast while the
        breaker is open. Not counted: a refusal or a slow setup of the tracking connection
        says nothing about the data operations."""
        self._admit("track")
        await self.inner.track(prefixes, callback)

    async def ping(self) -> float:
        """See [`Backend.ping`][asgi_cache.backends.Backend.ping]; fails fast while the breaker is
        open."""
        self._admit("ping")
        return await self._track(self.inner.ping())

    async def info(self) -> dict[str, Any]:
        """See [`Backend.info`][asgi_cache.backends.Backend.info]; fails fast while the breaker is
        open."""
        self._admit("info")
        return await self._track(self.inner.info())

    async def aclose(self) -> None:
        """Stop probing and close the wrapped backend."""
        await self._probes.aclose()  # let it unwind; our own cancellation still raises
        await self.inner.aclose()
