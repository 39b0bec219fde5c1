"""asgi-cache: async caching for ASGI apps, backed by Redis.

Three pillars: [`CacheMiddleware`][asgi_cache.CacheMiddleware] caches GET/HEAD responses with RFC
9111 semantics; ``cache.get_or_load`` and ``cache.aside`` do cache-aside with stampede protection;
tags invalidate everything derived from changed data. See the README and ``docs/``.
"""

from __future__ import annotations

from ._exceptions import (
    BackendBusyError,
    BackendError,
    BackendReplyError,
    BackendTimeoutError,
    BacklogFullError,
    CacheError,
    ConfigurationError,
    EventLoopError,
    SerializationError,
)
from ._stats import CacheStats
from ._templates import fill_tag
from ._write_behind_status import WriteBehindStatus
from .cache import Cache
from .health import CacheHealth, HealthApp
from .http import CacheMiddleware
from .near import NearCache
from .settings import CacheSettings
from .write_behind import Change, DeadLetter, WriteBehind

__all__ = [
    "BackendBusyError",
    "BackendError",
    "BackendReplyError",
    "BackendTimeoutError",
    "BacklogFullError",
    "Cache",
    "CacheError",
    "CacheHealth",
    "CacheMiddleware",
    "CacheSettings",
    "CacheStats",
    "Change",
    "ConfigurationError",
    "DeadLetter",
    "EventLoopError",
    "HealthApp",
    "NearCache",
    "SerializationError",
    "WriteBehind",
    "WriteBehindStatus",
    "fill_tag",
]

__version__ = "0.1.0"
