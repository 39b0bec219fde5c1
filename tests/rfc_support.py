"""The RFC conformance tests' harness: ``CacheMiddleware(cache_all=True)`` in front of a
scripted origin.

Each test scripts the origin's responses (status, headers with times relative to the test's
clock, body), sends requests, and decides "served from cache" or "forwarded" by counting the
origin's calls, never by ``Cache-Status`` alone. The clock is the suite's settable one
(``tests.http_support.Clock``): advancing it ages entries without sleeping.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from asgi_cache import Cache, CacheMiddleware
from asgi_cache.http.dates import format_http_date

from .http_support import Clock, client_for

Headers = list[tuple[str, str]]


@dataclass
class Reply:
    """One scripted response. ``body=None``: ``"<path>#<call number>"``, so a test can tell
    which origin call produced what it got."""

    status: int = 200
    headers: Headers = field(default_factory=list)
    body: bytes | None = None
    raises: bool = False


class Origin:
    """An ASGI app answering each path with its scripted replies, in order (the last one
    repeats), and recording every request it sees."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.calls: Counter[str] = Counter()
        self.seen: list[dict[str, str]] = []
        self.methods: list[str] = []

    def script(self, path: str, *replies: Reply) -> None:
        """Set the replies of ``path``."""
        self.replies[path] = list(replies)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.calls[path] += 1
        self.methods.append(scope["method"])
        self.seen.append(
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        )
        queue = self.replies.get(path) or [Reply()]
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.raises:
            raise RuntimeError("origin down")
        body = reply.body if reply.body is not None else f"{path}#{self.calls[path]}".encode()
        headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in reply.headers]
        if not any(k == b"content-length" for k, _ in headers) and reply.status != 304:
            headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if reply.status == 304 else body})


class Site:
    """The middleware in ``cache_all`` mode in front of an :class:`Origin`."""

    def __init__(self, cache: Cache, clock: Clock, **options: Any) -> None:
        self.origin = Origin()
        self.clock = clock
        options.setdefault("cache_all", True)
        self.app = CacheMiddleware(self.origin, cache=cache, **options)

    def date(self, offset: float = 0.0) -> str:
        """An IMF-fixdate ``offset`` seconds from the test clock's now."""
        return format_http_date(self.clock.time() + offset)

    def calls(self, path: str = "/r") -> int:
        """How many times the origin was asked for ``path``."""
        return self.origin.calls[path]

    async def request(
        self, method: str, path: str = "/r", headers: Headers | dict[str, str] | None = None
    ) -> httpx.Response:
        """Send one request through the middleware."""
        async with client_for(self.app) as client:
            return await client.request(method, path, headers=headers)

    async def get(
        self, path: str = "/r", headers: Headers | dict[str, str] | None = None
    ) -> httpx.Response:
        """``GET path``."""
        return await self.request("GET", path, headers)
