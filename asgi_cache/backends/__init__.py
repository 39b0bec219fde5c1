"""Storage backends: :class:`MemoryBackend` (``memory://``) and :class:`RedisBackend`.

:class:`CircuitBreakerBackend` wraps either to skip a backend that is down.
"""

from __future__ import annotations

from .base import Backend, Dependency
from .breaker import BreakerSnapshot, BreakerState, CircuitBreakerBackend
from .memory import MemoryBackend
from .redis import RedisBackend

__all__ = [
    "Backend",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreakerBackend",
    "Dependency",
    "MemoryBackend",
    "RedisBackend",
]
