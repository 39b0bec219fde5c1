"""The read-only ASGI shell of the health, metrics and dashboard apps.

Each answers ``GET``/``HEAD`` only (anything else is ``405``: nothing in them is writable),
closes WebSockets, answers the lifespan protocol (so it can be served on its own port), and
marks every answer ``Cache-Control: no-store``: it describes an instant.
"""

from __future__ import annotations

from typing import NamedTuple

from starlette.types import Receive, Scope, Send


class Reply(NamedTuple):
    """One answer of a read-only app."""

    status: int
    content_type: str
    body: bytes


class ReadOnlyApp:
    """Base of the health, metrics and dashboard apps: subclasses implement `answer`."""

    def refusal(self, method: str) -> Reply:
        """The answer to ``method``, any but ``GET`` and ``HEAD``."""
        body = f"method {method} not allowed; use GET (read-only)\n".encode()
        return Reply(405, "text/plain; charset=utf-8", body)

    async def answer(self, path: str) -> Reply:
        """The reply for a ``GET`` of ``path`` (relative to the mount point, ``/`` at least)."""
        raise NotImplementedError

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
            await _send(send, self.refusal(method), head=False, extra=[(b"allow", b"GET, HEAD")])
            return
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # Starlette's Mount keeps the prefix in path
        path = path or "/"
        reply = await self.answer(path)
        await _send(send, reply, head=method == "HEAD", extra=self.headers(path))

    def headers(self, path: str) -> list[tuple[bytes, bytes]]:
        """Extra response headers for ``path`` (none by default)."""
        return []


async def _send(
    send: Send, reply: Reply, *, head: bool, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
