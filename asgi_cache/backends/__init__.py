"""Storage backends: [`MemoryBackend`][asgi_cache.backends.MemoryBackend] (``memory://``),
[`RedisBackend`][asgi_cache.backends.RedisBackend],
[`ClusterBackend`][asgi_cache.backends.ClusterBackend] (``redis+cluster://``) and
[`SentinelBackend`][asgi_cache.backends.SentinelBackend] (``redis+sentinel://``).

[`CircuitBreakerBackend`][asgi_cache.backends.CircuitBreakerBackend] wraps either to skip a backend
that is down.
"""

from __future__ import annotations

from ._tracking import NodeAddress
from .base import Backend, Dependency
from .breaker import BreakerSnapshot, BreakerState, CircuitBreakerBackend
from .cluster import ClusterBackend
from .memory import MemoryBackend
from .redis import RedisBackend
from .sentinel import SentinelBackend

__all__ = [
    "Backend",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreakerBackend",
    "ClusterBackend",
    "Dependency",
    "MemoryBackend",
    "NodeAddress",
    "RedisBackend",
    "SentinelBackend",
]
