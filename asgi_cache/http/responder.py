"""Answering one client: from a stored response, with an answer of the cache's own, or by
letting the app answer with only the outcome's headers added.

What an answer holds is decided by `serving` (pure); a `Responder` sends it and
remembers whether the client has seen a response start, which decides whether a failing
origin may still be replaced by a stale entry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from starlette.types import Message, Receive, Send

from .context import Headers, HttpContext
from .hits import Header, Prepared
from .responses import FLAG_GZIP, StoredResponse
from .rules import clip
from .serving import Answer, answer, part_answer, wants_gzip
from .status import CacheStatus, Fwd

logger = logging.getLogger("asgi_cache.http")
_GENERAL: Final = frozenset({"range", "if-none-match", "if-modified-since"})
"""Request fields whose answer takes the general path (`serving.answer`: 304, 206, 416)."""


class Responder:
    """Sends the answer of one request (nothing at all for a background refresh).

    Args:
        ctx: The middleware's context.
        scope: The request's scope.
        receive: The client's ``receive``.
        send: The client's ``send``; ``None`` for a background refresh.
        headers: The request's headers (lowercase names), for content coding and
            conditionals.
    """

    __slots__ = ("asked_app", "background", "ctx", "headers", "receive", "scope", "send", "started")

    def __init__(
        self,
        ctx: HttpContext,
        scope: dict[str, Any],
        receive: Receive,
        send: Send | None,
        headers: dict[str, str],
    ) -> None:
        self.ctx = ctx
        self.scope = scope
        self.receive = receive
        self.background = send is None
        self.send: Send = send or _discard
        self.headers = headers
        self.started = False
        """Whether a response start was sent to the client."""
        self.asked_app = False
        """Whether the app was called for this request (else the cache answered alone)."""

    async def serve(
        self,
        stored: StoredResponse,
        status: CacheStatus,
        *,
        with_age: bool = False,
        validated: bool = False,
        extra: Headers | None = None,
    ) -> None:
        """Answer the client from ``stored`` (304 when its validators match, 206 for a
        range). ``validated``: the response was just received or revalidated; ``extra``:
        origin fields the entry does not keep, for the request that fetched it."""
        if self.background:
            return
        ctx = self.ctx
        now = ctx.clock() if with_age else None
        await self._serve(stored, ctx.status_headers(status), now, validated, extra)

    async def serve_hit(
        self, prepared: Prepared, status_headers: Sequence[Header], now: float
    ) -> None:
        """Answer the client from a stored entry's `Prepared` response, as `serve` does
        (``status_headers``: the outcome's; ``now``: the instant its freshness was judged,
        for ``Age``): a request without validators or a range gets the form its
        representation was first sent in, with its own ``Age`` and outcome."""
        if self.background:
            return
        stored = prepared.stored
        request = self.headers
        form = None
        if request.keys().isdisjoint(_GENERAL):
            gzip = stored.flags & FLAG_GZIP != 0 and wants_gzip(stored, request)
            form = prepared.forms[gzip] or prepared.form(gzip, self.ctx.rules.targeted)
        if form is None:  # validators or a range (304, 206, 416), or a corrupt body
            await self._serve(stored, list(status_headers), now, False, None)
            return
        age = int(now - stored.created_at)
        age_header = (b"age", b"%d" % age if age > 0 else b"0")
        headers = [*form.headers, age_header, *form.tail, *status_headers]
        self.started = True
        send = self.send
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        body = b"" if self.scope["method"] == "HEAD" else form.body
        await send({"type": "http.response.body", "body": body})

    async def _serve(
        self,
        stored: StoredResponse,
        status_headers: Headers,
        now: float | None,
        validated: bool,
        extra: Headers | None,
    ) -> None:
        ctx = self.ctx
        result = answer(
            stored,
            self.headers,
            head=self.scope["method"] == "HEAD",
            status_headers=status_headers,
            now=now,
            validated=validated,
            hidden=ctx.rules.targeted,
            extra=extra,
        )
        if result is None:
            logger.warning(
                "asgi-cache: ignoring a corrupt gzip body stored for %s", clip(self.scope["path"])
            )
            await self.passthrough(CacheStatus.forwarded(Fwd.MISS, "corrupt"))
            return
        await self.send_answer(result)

    async def serve_part(self, stored: StoredResponse, status: CacheStatus) -> bool:
        """Answer a range request from a stored partial response; ``False`` (nothing sent)
        when its parts cannot answer it."""
        ctx = self.ctx
        result = part_answer(
            stored,
            self.headers,
            status_headers=ctx.status_headers(status),
            now=ctx.clock(),
            hidden=ctx.rules.targeted,
        )
        if result is None:
            return False
        await self.send_answer(result)
        return True

    async def send_answer(self, result: Answer) -> None:
        """Send an answer the cache made (a hit, a 304, a 504 for ``only-if-cached``)."""
        self.started = True
        start = {"type": "http.response.start", "status": result.status, "headers": result.headers}
        await self.send(start)
        await self.send({"type": "http.response.body", "body": result.body})

    def start_headers(self, headers: Headers, status: CacheStatus) -> Headers:
        """The headers of an app's response start about to be sent as it is: the app's, as
        clients see them, and the outcome's (the caller sends the start next)."""
        self.started = True
        return self.ctx.client_headers(headers) + self.ctx.status_headers(status)

    async def passthrough(self, status: CacheStatus) -> None:
        """Let the app answer, only adding ``Cache-Status`` (and hiding ``Cache-Tag``)."""
        ctx = self.ctx

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = self.start_headers(list(message.get("headers", [])), status)
                message = {**message, "headers": headers}
            await self.send(message)

        self.asked_app = True
        await ctx.app(self.scope, self.receive, send)


async def _discard(message: Message) -> None:
    return None
