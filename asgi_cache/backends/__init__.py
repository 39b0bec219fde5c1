"""Storage backends: :class:`MemoryBackend` (``memory://``) and :class:`RedisBackend`."""

from __future__ import annotations

from .base import Backend, Dependency
from .memory import MemoryBackend
from .redis import RedisBackend

__all__ = ["Backend", "Dependency", "MemoryBackend", "RedisBackend"]
