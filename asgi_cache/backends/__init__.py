"""Storage backends: :class:`MemoryBackend` (``memory://``), :class:`RedisBackend` and
:class:`ClusterBackend` (``redis+cluster://``).

:class:`CircuitBreakerBackend` wraps either to skip a backend that is down.
"""

from __future__ import annotations

from .base import Backend, Dependency
from .breaker import BreakerSnapshot, BreakerState, CircuitBreakerBackend
from .cluster import ClusterBackend, NodeAddress
from .memory import MemoryBackend
from .redis import RedisBackend

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
]
