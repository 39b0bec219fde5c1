"""The one error boundary of the Redis backends: a time budget and redis-py errors mapped.

`run_mapped` runs one operation of [`RedisBackend`][asgi_cache.backends.RedisBackend] or
[`ClusterBackend`][asgi_cache.backends.ClusterBackend] under its time budget and turns every
redis-py error, socket error or timeout into [`BackendError`][asgi_cache.BackendError] or one of its
subclasses, raised ``from`` the original so the cause stays in the traceback:

- [`BackendTimeoutError`][asgi_cache.BackendTimeoutError]: the budget ran out, or redis-py timed
  out;
- [`BackendBusyError`][asgi_cache.BackendBusyError]: no pooled connection was free (a local
  saturation, not a Redis fault: the circuit breaker does not count it);
- [`BackendReplyError`][asgi_cache.BackendReplyError]: Redis answered with an error about that
  command (``READONLY``, ``OOM``, ``WRONGTYPE``, a script error, ``CROSSSLOT``);
- [`BackendError`][asgi_cache.BackendError]: anything else (refused or reset connections, a cluster
  without a node for a slot during a failover).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Final

from redis.exceptions import (
    ClusterDownError,
    MaxConnectionsError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from .._exceptions import (
    BackendBusyError,
    BackendError,
    BackendReplyError,
    BackendTimeoutError,
)


def ms(seconds: float) -> int:
    """``seconds`` as whole milliseconds for ``PX``/``PEXPIRE``, at least 1."""
    return max(1, int(seconds * 1000))


RoundTripSpan = Callable[[str], AbstractContextManager[object]]
"""Makes a tracing span around one Redis round trip, given the operation's name."""


async def run_mapped(
    name: str,
    what: str,
    coro: Awaitable[Any],
    *,
    budget: float,
    bounded: bool = True,
    span: RoundTripSpan | None = None,
) -> Any:
    """Await ``coro`` within ``budget`` seconds, mapping every failure to a ``BackendError``.

    Args:
        name: The backend's name, first word of every message (``redis``, ``redis-cluster``).
        what: The operation, for the message (``GET``, ``invalidate``).
        coro: The operation.
        budget: Seconds it may take.
        bounded: ``False`` when ``coro`` enforces the budget itself (the read batcher does,
            with one timer per round trip instead of one per read).
        span: Wraps the round trip in a tracing span named after ``what`` (set by
            ``cache.instrument(spans=True)``; ``None``, the default, traces nothing).
    """
    if span is not None:
        with span(what):
            return await run_mapped(name, what, coro, budget=budget, bounded=bounded)
    # asyncio.timeout, not anyio.fail_after, on purpose: it cancels once, so redis-py's own
    # clean-up after the cancellation (returning the connection to the pool, which awaits the
    # pool's lock) runs to the end. anyio's scopes cancel every await until the scope is left
    # and would cancel that clean-up too, leaking pooled connections.
    try:
        if not bounded:
            return await coro
        async with asyncio.timeout(budget):
            return await coro
    except MAPPED as exc:
        raise mapped(name, what, exc, budget) from exc


MAPPED: Final = (TimeoutError, RedisError, RedisClusterException, OSError)
"""What `mapped` turns into a ``BackendError`` (for a caller that catches them itself)."""


def mapped(name: str, what: str, exc: BaseException, budget: float) -> BackendError:
    """The ``BackendError`` for ``exc`` (one of `MAPPED`), as `run_mapped` raises it.

    For a hot path that awaits its operation directly, bounded by a timer of its own (the
    lean read connection), rather than through `run_mapped`: it raises
    ``mapped(...) from exc``.
    """
    if isinstance(exc, TimeoutError):
        return BackendTimeoutError(f"{name} {what} timed out after {budget * 1000:.0f} ms")
    return map_error(name, what, exc)


def map_error(name: str, what: str, exc: BaseException) -> BackendError:
    """The [`BackendError`][asgi_cache.BackendError] that stands for the redis-py error ``exc``."""
    text = f"{name} {what} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, MaxConnectionsError) or (
        isinstance(exc.__cause__, TimeoutError) and "No connection available" in str(exc)
    ):
        # A full pool (redis-py's cluster pool raises at once; the BlockingConnectionPool
        # gave up waiting, pool_timeout): local saturation, not a Redis fault.
        return BackendBusyError(f"{name} {what}: no pooled connection free within the pool wait")
    if "timeout" in type(exc).__name__.lower():
        return BackendTimeoutError(f"{name} {what} timed out: {exc}")
    if isinstance(exc, ResponseError) and not isinstance(exc, ClusterDownError):
        # READONLY, OOM, WRONGTYPE, script errors, CROSSSLOT: an answer about this command.
        # CLUSTERDOWN is not: a slot has no master (a failover under way), like a dead node.
        return BackendReplyError(text)
    return BackendError(text)
