"""Counters behind ``cache.stats()`` and a rate-limited error log."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RateLimitedLog", "Stats"]


@dataclass(slots=True)
class Stats:
    """Counters of one :class:`~asgi_cache.Cache` since it was created."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    errors: int = 0
    corrupt: int = 0
    sets: int = 0
    deletes: int = 0
    loads: int = 0
    lock_waits: int = 0
    invalidations: int = 0

    def snapshot(self) -> dict[str, Any]:
        """The counters as a dict, plus ``hit_rate`` (hits over hits and misses, 0.0 if none)."""
        out: dict[str, Any] = asdict(self)
        looked_up = self.hits + self.stale + self.misses
        out["hit_rate"] = round((self.hits + self.stale) / looked_up, 4) if looked_up else 0.0
        return out


class RateLimitedLog:
    """Logs a kind of message at most once per ``interval`` seconds, counting the rest.

    A Redis outage under load would otherwise write one line per request; this writes one line
    per interval and says how many similar ones were suppressed.
    """

    __slots__ = ("_last", "_logger", "_suppressed", "interval")

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log ``message`` unless a ``kind`` message was logged within the interval.

        Returns whether it was logged.
        """
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args)
        return True
