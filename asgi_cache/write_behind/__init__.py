"""Write-behind on Redis Streams: cache a write now, save it to the database later, in batches.

``wb = cache.write_behind("user-visits", handler=save_batch)`` builds a
[`WriteBehind`][asgi_cache.WriteBehind]; ``await wb.write(key, value)`` caches the value and
appends the change to a durable log in one atomic step; a worker (``await wb.run()``,
``wb.start()`` or ``asgi-cache worker module:wb``) hands the changes to ``handler`` in batches
of [`Change`][asgi_cache.Change], acknowledging only what it committed. See
``docs/write-behind.md``.
"""

from __future__ import annotations

from .changes import Change, DeadLetter, Handler
from .options import BacklogPolicy, WriteBehindOptions
from .writer import WriteBehind

__all__ = [
    "BacklogPolicy",
    "Change",
    "DeadLetter",
    "Handler",
    "WriteBehind",
    "WriteBehindOptions",
]
