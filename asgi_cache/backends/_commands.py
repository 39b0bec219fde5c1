"""The operations that are one plain command on any Redis, one node or a cluster.

`PlainCommands` is shared by [`RedisBackend`][asgi_cache.backends.RedisBackend] and
[`ClusterBackend`][asgi_cache.backends.ClusterBackend]: each key it touches is a single-key command
(``DEL``/``UNLINK`` of many keys is split by slot by redis-py's cluster client), run through
the backend's own boundary (``_run``: budget, admission, error mapping).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._errors import ms


class PlainCommands:
    """Raw bookkeeping, deletes and lock acquisition, for a backend with ``client`` and
    ``_run``."""

    client: Any
    """The redis-py client (``Redis`` or ``RedisCluster``)."""

    async def _run(
        self, what: str, coro: Any, *, bounded: bool = True, budget: float | None = None
    ) -> Any:
        raise NotImplementedError  # pragma: no cover - every backend defines its boundary

    async def delete(self, *keys: str) -> int:
        """See [`Backend.delete`][asgi_cache.backends.Backend.delete]."""
        if not keys:
            return 0
        return int(await self._run("UNLINK", self.client.unlink(*keys)))

    async def get_raw(self, key: str) -> bytes | None:
        """See [`Backend.get_raw`][asgi_cache.backends.Backend.get_raw]."""
        value = await self._run("GET", self.client.get(key))
        return None if value is None else bytes(value)

    async def set_raw(self, key: str, value: bytes, ttl: float) -> None:
        """See [`Backend.set_raw`][asgi_cache.backends.Backend.set_raw]."""
        await self._run("SET", self.client.set(key, value, px=ms(ttl)))

    async def acquire_lock(self, key: str, token: str, ttl: float) -> bool:
        """See [`Backend.acquire_lock`][asgi_cache.backends.Backend.acquire_lock]."""
        return bool(await self._run("lock", self.client.set(key, token, nx=True, px=ms(ttl))))


def decode_versions(replies: Sequence[Any]) -> list[str]:
    """Tag versions as text. Total: a tag key holding foreign bytes gives a version that
    matches nothing (its entries are misses, stores under it are refused), never a
    ``UnicodeDecodeError``."""
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in replies]
