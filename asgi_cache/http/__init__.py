"""HTTP response caching: [`CacheMiddleware`][asgi_cache.CacheMiddleware] and the route policies it
reads."""

from __future__ import annotations

from .cache_control import CACHEABLE_BY_DEFAULT, HEURISTIC_STATUSES
from .keying import DEFAULT_IGNORED_QUERY_PARAMS
from .middleware import CacheMiddleware
from .policy import InvalidationPolicy, ResponsePolicy

__all__ = [
    "CACHEABLE_BY_DEFAULT",
    "DEFAULT_IGNORED_QUERY_PARAMS",
    "HEURISTIC_STATUSES",
    "CacheMiddleware",
    "InvalidationPolicy",
    "ResponsePolicy",
]
