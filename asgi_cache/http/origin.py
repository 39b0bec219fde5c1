"""One call of the app for a miss (or a background refresh): capture, store, answer.

The exchange decides that a request goes to the origin and hands an `OriginCall`
what it decided (a `Miss`). The call reads the tag versions the entry will depend on
*before* the app runs (so an invalidation while it runs keeps the old answer out of the
cache), sends the entry's validators instead of the client's conditionals when it holds a
stale entry (RFC 9111 section 4.3.1), and lets the app answer through a
`ResponseCapture`, for which it decides what the response is:

- storable: stored under the key of its own ``Vary``, then answered (``fwd=miss; stored``);
- a 304 to our revalidation: the stale entry freshened and served (RFC 9111 section 4.3.4);
- a 5xx (or an exception) inside the stale-if-error window: the stale entry served
  (RFC 5861 section 4); an exception when the stale entry says ``must-revalidate`` (or
  ``proxy-revalidate``, ``s-maxage``): a 504, never the stale entry (RFC 9111 section
  5.2.2.2);
- a single-part 206 to a range miss: stored with the parts already held (`ranges`),
  and sent as the origin sent it;
- anything else: passed through as the app sends it, with the reason in ``Cache-Status``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Final

from starlette.types import Message

from .._entries import Entry, EntryKind
from .._store import WriteResult
from .._tags import NO_SNAPSHOT
from .capture import Mode, ResponseCapture
from .conditional import updates
from .context import Flight, Headers, HttpContext, Shared, release
from .keying import RequestKey
from .partials import combined_with_held
from .policy import ResponsePolicy
from .ranges import content_range, part_reason, partial_key
from .responder import Responder
from .responses import FLAG_MUST_REVALIDATE, StoredResponse
from .rules import ResponseFacts
from .serving import Answer, plain_answer, stale_if_error_ok
from .status import CacheStatus, Fwd
from .storing import build_response, freshen, has_origin_validator, origin_scope

logger = logging.getLogger("asgi_cache.http")

_ACCIDENTS: Final = frozenset({"client-disconnected", "incomplete"})
"""Why a response passed that says nothing about the URL's next response (no marker)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Miss:
    """What the lookup decided about a request that goes to the origin."""

    policy: ResponsePolicy
    explicit_only: bool
    """``cache_all`` mode: only responses with explicit freshness are stored."""
    key: RequestKey
    lookup_names: tuple[str, ...]
    """The header names the lookup keyed on (the URL's remembered Vary and the policy's)."""
    full_key: str
    """The key looked up."""
    tags: tuple[str, ...]
    """Every tag the entry will depend on (the route's, the URL's, the runtime ones)."""
    stale: StoredResponse | None
    """The stored response, when stale (revalidated, or served if the origin fails)."""
    fwd: Fwd
    credentials: str | None
    """The credential header that makes the request private, if any."""
    no_store: bool
    """The request said ``no-store``: nothing is stored."""
    pass_marker: bool = False
    """This request holds the entry's lock (``lock=True``): if the response cannot be
    stored, leave a "not storable" marker so that later misses skip the lock queue."""
    ranged: bool = False
    """A GET with a valid byte ``Range``: forwarded with it when nothing complete is
    stored, and never shared with other requests."""

    def key_for(self, ctx: HttpContext, names: tuple[str, ...]) -> str:
        """The store key of this request's variant for the varied header ``names``."""
        if names == self.lookup_names:
            return self.full_key
        return ctx.full_key(self.key, names, self.policy)


class OriginCall:
    """Calls the app once for a `Miss` (implements `CaptureOwner`).

    Args:
        ctx: The middleware's context.
        responder: Answers the client.
        miss: What the lookup decided.
        flight: The in-process waiters to wake with the stored response, if any.
    """

    __slots__ = (
        "body_sent",
        "ctx",
        "disconnected",
        "done",
        "flight",
        "mark",
        "miss",
        "request_time",
        "responder",
        "revalidating",
        "snapshot",
        "unstorable",
    )

    def __init__(
        self, ctx: HttpContext, responder: Responder, miss: Miss, flight: Flight | None
    ) -> None:
        self.ctx = ctx
        self.responder = responder
        self.miss = miss
        self.flight = flight
        stale = miss.stale
        self.revalidating = stale is not None and has_origin_validator(stale)
        self.snapshot = NO_SNAPSHOT
        self.unstorable: str | None = None
        """Why the response passed through unstored, if it says the URL's responses cannot
        be stored (marked for later misses when holding the lock)."""
        self.disconnected = False
        self.body_sent = False
        self.done = asyncio.Event() if responder.background else None
        self.request_time = ctx.clock()
        """When the request went to the origin (RFC 9111 section 4.2.3)."""
        self.mark = ctx.store.tags.mark()
        """This process's invalidations so far: a later one makes the response unshared."""

    async def run(self) -> None:
        """Call the app, storing its response when allowed."""
        ctx, miss, responder = self.ctx, self.miss, self.responder
        if not miss.no_store:
            self.snapshot = await ctx.store.tags.snapshot(miss.tags, ttl=miss.policy.ttl)
        scope = origin_scope(
            responder.scope,
            miss.stale if self.revalidating else None,
            keep_range=miss.ranged and miss.stale is None,
        )
        capture = ResponseCapture(
            self,
            responder.send,
            max_body_bytes=ctx.options.max_body_bytes,
            head=responder.scope["method"] == "HEAD",
        )
        self.request_time = ctx.clock()
        try:
            self.responder.asked_app = True
            await ctx.app(scope, self._receive, capture)
        except Exception:
            if not responder.started and stale_if_error_ok(miss.stale, ctx.clock()):
                logger.warning("asgi-cache: origin failed; serving stale", exc_info=True)
                await self.serve_stale_on_error(None)
                return
            stale = miss.stale
            if not responder.started and stale is not None and stale.flags & FLAG_MUST_REVALIDATE:
                # RFC 9111 section 5.2.2.2: a must-revalidate response that cannot be
                # revalidated is never reused; the cache answers 504 (Gateway Timeout).
                logger.warning("asgi-cache: origin failed; must-revalidate: 504", exc_info=True)
                await self.gateway_timeout()
                return
            raise
        finally:
            if self.done is not None:
                self.done.set()
        await capture.finish()
        if miss.pass_marker and self.unstorable is not None:
            await self._mark_pass()

    async def _mark_pass(self) -> None:
        """Leave the "not storable" marker of the key (Varnish's hit-for-pass), under the
        snapshot this call read: an invalidation of the URL or of a tag retires it with the
        entries. It lives the policy's ``ttl`` (else the default TTL), capped at
        ``lock_timeout``: short, because the next response may be storable again, and
        never longer than the wait in the lock queue it saves."""
        ctx, miss = self.ctx, self.miss
        store = ctx.store
        settings = store.settings
        ttl = min(miss.policy.ttl or settings.default_ttl, settings.lock_timeout)
        now = ctx.clock()
        marker = Entry(
            kind=EntryKind.NEGATIVE,
            body=b"",
            created_at=now,
            fresh_until=now + ttl,
            stale_until=now + ttl,
        )
        await store.write(store.keys.http_pass(miss.full_key), marker, self.snapshot)

    async def _receive(self) -> Message:
        if self.done is not None:  # a background refresh has no client to read from
            if not self.body_sent:
                self.body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.done.wait()
            return {"type": "http.disconnect"}
        message = await self.responder.receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    # -- what the capture asks (capture.CaptureOwner) ------------------------------------------

    def classify(self, facts: ResponseFacts, start: Message) -> Mode | str:
        """What the app's response is: storable, a 304 or 5xx to answer from the entry, or
        the reason it passes through."""
        miss = self.miss
        facts.use_targeted(self.ctx.rules.targeted)  # RFC 9213 section 2.2
        if self.revalidating and facts.status == 304:
            return Mode.NOT_MODIFIED
        if facts.status >= 500 and stale_if_error_ok(miss.stale, self.ctx.clock()):
            return Mode.ERROR_STALE
        if miss.no_store:
            return "no-store"
        if start.get("trailers"):
            return "trailers"  # trailers are not stored; the response must stream as sent
        reason = facts.unstorable_reason(
            miss.policy,
            credentials=miss.credentials,
            explicit_only=miss.explicit_only,
            max_body_bytes=self.ctx.options.max_body_bytes,
        )
        if reason is None and facts.status == 206:
            reason = part_reason(facts.content_type, asked=miss.ranged and miss.stale is None)
        return Mode.BUFFER if reason is None else reason

    def passing(self, facts: ResponseFacts, detail: str) -> Headers:
        """The response goes to the client as sent: the waiters ask the app themselves."""
        release(self.flight, None)
        if detail not in _ACCIDENTS:
            self.unstorable = detail
        status = CacheStatus.forwarded(self.miss.fwd, detail)
        return self.responder.start_headers(facts.headers, status)

    async def complete(self, facts: ResponseFacts, body: bytes) -> str | None:
        """Store the complete response, then answer it (or say why it cannot be stored)."""
        if self.disconnected:  # the client went away: the body may be cut short
            return "client-disconnected"
        miss = self.miss
        stored = build_response(
            facts,
            body,
            miss.policy,
            self.ctx.rules,
            now=self.ctx.clock(),
            explicit_only=miss.explicit_only,
            request_time=self.request_time,
        )
        if stored is None:
            return "expired"
        if stored.status == 206:
            return await self._complete_part(stored, facts, body)
        ok = await self.store(stored, facts)
        status = CacheStatus.forwarded(
            miss.fwd,
            None if ok else "not-stored",
            fwd_status=facts.status if miss.stale is not None else None,
            stored=ok,
        )
        # The origin's Age is relayed (RFC 9111 section 5.1); none is made up for a response
        # the origin just generated. Fields the entry leaves out go to this client only.
        kept = {n for n, _ in stored.headers}
        extra = [
            (n, v)
            for n, v in self.ctx.client_headers(facts.headers)
            if n.lower() in (facts.private_fields | {b"set-cookie"}) and n.lower() not in kept
        ]
        await self.responder.serve(
            stored, status, with_age=facts.age is not None, validated=True, extra=extra
        )
        return None

    async def _complete_part(
        self, part: StoredResponse, facts: ResponseFacts, body: bytes
    ) -> str | None:
        """Store a 206 with the parts already held (RFC 9111 section 3.4) and send it as
        the origin sent it."""
        if content_range(part.header(b"content-range"), len(body)) is None:
            return "bad-range"  # no part of a known length that matches its body
        ok = await self._store_part(part, facts)
        status = CacheStatus.forwarded(self.miss.fwd, None if ok else "not-stored", stored=ok)
        headers = self.responder.start_headers(facts.headers, status)
        await self.responder.send_answer(Answer(206, headers, body))
        return None

    async def _store_part(self, part: StoredResponse, facts: ResponseFacts) -> bool:
        """Store a 206 with the parts already held, under the key of the parts (or, once
        they cover the representation, as the complete response); whether it was stored."""
        ctx, miss = self.ctx, self.miss
        if content_range(part.header(b"content-range"), len(part.body)) is None:
            return False
        names = tuple(sorted({*miss.policy.key_names, *(facts.vary or ())}))
        combined = await combined_with_held(ctx, miss.key_for(ctx, names), part)
        if combined is None:
            return False
        return await self.store(combined, facts, part=combined.status == 206)

    def streaming(self, facts: ResponseFacts) -> Headers:
        """A storable response streams: its headers say so (whether it gets stored is only
        known at its end); the waiters keep waiting for the copy."""
        miss = self.miss
        fwd_status = facts.status if miss.stale is not None else None
        status = CacheStatus.forwarded(miss.fwd, "streaming", fwd_status=fwd_status)
        return self.responder.start_headers(facts.headers, status)

    def intact(self) -> bool:
        """Whether the client is still there (see `complete`)."""
        return not self.disconnected

    async def streamed(self, facts: ResponseFacts, body: bytes) -> None:
        """Store the copy of a response that streamed to the end within the bound."""
        stored = build_response(
            facts,
            body,
            self.miss.policy,
            self.ctx.rules,
            now=self.ctx.clock(),
            explicit_only=self.miss.explicit_only,
            request_time=self.request_time,
        )
        if stored is None:
            self.abandoned("expired")
            return
        if stored.status == 206:  # a part is never stored as the complete response
            await self._store_part(stored, facts)
            return
        await self.store(stored, facts)

    def abandoned(self, detail: str) -> None:
        """Nothing will be stored of a streamed response: the waiters ask the app."""
        release(self.flight, None)
        if detail not in _ACCIDENTS:
            self.unstorable = detail

    async def finished(self, mode: Mode, facts: ResponseFacts) -> None:
        """Answer from the entry after the app's 304 (freshened) or 5xx (stale-if-error)."""
        stale = self.miss.stale
        if mode is Mode.NOT_MODIFIED and stale is not None:
            if not updates(stale.etag, facts.etag):
                # RFC 9111 section 4.3.4: a 304 naming another strong validator updates
                # nothing; the response is asked for again, unconditionally.
                fresh_miss = replace(self.miss, stale=None)
                await OriginCall(self.ctx, self.responder, fresh_miss, self.flight).run()
                return
            await self._freshen(stale, facts)
        elif mode is Mode.ERROR_STALE:
            await self.serve_stale_on_error(facts.status)

    async def _freshen(self, stale: StoredResponse, facts: ResponseFacts) -> None:
        ctx, miss = self.ctx, self.miss
        merged = freshen(
            stale,
            facts,
            miss.policy,
            ctx.rules,
            now=ctx.clock(),
            explicit_only=miss.explicit_only,
            request_time=self.request_time,
        )
        ok = False if miss.no_store else await self.store(stale, merged)
        ctx.store.stats.hit()
        status = CacheStatus.revalidated(stored=ok)
        await self.responder.serve(stale, status, with_age=True, validated=True)

    async def serve_stale_on_error(self, status: int | None) -> None:
        """Serve the stale entry because the origin failed (RFC 5861 stale-if-error)."""
        stale = self.miss.stale
        if stale is None or self.responder.background:
            return
        self.ctx.store.stats.served_stale()
        status_value = CacheStatus.stale("stale-if-error", status)
        await self.responder.serve(stale, status_value, with_age=True)

    async def gateway_timeout(self) -> None:
        """Answer 504: the origin failed and the stale entry may not be reused."""
        if self.responder.background:
            return
        status = CacheStatus.forwarded(self.miss.fwd, "must-revalidate")
        await self.responder.send_answer(plain_answer(504, self.ctx.status_headers(status)))

    async def store(
        self, stored: StoredResponse, facts: ResponseFacts, *, part: bool = False
    ) -> bool:
        """Write ``stored`` under the key of its own Vary (``part``: the key of its parts),
        remember the URL's Vary names, and hand the response to the waiters; return whether
        it was stored."""
        ctx, miss = self.ctx, self.miss
        store = ctx.store
        vary = facts.vary or ()
        names = tuple(sorted({*miss.policy.key_names, *vary}))
        full_key = miss.key_for(ctx, names)
        if part:
            full_key = partial_key(full_key)
        # Tags named at run time (Cache-Tag) are read now; the next miss of this URL reads
        # them before calling the app, because they are remembered with the Vary names.
        snapshot = await store.tags.extend(
            self.snapshot, stored.tags, ttl=stored.stale_until - ctx.clock()
        )
        result = await store.write(full_key, stored.to_entry(), snapshot)
        await ctx.remember(miss.key, vary, stored.tags, stored.stale_until - ctx.clock())
        # Refused: a tag moved on while the app ran (a write's invalidation landed); or this
        # process invalidated one of its tags since (landed, queued or failed: a failed
        # store proves nothing). Either way the response may predate that write, and a
        # waiter that joined after it must ask the app itself (read-after-write).
        moved = store.tags.moved_since(self.mark, (*miss.tags, *stored.tags))
        unsafe = part or moved or result is WriteResult.REFUSED
        shared = None if unsafe else Shared(stored, names, full_key)
        release(self.flight, shared)
        return result is WriteResult.STORED
