"""The health endpoint: a small pure ASGI app describing one :class:`~asgi_cache.Cache`.

Serve it from any Starlette or FastAPI app, at an exact path::

    app.router.routes.append(Route("/health/cache", cache.health_route()))
    app.mount("/health/cache", cache.health_route())   # answers at /health/cache/ and below

``GET`` (and ``HEAD``) answer JSON built from ``await cache.health()`` and ``cache.stats()``:
``status`` (``healthy``, ``degraded`` or ``down``), ping latency, memory use and limit, the
eviction policy, the hit rate, the circuit breaker's state when the cache has one, and the
counters. The status code is 200 when the cache is healthy or degraded (the app works either
way) and 503 when the backend does not answer, so a load balancer or orchestrator can act on it.
The answer is never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["HealthApp", "health_report"]

logger = logging.getLogger("asgi_cache")


_ALLOWED = "GET, HEAD"


async def health_report(cache: Cache) -> dict[str, Any]:
    """Describe ``cache``: ``await cache.health()`` plus ``cache.stats()`` under ``stats``.

    The breaker's state, when the cache's stats carry one, is also copied to the top level
    as ``breaker``. Never raises: an unexpected failure while probing is reported as
    ``status: down`` with the error.

    Args:
        cache: The cache to describe.

    Returns:
        A JSON-serializable dict.
    """
    try:
        report = dict(await cache.health())
    except Exception as exc:  # a health probe must answer, whatever broke
        logger.warning("asgi-cache: health probe failed: %r", exc)
        report = {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
    try:
        stats = dict(cache.stats())
    except Exception as exc:  # pragma: no cover - stats() only reads counters
        stats = {"error": f"{type(exc).__name__}: {exc}"}
    report["stats"] = stats
    if "breaker" in stats and "breaker" not in report:
        report["breaker"] = stats["breaker"]
    return report


def status_code(report: dict[str, Any]) -> int:
    """HTTP status for a health report: 503 when the backend is down, else 200."""
    return 503 if report.get("status") == "down" else 200


class HealthApp:
    """An ASGI app answering ``GET``/``HEAD`` with the cache's health as JSON.

    Build it with :meth:`Cache.health_route <asgi_cache.Cache.health_route>`. Any path under
    its mount point answers the same way; other methods get ``405``. It also answers the ASGI
    lifespan protocol, so it can be served on its own (``uvicorn`` on a separate port).

    Args:
        cache: The cache to describe.
    """

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            body = orjson.dumps({"error": f"method {method} not allowed; use GET"})
            await _respond(send, 405, body, extra=[(b"allow", _ALLOWED.encode())])
            return
        report = await health_report(self.cache)
        body = orjson.dumps(report, default=str, option=orjson.OPT_SORT_KEYS)
        await _respond(send, status_code(report), body, head=method == "HEAD")


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    head: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # A health answer describes this instant: no cache along the way may keep it.
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
