"""Reusing a POST response for later GETs (RFC 9110 section 9.3.3, RFC 9111 section 4).

"Responses to POST requests are only cacheable when they include explicit freshness
information and a Content-Location header field that has the same value as the POST's
target URI. A cached POST response can be reused to satisfy a later GET or HEAD request."
With ``store_post_responses=True`` (``cache_all`` mode only; opt-in routes keep their
policies), such a response is stored as the ``GET`` entry of its URI, after the POST's own
invalidation of that URI (RFC 9111 section 4.4), so the next ``GET`` is answered from it.
A POST is never answered from the cache.

Everything else a GET response must satisfy applies (no ``private``, ``no-store`` or
``Set-Cookie``, a storable status, no credentials unless explicitly shareable, the body
within ``max_body_bytes``). The response reaches the client as the app sends it (chunks are
forwarded as they come, a copy is kept). Traffic Server, Squid, Varnish, nginx and httpd do
not store POST responses by default.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Send

from .._store import WriteResult
from .._tags import NO_SNAPSHOT
from .context import HttpContext
from .freshness import explicit_lifetime
from .invalidation import same_origin_path
from .keying import RequestKey, url_tag_for
from .policy import ResponsePolicy
from .rules import ResponseFacts, credentials_reason
from .storing import build_response


class PostResponse:
    """The ``send`` a POST's response goes through: forwarded, and kept when reusable."""

    __slots__ = (
        "chunks",
        "ctx",
        "facts",
        "policy",
        "request_time",
        "scope",
        "send",
        "size",
        "snapshot",
    )

    def __init__(self, ctx: HttpContext, scope: dict[str, Any], send: Send) -> None:
        self.ctx = ctx
        self.scope = scope
        self.send = send
        self.facts: ResponseFacts | None = None
        self.chunks: list[bytes] | None = None
        self.size = 0
        self.snapshot = NO_SNAPSHOT
        self.request_time = ctx.clock()
        get_scope = {**scope, "method": "GET"}
        resolution = ctx.resolver.resolve(get_scope, ctx.app)
        # Only where the response's own Cache-Control rules (cache_all, no route policy).
        self.policy: ResponsePolicy | None = (
            resolution.fallback if resolution.response is None else None
        )

    async def __call__(self, message: Message) -> None:
        """Forward one message of the app's response, keeping a copy when reusable."""
        kind = message["type"]
        if kind == "http.response.start":
            await self._start(message)
        elif kind == "http.response.body" and self.chunks is not None:
            body = message.get("body", b"")
            self.chunks.append(body)
            self.size += len(body)
            if self.size > self.ctx.options.max_body_bytes:
                self.chunks = None
        elif self.chunks is not None:
            self.chunks = None  # trailers, pathsend: not replayable
        await self.send(message)
        if kind == "http.response.body" and not message.get("more_body", False):
            await self._store()

    async def _start(self, message: Message) -> None:
        policy = self.policy
        if policy is None or not 200 <= message["status"] < 300 or message.get("trailers"):
            return
        facts = ResponseFacts.parse(message["status"], list(message.get("headers", [])))
        facts.use_targeted(self.ctx.rules.targeted)
        if explicit_lifetime(facts.cc, facts.expires, facts.date, self.ctx.clock()) is None:
            return
        if not self._location_is_target(facts):
            return
        key = RequestKey(self.scope, self.ctx.keying, self.ctx.digests)
        reason = facts.unstorable_reason(
            policy,
            credentials=credentials_reason(key.headers, policy),
            explicit_only=True,
            max_body_bytes=self.ctx.options.max_body_bytes,
        )
        if reason is None:
            self.facts = facts
            self.chunks = []
            # Read now, after this POST's own invalidation of the URI (it ran before the
            # start reached us) and before the body: a later invalidation wins.
            tags = (url_tag_for(self.scope["path"]),)
            self.snapshot = await self.ctx.store.tags.snapshot(tags)

    def _location_is_target(self, facts: ResponseFacts) -> bool:
        scope = self.scope
        host = next((v for n, v in scope["headers"] if n.lower() == b"host"), b"")
        for name, value in facts.headers:
            if name.lower() == b"content-location":
                location = value.decode("latin-1")
                path = same_origin_path(
                    location, scope["path"], host.decode("latin-1").strip().lower()
                )
                query = location.partition("?")[2].partition("#")[0]
                target_query = scope.get("query_string", b"").decode("latin-1")
                return bool(path == scope["path"] and query == target_query)
        return False

    async def _store(self) -> None:
        facts, chunks, policy = self.facts, self.chunks, self.policy
        self.chunks = None
        if facts is None or chunks is None or policy is None:
            return
        ctx = self.ctx
        get_scope = {**self.scope, "method": "GET"}
        key = RequestKey(get_scope, ctx.keying, ctx.digests)
        stored = build_response(
            facts,
            b"".join(chunks),
            policy,
            ctx.rules,
            now=ctx.clock(),
            explicit_only=True,
            request_time=self.request_time,
        )
        if stored is None:
            return
        store = ctx.store
        vary = facts.vary or ()
        names = tuple(sorted({*policy.key_names, *vary}))
        ttl = stored.stale_until - ctx.clock()
        snapshot = await store.tags.extend(self.snapshot, stored.tags, ttl=ttl)
        result = await store.write(ctx.full_key(key, names, policy), stored.to_entry(), snapshot)
        if result is WriteResult.STORED:
            await ctx.remember(key, vary, stored.tags, stored.stale_until - ctx.clock())
