"""The exceptions asgi-cache raises.

Every exception derives from [`CacheError`][asgi_cache.CacheError], so one ``except CacheError``
catches all of them. Exceptions from dependencies (redis-py, the serializers) are mapped to these at
the boundary and never leak out under their own names::

    CacheError
    ├── ConfigurationError   (also a ValueError) bad settings or arguments
    ├── BackendError         the storage backend failed or timed out
    │   ├── BackendTimeoutError
    │   ├── BackendBusyError  no pooled connection came free in time
    │   └── BackendReplyError the backend answered with an error (READONLY, OOM, ...)
    ├── SerializationError   (also a TypeError) a value cannot be encoded or decoded
    ├── EventLoopError       (also a RuntimeError) used from two running event loops at once
    └── BacklogFullError     a write-behind backlog is at its limit (policy "refuse")

The data API (``get``, ``set``, ``delete``, ``get_or_load``, ``invalidate_tags``) never raises
[`BackendError`][asgi_cache.BackendError] to its callers: it fails open, counts the error and logs
it. A lock that cannot be taken, extended or released is the same: the caller loads without it, and
the lease runs out on its own. Backend errors surface only from operator calls that ask for
a count, such as ``invalidate_prefix()``; ``health()`` reports a backend that does not
answer as ``status: down`` instead of raising.
"""

from __future__ import annotations


class CacheError(Exception):
    """Base class of every exception raised by asgi-cache."""


class ConfigurationError(CacheError, ValueError):
    """A setting or argument has a value that is not allowed.

    The message names the setting (for environment variables, the variable itself), the value
    that was given and what is allowed.
    """


class BackendError(CacheError):
    """The storage backend failed: connection refused or reset, error reply, or timeout."""


class BackendTimeoutError(BackendError):
    """A backend operation did not complete within its time budget."""


class BackendBusyError(BackendError):
    """No pooled connection came free within the pool wait (``pool_timeout``).

    This process is saturated; it says nothing about the backend's own health, so the circuit
    breaker does not count it as a failure.
    """


class BackendReplyError(BackendError):
    """The backend answered, with an error about this command (``READONLY``, ``OOM``,
    ``WRONGTYPE``, a script error, ...).

    The backend is up and answering fast, so the circuit breaker does not count it as a
    failure; the operation itself still fails open.
    """


class SerializationError(CacheError, TypeError):
    """A value cannot be encoded for storage, or stored bytes cannot be decoded."""


class EventLoopError(CacheError, RuntimeError):
    """The cache is in use on an event loop that is still running while another one asks.

    A cache's connections belong to one event loop. Used from a new loop after the old one
    ended (two ``asyncio.run`` calls, pytest's per-test loops), the cache drops them and
    reconnects on its own; two loops running at once (one per thread) cannot share them:
    build one ``Cache`` per event loop (per thread) instead.
    """


class BacklogFullError(CacheError):
    """A write-behind log holds ``max_backlog`` changes not yet handled and its policy is
    ``"refuse"``: the change was neither cached nor queued (nothing is lost silently; the
    caller decides, for example by answering 503 or writing to the database itself)."""
