"""One GET or HEAD request of a cacheable route: look up, serve, or forward and store.

All per-request state lives on an `Exchange`, never on the middleware, which hands
each one the shared `HttpContext`. The steps:

1. `Exchange.run`: bypass rules, request directives (RFC 9111 section 5.2.1), the
   lookup; a fresh entry is a hit (`serving` builds the answer), a stale one inside
   its stale-while-revalidate window is served while one background refresh (an exchange
   built by `Exchange.for_refresh`) runs;
2. `Exchange.forward`: a miss joins an identical miss already in flight in this
   process, or (``lock=True``) takes its turn at the entry's lock across processes
   (`Locks.turn`);
3. `Exchange.origin`: one call of the app (`OriginCall`), which
   captures, stores and answers the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.types import Message, Receive, Send

from .._entries import EntryKind
from .._stats import Source
from ..locking import TurnOutcome
from .context import Flight, HttpContext, Shared, release
from .hits import Prepared
from .keying import RequestKey, url_tag_for
from .origin import Miss, OriginCall
from .partials import answer_from_parts
from .policy import ResponsePolicy, checked_tags, fill_templates
from .ranges import range_request
from .responder import Responder
from .responses import FLAG_SHAREABLE, StoredResponse
from .rules import NO_DIRECTIVES, RequestDirectives, clip, credentials_reason, request_bypass_reason
from .serving import Standing, plain_answer, standing
from .status import CacheStatus, Fwd
from .storing import vary_names

logger = logging.getLogger("asgi_cache.http")
# Members read on every request, bound once: an enum member lookup is a descriptor call (3.11).
_MISS, _BACKEND, _FRESH = Fwd.MISS, Source.BACKEND, Standing.FRESH


class Exchange:
    """The state of one cacheable GET/HEAD request (or of one background refresh)."""

    __slots__ = (
        "credentials",
        "ctx",
        "explicit_only",
        "flight",
        "full_key",
        "fwd",
        "key",
        "lookup_names",
        "no_store",
        "params",
        "policy",
        "ranged",
        "remembered_tags",
        "responder",
        "scope",
        "source",
        "stale",
        "tags",
    )

    def __init__(
        self,
        ctx: HttpContext,
        scope: dict[str, Any],
        receive: Receive,
        send: Send | None,
        policy: ResponsePolicy,
        params: dict[str, Any],
        *,
        explicit_only: bool,
    ) -> None:
        self.ctx = ctx
        self.scope = scope
        self.policy = policy
        self.params = params
        self.explicit_only = explicit_only
        self.key: RequestKey = RequestKey(scope, ctx.keying, ctx.digests)
        self.responder = Responder(ctx, scope, receive, send, self.key.headers)
        self.tags: list[str] = []
        self.remembered_tags: tuple[str, ...] | None = None
        self.lookup_names: tuple[str, ...] = ()
        self.full_key = ""
        self.credentials: str | None = None
        self.no_store = False
        self.fwd = _MISS
        self.stale: StoredResponse | None = None
        self.flight: Flight | None = None
        self.ranged = False
        """A GET with a valid byte ``Range`` (RFC 9110 section 14.2; `ranges`)."""
        self.source = _BACKEND
        """Where the lookup was answered (the L1, the backend, or nothing: it failed)."""

    @classmethod
    def for_refresh(cls, exchange: Exchange, stored: StoredResponse) -> Exchange:
        """A background refresh of ``exchange``'s entry, ``stored`` (stale-while-revalidate):
        the same request and key, no client to answer."""
        refresh = cls(
            exchange.ctx,
            dict(exchange.scope),
            _never,
            None,
            exchange.policy,
            exchange.params,
            explicit_only=exchange.explicit_only,
        )
        refresh.tags = exchange.tags
        refresh.remembered_tags = exchange.remembered_tags
        refresh.lookup_names = exchange.lookup_names
        refresh.full_key = exchange.full_key
        refresh.stale = stored.copy()  # freshened when revalidated: never the shared one
        refresh.fwd = Fwd.STALE
        return refresh

    # -- entry point ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Answer the request from the cache or the app."""
        ctx, key, policy = self.ctx, self.key, self.policy
        headers = key.headers
        # A route whose inputs cannot be keyed (decided once, when it was first resolved).
        reason = policy.uncacheable or request_bypass_reason(headers)
        if reason is None and ctx.keying.allowed_hosts is not None:
            reason = None if ctx.keying.host_allowed(key.hostname()) else "host"
        if reason is None and policy.tags:  # most routes have none: no work on the hit path
            reason = self._fill_tags()
        directives = NO_DIRECTIVES
        if ctx.options.honor_request_cache_control:
            directives = RequestDirectives.parse(headers)
        if reason is not None:
            if directives.only_if_cached:
                await self._only_if_cached(reason)  # RFC 9111 5.2.1.7: never the origin
                return
            ctx.store.stats.bypassed(reason)
            await self.responder.passthrough(CacheStatus.forwarded(Fwd.BYPASS, reason))
            return
        self.credentials = credentials_reason(headers, policy)
        ranged = "range" in headers and self.scope["method"] == "GET"
        self.ranged = ranged and range_request(headers)
        self.no_store = directives.no_store
        # The URL's Vary names, as this process remembers them. A process that does not know
        # the URL yet looks up the policy's variant first (one round trip when it hits) and
        # reads the backend's Vary memory only on a miss.
        local = ctx.vary_memory.get_local(key.url_digest)
        if local is not None:
            self._set_lookup(local[0])
            self.remembered_tags = local[1]
        else:
            self._set_lookup(())
        if directives.no_cache and directives.only_if_cached:
            await self._only_if_cached("only-if-cached")  # no-cache: nothing usable unasked
            return
        if directives.no_cache:
            await self._learn_vary()
            self.fwd = Fwd.REQUEST
            await self.forward()
            return
        entry, self.source = await ctx.store.lookup(self.full_key)
        if entry is None and local is None and await self._learn_vary():
            entry, self.source = await ctx.store.lookup(self.full_key)
        found = ctx.hits.prepared(self.full_key, entry) if entry is not None else None
        if found is not None and local is None and self.remembered_tags is None:
            ctx.vary_memory.put_local(key.url_digest, vary_names(found.stored), None)
        if found is not None and self.credentials and not found.stored.flags & FLAG_SHAREABLE:
            found = None
        if found is not None:
            serving = self._answer_stored(found, directives)
            if serving is not None:
                await serving
                return
        elif self.credentials:
            self.fwd = Fwd.BYPASS
        elif self.ranged and await answer_from_parts(
            ctx, self.responder, self.full_key, directives
        ):
            return
        if directives.only_if_cached:
            await self._only_if_cached("only-if-cached")
            return
        ctx.store.stats.miss(self.source)
        self._remember()
        await self.forward()

    async def _only_if_cached(self, detail: str) -> None:
        # RFC 9111 section 5.2.1.7: no stored response to use, so a 504, never the origin.
        status = CacheStatus.forwarded(Fwd.MISS, detail)
        await self.responder.send_answer(plain_answer(504, self.ctx.status_headers(status)))

    def _answer_stored(
        self, prepared: Prepared, directives: RequestDirectives
    ) -> Coroutine[Any, Any, None] | None:
        """The answer from the stored response, to await, if it may answer (a hit, or stale
        while revalidating); else keep it as the stale entry to revalidate, and ``None``."""
        ctx, stored = self.ctx, prepared.stored
        now = ctx.clock()
        found = standing(stored, now, directives)
        if found is _FRESH:
            ctx.store.stats.hit(self.source)
            self._remember()
            ttl = int(stored.fresh_until - now)
            status_headers = ctx.status_headers.fresh(ttl if ttl > 0 else 0)
            return self.responder.serve_hit(prepared, status_headers, now)
        if found is Standing.STALE_ACCEPTED or found is Standing.STALE_WHILE_REVALIDATE:
            ctx.store.stats.served_stale(self.source)
            if found is Standing.STALE_ACCEPTED:
                # RFC 9111 section 5.2.1.2: the client accepts this much staleness; RFC 9211
                # section 2.5: a negative ttl says how stale the response is.
                status = CacheStatus.stale_hit(stored.fresh_until - now, "max-stale")
            else:
                self._schedule_refresh(stored)
                status = CacheStatus.stale("stale-while-revalidate")
            return self.responder.serve_hit(prepared, ctx.status_headers(status), now)
        # TOO_OLD: the request wants a younger response; STALE: revalidate or replace it.
        self.fwd = Fwd.REQUEST if found is Standing.TOO_OLD else Fwd.STALE
        self.stale = stored.copy()  # a revalidation freshens it: never the shared one
        return None

    def _set_lookup(self, names: tuple[str, ...]) -> None:
        key_names = self.policy.key_names
        self.lookup_names = tuple(sorted({*key_names, *names})) if names or key_names else ()
        self.full_key = self.ctx.full_key(self.key, self.lookup_names, self.policy)

    async def _learn_vary(self) -> bool:
        """Read the URL's remembered Vary names and tags; return whether the key changed."""
        names, self.remembered_tags = await self.ctx.vary_of(self.key)
        before = self.full_key
        self._set_lookup(names)
        return self.full_key != before

    def _fill_tags(self) -> str | None:
        # Templates name only parameters the route has (checked when it was resolved); a
        # value from the request may still make a tag that is not valid.
        filled = fill_templates(self.policy.tags, self.params)
        if filled is None:  # pragma: no cover - refused when the route was resolved
            return "tag-template"
        self.tags, invalid = checked_tags(filled)
        if invalid:
            self.ctx.store.stats.log.log(
                logging.WARNING,
                "bad tag value",
                "asgi-cache: not caching %s: its tag %s, filled from the request, is not a "
                "valid tag (at most 1024 characters, no CR, LF or NUL)",
                clip(self.scope["path"]),
                clip(invalid[0]),
            )
            return "tag-value"
        return None

    def _remember(self) -> None:
        """Let a write fetch this entry again as a GET with no client (`refresh`)."""
        if self.credentials or self.no_store or self.ranged or self.full_key in self.ctx.refresher:
            return  # never with credentials; the scope is as it came in (the app has not run)
        tags = (*self.tags, url_tag_for(self.scope["path"]), *(self.remembered_tags or ()))
        ctx, policy, params, scope = self.ctx, self.policy, self.params, {**self.scope}
        only, scope["method"] = self.explicit_only, "GET"

        async def again() -> None:
            await Exchange(ctx, dict(scope), _never, None, policy, params, explicit_only=only).run()

        ctx.refresher.remember(self.full_key, tags, again)

    def _schedule_refresh(self, stored: StoredResponse) -> None:
        """Start one background refresh of this entry (stale-while-revalidate)."""
        ctx = self.ctx
        if self.full_key in ctx.refreshing:
            return
        ctx.refreshing.add(self.full_key)
        ctx.background.start_soon(Exchange.for_refresh(self, stored).refresh)

    async def refresh(self) -> None:
        """Run this background refresh (built by `for_refresh`)."""
        try:
            await self.origin()
        except Exception:
            logger.warning("asgi-cache: background refresh failed", exc_info=True)
        finally:
            self.ctx.refreshing.discard(self.full_key)

    # -- forwarding ----------------------------------------------------------------------------

    async def forward(self) -> None:
        """Go to the app, coalescing with an identical request already in flight."""
        # A HEAD miss goes to the app as a GET (as Varnish does): its response is stored
        # for every later GET and HEAD, and this client gets it without the body. (A HEAD
        # response itself has no body: storing it would poison the GET entry.)
        ctx = self.ctx
        if self.credentials or self.no_store or self.ranged:
            # Nothing shared: private, not stored, or a part (never handed to a waiter
            # that may want the whole response or another part).
            await self.origin()
            return
        inflight = ctx.inflight
        leader = inflight.get(self.full_key)
        if leader is not None:
            shared = await asyncio.shield(leader)
            # The leader's response fits us only if we send the same values of the headers it
            # turned out to vary on (it may name some our lookup could not know about).
            if shared is not None and self._key_for(shared.names) == shared.full_key:
                self._served_by_another()
                status = CacheStatus.shared("coalesced")
                await self.responder.serve(shared.stored, status, with_age=True)
                return
            await self.origin()  # the leader's response was not storable: ask on our own
            return
        flight: Flight = asyncio.get_running_loop().create_future()
        inflight[self.full_key] = flight
        self.flight = flight
        try:
            if self.policy.lock and not await self._pass_marked():
                await self._origin_locked()
            else:
                await self.origin()
        finally:
            if inflight.get(self.full_key) is flight:
                del inflight[self.full_key]
            release(flight, None)

    async def _pass_marked(self) -> bool:
        """Whether the last lock holder of this key found its response not storable, a
        moment ago (hit-for-pass): then misses go to the app at once, not one at a time."""
        store = self.ctx.store
        marker = await store.read(store.keys.http_pass(self.full_key))
        return (
            marker is not None
            and marker.kind is EntryKind.NEGATIVE
            and marker.is_fresh(self.ctx.clock())
        )

    async def _origin_locked(self) -> None:
        # Cross-process coalescing: one process holds the lock (its lease extended by a
        # watchdog while the app runs) and calls its app; the others sleep until the holder
        # publishes on the entry's notify channel, bounded by lock_timeout. Woken without a
        # stored response (it was not storable, or the app failed), they go to the app at
        # once, as a reverse proxy's waiting list does; so do later misses while the
        # holder's "not storable" marker lives.
        store = self.ctx.store
        stale = self.stale

        async def recheck() -> StoredResponse | None:
            # The previous holder may have stored a response between our lookup and our lock:
            # serve that instead of calling the app again.
            found = await self._read_fresh()
            if found is not None and (stale is None or found.created_at > stale.created_at):
                return found
            return None

        async with store.locks.turn(
            self.full_key,
            read=self._read_fresh,
            # Unless the client asked for a response from the origin (request no-cache,
            # max-age=0, Pragma).
            recheck=recheck if self.fwd is not Fwd.REQUEST else None,
            max_wait=store.settings.lock_timeout,
            take_over=False,
        ) as turn:
            found = turn.found
            if found is not None:
                release(self.flight, Shared(found, self.lookup_names, self.full_key))
                self._served_by_another()
                await self.responder.serve(found, CacheStatus.shared("lock"), with_age=True)
                return
            # Holding the lock (released when this block ends, which wakes the waiters
            # whether a response was stored or not), released by a holder that stored
            # nothing, timed out, or no lock service.
            await self.origin(pass_marker=turn.outcome is TurnOutcome.HOLD)

    def _served_by_another(self) -> None:
        # The lookup counted a miss; the response came from another request's origin call
        # after all (coalesced in process, or stored by the lock holder), so it is a hit.
        self.ctx.store.stats.coalesced()

    async def _read_fresh(self) -> StoredResponse | None:
        entry = await self.ctx.store.read(self.full_key)
        found = StoredResponse.from_entry(entry) if entry is not None else None
        if found is not None and self.ctx.clock() < found.fresh_until:
            return found
        return None

    def _key_for(self, names: tuple[str, ...]) -> str:
        if names == self.lookup_names:
            return self.full_key
        return self.ctx.full_key(self.key, names, self.policy)

    async def origin(self, *, pass_marker: bool = False) -> None:
        """Call the app once (`OriginCall`), storing its response when
        allowed (``pass_marker``: holding the lock, mark a response that cannot be)."""
        tags: tuple[str, ...] = ()
        if not self.no_store:
            if self.remembered_tags is None:
                _, self.remembered_tags = await self.ctx.vary_of(self.key)
            tags = (*self.tags, url_tag_for(self.scope["path"]), *self.remembered_tags)
        miss = Miss(
            policy=self.policy,
            explicit_only=self.explicit_only,
            key=self.key,
            lookup_names=self.lookup_names,
            full_key=self.full_key,
            tags=tags,
            stale=self.stale,
            fwd=self.fwd,
            credentials=self.credentials,
            no_store=self.no_store,
            pass_marker=pass_marker,
            ranged=self.ranged,
        )
        await OriginCall(self.ctx, self.responder, miss, self.flight).run()


async def _never() -> Message:
    return {"type": "http.disconnect"}  # pragma: no cover - background refreshes own receive
