"""A write-behind producer process: ``python -m tests.wb_producer N NAME OUT``.

Writes ``N`` changes through ``tests.wb_worker_app:wb`` (its cache comes from
``ASGI_CACHE_URL``) over ``WB_KEYS`` keys (default 200), with values ``NAME-i``, and then
writes one line per acknowledged write to ``OUT``: ``key version value``. A write that
raises ``BackendError`` (a loaded machine) is tried again until acknowledged, and counted on
the last line, ``failed N``: such a write may have landed without being acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from asgi_cache import BackendError
from tests.wb_worker_app import wb


async def produce(n: int, name: str) -> list[str]:
    """Write ``n`` changes; return a line per acknowledged one."""
    keys = int(os.environ.get("WB_KEYS", "200"))
    lines = []
    failed = 0
    async with wb:
        for i in range(n):
            key, value = f"k:{i % keys}", f"{name}-{i}"
            while True:
                try:
                    version = await wb.write(key, value)
                    break
                except BackendError:
                    failed += 1
            lines.append(f"{key} {version} {value}\n")
    return [*lines, f"failed {failed}\n"]


if __name__ == "__main__":
    count, who, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    out.write_text("".join(asyncio.run(produce(count, who))))
