"""One GET or HEAD request of a cacheable route: look up, serve, or forward and store.

All per-request state lives on an :class:`Exchange`, never on the middleware. The forward
path is a small state machine over the app's ``send`` messages:

- ``PENDING``: nothing received yet;
- ``BUFFER``: a storable response is being collected (up to ``max_body_bytes``), nothing
  sent to the client yet, so the finished response can be stored first and then answered,
  with a 304 when the client's validators match;
- ``PASS``: not storable (or too large): the start is sent with its ``Cache-Status`` and
  every chunk is forwarded as it comes, never buffered;
- ``NOT_MODIFIED``: the app answered our revalidation with 304 (RFC 9111 section 4.3.4);
- ``ERROR_STALE``: the app answered 5xx inside the stale-if-error window (RFC 5861).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from starlette.types import Message, Receive, Send

from .._exceptions import ConfigurationError
from .._store import WriteResult
from .._tags import NO_SNAPSHOT
from ..keys import validate_tag
from .cache_control import (
    delta_seconds,
    parse_cache_control,
    parse_http_date,
    parse_vary,
    weak_match,
)
from .encoding import (
    accepts_gzip,
    add_vary_accept_encoding,
    compressible_type,
    gunzip,
    gzip_etag,
    try_gzip,
)
from .keying import RequestKey, url_tag_for
from .policy import ResponsePolicy, fill_templates
from .responses import (
    FLAG_DERIVED_ETAG,
    FLAG_GZIP,
    FLAG_MUST_REVALIDATE,
    FLAG_NO_CACHE,
    FLAG_SHAREABLE,
    StoredResponse,
    derive_etag,
    end_to_end_headers,
)
from .rules import ResponseFacts, credentials_reason, request_bypass_reason

if TYPE_CHECKING:
    from .middleware import CacheMiddleware


logger = logging.getLogger("asgi_cache.http")


PENDING, BUFFER, PASS, NOT_MODIFIED, ERROR_STALE = range(5)

_CONDITIONAL: Final = frozenset(
    {b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since", b"if-range"}
)
# RFC 9110 section 15.4.5: what a 304 carries (plus Last-Modified, useful without an ETag).
_NOT_MODIFIED_KEEP: Final = frozenset(
    {
        b"cache-control",
        b"content-location",
        b"date",
        b"etag",
        b"expires",
        b"vary",
        b"last-modified",
        b"age",
        b"cache-status",
        b"x-cache",
    }
)


class Shared(NamedTuple):
    """What a coalesced leader hands its waiters: the response and the key it fits."""

    stored: StoredResponse
    names: tuple[str, ...]
    """The header names the response varies on (policy and response ``Vary``)."""
    full_key: str


class Exchange:
    """The state of one cacheable GET/HEAD request (or of one background refresh)."""

    __slots__ = (
        "background",
        "body_sent",
        "chunks",
        "client_started",
        "credentials",
        "disconnected",
        "done",
        "explicit_only",
        "facts",
        "full_key",
        "fwd",
        "key",
        "lookup_names",
        "mode",
        "mw",
        "no_store",
        "params",
        "policy",
        "receive",
        "remembered_tags",
        "revalidating",
        "scope",
        "send",
        "size",
        "snapshot",
        "stale",
        "start",
        "tags",
        "waiters",
    )

    def __init__(
        self,
        mw: CacheMiddleware,
        scope: dict[str, Any],
        receive: Receive,
        send: Send | None,
        policy: ResponsePolicy,
        params: dict[str, Any],
        *,
        explicit_only: bool,
    ) -> None:
        self.mw = mw
        self.scope = scope
        self.receive = receive
        self.background = send is None
        self.send: Send = send or _discard
        self.policy = policy
        self.params = params
        self.explicit_only = explicit_only
        self.key: RequestKey = RequestKey(scope, mw.keying, mw.digests)
        self.tags: list[str] = []
        self.remembered_tags: tuple[str, ...] | None = None
        self.lookup_names: tuple[str, ...] = ()
        self.full_key = ""
        self.credentials: str | None = None
        self.no_store = False
        self.fwd = "miss"
        self.stale: StoredResponse | None = None
        self.revalidating = False
        self.snapshot = NO_SNAPSHOT
        self.mode = PENDING
        self.facts: ResponseFacts | None = None
        self.start: Message = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.client_started = False
        self.disconnected = False
        self.body_sent = False
        self.waiters: asyncio.Future[Shared | None] | None = None
        self.done = asyncio.Event() if send is None else None

    # -- entry point ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Answer the request from the cache or the app."""
        mw, key, policy = self.mw, self.key, self.policy
        headers = key.headers
        # A route whose inputs cannot be keyed (decided once, when it was first resolved).
        reason = policy.uncacheable or request_bypass_reason(headers)
        if reason is None and not mw.keying.host_allowed(key.hostname()):
            reason = "host"
        if reason is None:
            reason = self._fill_tags()
        if reason is not None:
            await self.passthrough("bypass", reason)
            return
        self.credentials = credentials_reason(headers, policy)
        force = False
        req_max_age: int | None = None
        only_if_cached = False
        if mw.options.honor_request_cache_control:
            cc = parse_cache_control(headers.get("cache-control"))
            self.no_store = "no-store" in cc
            only_if_cached = "only-if-cached" in cc
            if "max-age" in cc:
                req_max_age = delta_seconds(cc["max-age"]) or 0
            # RFC 9111 section 5.4: Pragma only counts when there is no Cache-Control.
            pragma = headers.get("pragma", "").lower()
            pragma_no_cache = "cache-control" not in headers and "no-cache" in pragma
            force = "no-cache" in cc or req_max_age == 0 or pragma_no_cache
        # The URL's Vary names, as this process remembers them. A process that does not know
        # the URL yet looks up the policy's variant first (one round trip when it hits) and
        # reads the backend's Vary memory only on a miss.
        local = mw.vary_memory.get_local(key.url_digest)
        if local is not None:
            self._set_lookup(local[0])
            self.remembered_tags = local[1]
        else:
            self._set_lookup(())
        if force:
            await self._learn_vary()
            self.fwd = "request"
            await self.forward()
            return
        entry = await mw.store.read(self.full_key)
        if entry is None and local is None and await self._learn_vary():
            entry = await mw.store.read(self.full_key)
        stored = StoredResponse.from_entry(entry) if entry is not None else None
        if stored is not None and local is None and self.remembered_tags is None:
            mw.vary_memory.put_local(key.url_digest, _vary_names(stored), None)
        if stored is not None and self.credentials and not stored.flags & FLAG_SHAREABLE:
            stored = None
        now = time.time()
        stats = mw.store.stats
        if stored is not None:
            age = now - stored.created_at
            fresh = now < stored.fresh_until and not stored.flags & FLAG_NO_CACHE
            if fresh and (req_max_age is None or age <= req_max_age):
                stats.hit()
                ttl = round(stored.fresh_until - now)
                await self.serve(stored, f"hit; ttl={ttl}", "HIT", with_age=True)
                return
            can_serve_stale = not fresh and not stored.flags & (
                FLAG_MUST_REVALIDATE | FLAG_NO_CACHE
            )
            if can_serve_stale and now < stored.fresh_until + stored.swr:
                stats.served_stale()
                mw.schedule_refresh(self, stored)
                await self.serve(
                    stored, "fwd=stale; detail=stale-while-revalidate", "STALE", with_age=True
                )
                return
            self.stale = stored
            self.fwd = "request" if fresh else "stale"
        elif self.credentials:
            self.fwd = "bypass"
        if only_if_cached:
            await self.send_plain(504, "fwd=miss; detail=only-if-cached", "MISS")
            return
        stats.miss()
        await self.forward()

    def _set_lookup(self, names: tuple[str, ...]) -> None:
        policy = self.policy
        self.lookup_names = tuple(sorted({*policy.key_names, *names}))
        digest = self.key.digest(self.lookup_names, exact=policy.keyed_headers)
        self.full_key = self.mw.store.keys.http(digest)

    async def _learn_vary(self) -> bool:
        """Read the URL's remembered Vary names and tags; return whether the key changed."""
        names, self.remembered_tags = await self.mw.vary_of(self.key)
        before = self.full_key
        self._set_lookup(names)
        return self.full_key != before

    def _fill_tags(self) -> str | None:
        filled = fill_templates(self.policy.tags, self.params)
        if filled is None:
            logger.error(
                "asgi-cache: tag templates %r need path parameters this route does not have "
                "(%s); not caching",
                self.policy.tags,
                sorted(self.params),
            )
            return "tag-template"
        try:
            self.tags = [validate_tag(t) for t in filled]
        except ConfigurationError as exc:
            logger.error("asgi-cache: %s; not caching", exc)
            return "tag-template"
        return None

    # -- forwarding ----------------------------------------------------------------------------

    async def forward(self) -> None:
        """Go to the app, coalescing with an identical request already in flight."""
        mw = self.mw
        if self.scope["method"] == "HEAD":
            # A HEAD response has no body: storing it would poison the GET entry.
            await self.passthrough(self.fwd, "head")
            return
        if self.credentials or self.no_store:
            await self.origin()
            return
        inflight = mw.inflight
        leader = inflight.get(self.full_key)
        if leader is not None:
            shared = await asyncio.shield(leader)
            # The leader's response fits us only if we send the same values of the headers it
            # turned out to vary on (it may name some our lookup could not know about).
            if shared is not None and self._key_for(shared.names) == shared.full_key:
                self._served_by_another()
                await self.serve(shared.stored, "hit; detail=coalesced", "HIT", with_age=True)
                return
            await self.origin()  # the leader's response was not storable: ask on our own
            return
        future: asyncio.Future[Shared | None] = asyncio.get_running_loop().create_future()
        inflight[self.full_key] = future
        self.waiters = future
        try:
            if self.policy.lock:
                await self._origin_locked()
            else:
                await self.origin()
        finally:
            if inflight.get(self.full_key) is future:
                del inflight[self.full_key]
            self.release(None)

    async def _origin_locked(self) -> None:
        # Cross-process coalescing: one process holds the lock (its lease extended by a
        # watchdog while the app runs) and calls its app; the others sleep until the holder
        # publishes on the entry's notify channel, bounded by lock_timeout, then go themselves.
        store = self.mw.store
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
            recheck=recheck if self.fwd != "request" else None,
            max_wait=store.settings.lock_timeout,
        ) as turn:
            found = turn.found
            if found is not None:
                self.release(Shared(found, self.lookup_names, self.full_key))
                self._served_by_another()
                await self.serve(found, "hit; detail=lock", "HIT", with_age=True)
                return
            # Holding the lock (released when this block ends, which wakes the waiters
            # whether a response was stored or not), timed out, or no lock service.
            await self.origin()

    def _served_by_another(self) -> None:
        # The lookup counted a miss; the response came from another request's origin call
        # after all (coalesced in process, or stored by the lock holder), so it is a hit.
        self.mw.store.stats.coalesced()

    async def _read_fresh(self) -> StoredResponse | None:
        entry = await self.mw.store.read(self.full_key)
        found = StoredResponse.from_entry(entry) if entry is not None else None
        if found is not None and time.time() < found.fresh_until:
            return found
        return None

    def _key_for(self, names: tuple[str, ...]) -> str:
        if names == self.lookup_names:
            return self.full_key
        return self.mw.store.keys.http(self.key.digest(names, exact=self.policy.keyed_headers))

    def release(self, result: Shared | None) -> None:
        """Wake the requests coalesced on this one (``None``: they go to the app themselves)."""
        waiters = self.waiters
        if waiters is not None and not waiters.done():
            waiters.set_result(result)

    async def origin(self) -> None:
        """Call the app once, storing its response when allowed."""
        mw, stale = self.mw, self.stale
        self.revalidating = stale is not None and _has_origin_validator(stale)
        if not self.no_store:
            if self.remembered_tags is None:
                _, self.remembered_tags = await mw.vary_of(self.key)
            tags = [*self.tags, url_tag_for(self.scope["path"]), *self.remembered_tags]
            self.snapshot = await mw.store.tags.snapshot(tags, ttl=self.policy.ttl)
        scope = self.origin_scope()
        try:
            await mw.app(scope, self._receive, self._on_send)
        except Exception:
            if not self.client_started and self._stale_if_error_ok():
                logger.warning("asgi-cache: origin failed; serving stale", exc_info=True)
                await self.serve_stale_on_error(None)
                return
            raise
        finally:
            if self.done is not None:
                self.done.set()
        await self._finish()

    def origin_scope(self) -> dict[str, Any]:
        """The scope the app sees: our validators instead of the client's conditionals."""
        headers = [(n, v) for n, v in self.scope["headers"] if n.lower() not in _CONDITIONAL]
        stale = self.stale
        if self.revalidating and stale is not None:
            if stale.etag and not stale.flags & FLAG_DERIVED_ETAG:
                headers.append((b"if-none-match", stale.etag))
            last_modified = stale.header(b"last-modified")
            if last_modified:
                headers.append((b"if-modified-since", last_modified))
        scope = dict(self.scope)
        scope["headers"] = headers
        if self.background:
            scope["method"] = "GET"
        return scope

    async def _receive(self) -> Message:
        if self.done is not None:  # a background refresh has no client to read from
            if not self.body_sent:
                self.body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.done.wait()
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    def _stale_if_error_ok(self) -> bool:
        stale = self.stale
        return (
            stale is not None
            and not stale.flags & (FLAG_MUST_REVALIDATE | FLAG_NO_CACHE)
            and time.time() < stale.fresh_until + stale.sie
        )

    # -- the app's send ------------------------------------------------------------------------

    async def _on_send(self, message: Message) -> None:
        mode = self.mode
        if mode == PASS:
            await self.send(message)
            return
        kind = message["type"]
        if kind == "http.response.start":
            await self._on_start(message)
        elif kind == "http.response.body":
            if mode != BUFFER:
                return  # NOT_MODIFIED / ERROR_STALE: the app's body is not used
            body = message.get("body", b"")
            if body:
                self.chunks.append(body)
                self.size += len(body)
            more = message.get("more_body", False)
            if self.size > self.mw.max_body_bytes:
                await self._flush("too-large", more)
            elif not more:
                await self._complete()
        elif mode == BUFFER:  # trailers, pathsend...: not something we can replay
            await self._flush("unsupported", True)
            await self.send(message)

    async def _on_start(self, message: Message) -> None:
        status = message["status"]
        facts = ResponseFacts.parse(status, list(message.get("headers", [])))
        self.facts = facts
        self.start = message
        if self.revalidating and status == 304:
            self.mode = NOT_MODIFIED
            return
        if status >= 500 and self._stale_if_error_ok():
            self.mode = ERROR_STALE
            return
        if self.no_store:
            reason: str | None = "no-store"
        elif message.get("trailers"):
            reason = "trailers"  # trailers are not stored; the response must stream as sent
        else:
            reason = facts.unstorable_reason(
                self.policy,
                credentials=self.credentials,
                explicit_only=self.explicit_only,
                max_body_bytes=self.mw.max_body_bytes,
            )
        if reason is not None:
            self.release(None)
            self.mode = PASS
            await self._send_start(reason)
            return
        self.mode = BUFFER

    async def _send_start(self, detail: str) -> None:
        facts = self.facts
        if facts is None:  # pragma: no cover - _on_start sets it before any start is sent
            return
        headers = self.mw.client_headers(facts.headers)
        headers += self.mw.status_headers(f"fwd={self.fwd}; detail={detail}", self._x_miss())
        self.client_started = True
        # Keep the app's other start keys (such as ``trailers``).
        await self.send({**self.start, "headers": headers})

    def _x_miss(self) -> str:
        return "BYPASS" if self.fwd == "bypass" else "MISS"

    async def _flush(self, detail: str, more_body: bool) -> None:
        self.release(None)
        self.mode = PASS
        await self._send_start(detail)
        body = b"".join(self.chunks)
        self.chunks = []
        if body or not more_body:  # no empty chunk before a pathsend message
            await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def _complete(self) -> None:
        facts = self.facts
        if facts is None:  # pragma: no cover - BUFFER is only entered after the start
            return
        body = b"".join(self.chunks)
        self.chunks = [body]
        if self.disconnected:  # the client went away: the body may be cut short
            await self._flush("client-disconnected", False)
            return
        stored = self.build(facts, body)
        if stored is None:
            await self._flush("expired", False)
            return
        self.chunks = []
        self.mode = PASS  # anything the app sends after its last chunk goes through
        ok, shared = await self.store(stored, facts)
        self.release(shared)
        fwd = f"fwd={self.fwd}"
        if self.stale is not None:
            fwd += f"; fwd-status={facts.status}"
        await self.serve(stored, f"{fwd}; stored" if ok else f"{fwd}; detail=not-stored", "MISS")

    async def _finish(self) -> None:
        mode, facts = self.mode, self.facts
        if mode == NOT_MODIFIED and facts is not None and self.stale is not None:
            await self._freshen(self.stale, facts)
        elif mode == ERROR_STALE and facts is not None:
            await self.serve_stale_on_error(facts.status)
        elif mode == BUFFER:  # the app returned without its final chunk
            await self._flush("incomplete", False)

    async def _freshen(self, stale: StoredResponse, facts: ResponseFacts) -> None:
        stale.freshen(facts.headers)
        merged = ResponseFacts.parse(stale.status, stale.headers_with_etag())
        now = time.time()
        store = self.mw.store
        lifetime = merged.lifetime(
            self.policy, store.settings.default_ttl, now, explicit_only=self.explicit_only
        )
        swr, sie = merged.stale_windows(self.policy)
        stale.flags = (stale.flags & (FLAG_DERIVED_ETAG | FLAG_GZIP)) | merged.flags()
        self._set_times(stale, now, merged.age, lifetime, swr, sie, keep=True)
        ok = False
        if not self.no_store:
            ok, shared = await self.store(stale, merged)
            self.release(shared)
        store.stats.hit()
        status = "fwd=stale; fwd-status=304" + ("; stored" if ok else "")
        await self.serve(stale, status, "HIT", with_age=True)

    async def serve_stale_on_error(self, status: int | None) -> None:
        """Serve the stale entry because the origin failed (RFC 5861 stale-if-error)."""
        stale = self.stale
        if stale is None or self.background:
            return
        self.mw.store.stats.served_stale()
        fwd_status = f"; fwd-status={status}" if status is not None else ""
        await self.serve(
            stale, f"fwd=stale{fwd_status}; detail=stale-if-error", "STALE", with_age=True
        )

    # -- building, storing, serving ------------------------------------------------------------

    def _set_times(
        self,
        stored: StoredResponse,
        now: float,
        origin_age: int,
        lifetime: float,
        swr: float,
        sie: float,
        *,
        keep: bool,
    ) -> None:
        store = self.mw.store
        if lifetime > 0:
            lifetime = store.jittered(lifetime)
        if stored.flags & FLAG_MUST_REVALIDATE:
            swr = sie = 0.0
        created = now - origin_age
        stored.created_at = created
        stored.fresh_until = created + lifetime
        stored.swr, stored.sie = swr, sie
        window = max(swr, sie)
        if keep:  # an entry with a validator is worth keeping to revalidate cheaply
            window = max(window, lifetime, store.settings.default_ttl)
        stored.stale_until = stored.fresh_until + window

    def build(self, facts: ResponseFacts, body: bytes) -> StoredResponse | None:
        """The entry for a complete storable response, or ``None`` if already expired."""
        now = time.time()
        mw = self.mw
        policy = self.policy
        drop = frozenset() if mw.options.expose_cache_tags else frozenset({mw.cache_tag_header})
        # ETag and Content-Length depend on the representation served: added by serve().
        headers = [
            (n, v)
            for n, v in end_to_end_headers(facts.headers, drop)
            if n != b"content-length" and n != b"etag"
        ]
        flags = facts.flags()
        etag = facts.etag
        if not etag and facts.status == 200:
            etag = derive_etag(body)
            flags |= FLAG_DERIVED_ETAG
        plain: bytes | None = None
        if self._compressible(facts, headers, body):
            coded = try_gzip(body)
            if coded is not None:
                body, plain = coded, body
                flags |= FLAG_GZIP
        if policy.max_age is not None and not facts.cc:
            headers.append((b"cache-control", b"max-age=%d" % int(policy.max_age)))
        missing_vary = [
            n for n in policy.key_names if facts.vary is not None and n not in facts.vary
        ]
        if missing_vary:
            headers.append((b"vary", ", ".join(missing_vary).encode()))
        stored = StoredResponse(
            status=facts.status,
            headers=headers,
            body=body,
            created_at=now,
            fresh_until=now,
            stale_until=now,
            flags=flags,
            etag=etag,
            last_modified=parse_http_date(facts.last_modified.decode("latin-1")),
            tags=self._runtime_tags(facts),
            plain=plain,
        )
        lifetime = facts.lifetime(
            policy, mw.store.settings.default_ttl, now, explicit_only=self.explicit_only
        )
        swr, sie = facts.stale_windows(policy)
        self._set_times(stored, now, facts.age, lifetime, swr, sie, keep=facts.has_validator)
        if stored.stale_until <= now + 0.001:
            return None
        return stored

    def _compressible(
        self, facts: ResponseFacts, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bool:
        mw = self.mw
        minimum = mw.compress_min_bytes
        return (
            minimum is not None
            # In process memory a smaller entry saves little and every identity hit would
            # pay a decompression; Redis saves memory and network bytes.
            and not mw.store.in_process
            and len(body) >= minimum
            and facts.status == 200
            and "no-transform" not in facts.cc  # RFC 9110 section 7.7
            and compressible_type(facts.content_type)
            and not any(n == b"content-encoding" for n, _ in headers)
        )

    def _runtime_tags(self, facts: ResponseFacts) -> tuple[str, ...]:
        name = self.mw.cache_tag_header
        tags: list[str] = []
        for n, v in facts.headers:
            if n.lower() != name:
                continue
            for tag in v.decode("latin-1").replace(",", " ").split():
                try:
                    tags.append(validate_tag(tag))
                except ConfigurationError:
                    logger.warning("asgi-cache: ignoring bad Cache-Tag value %r", tag)
        return tuple(dict.fromkeys(tags))

    async def store(self, stored: StoredResponse, facts: ResponseFacts) -> tuple[bool, Shared]:
        """Write ``stored`` under the key of its own Vary; remember the URL's Vary names."""
        mw = self.mw
        store = mw.store
        vary = facts.vary or ()
        names = tuple(sorted({*self.policy.key_names, *vary}))
        full_key = self._key_for(names)
        # Tags named at run time (Cache-Tag) are read now; the next miss of this URL reads
        # them before calling the app, because they are remembered with the Vary names.
        snapshot = await store.tags.extend(
            self.snapshot, stored.tags, ttl=stored.stale_until - time.time()
        )
        ok = await store.write(full_key, stored.to_entry(), snapshot) is WriteResult.STORED
        await mw.remember(self.key, vary, stored.tags, stored.stale_until - time.time())
        return ok, Shared(stored, names, full_key)

    def not_modified(self, stored: StoredResponse, etag: bytes) -> bool:
        """Whether the client's conditional headers match ``stored`` (RFC 9110 13.2.2).

        ``etag`` is the ETag of the representation about to be served.
        """
        if stored.status != 200:
            return False
        headers = self.key.headers
        inm = headers.get("if-none-match")
        if inm is not None:
            return bool(etag) and weak_match(inm, etag.decode("latin-1"))
        ims = headers.get("if-modified-since")
        if ims is not None and stored.last_modified is not None:
            since = parse_http_date(ims)
            return since is not None and stored.last_modified <= since
        return False

    async def serve(
        self, stored: StoredResponse, status_value: str, x_cache: str, *, with_age: bool = False
    ) -> None:
        """Answer the client from ``stored`` (304 when its validators match)."""
        if self.background:
            return
        status = stored.status
        body = stored.body
        etag = stored.etag
        headers = list(stored.headers)
        if stored.flags & FLAG_GZIP:
            add_vary_accept_encoding(headers)
            if accepts_gzip(self.key.headers.get("accept-encoding", "")):
                headers.append((b"content-encoding", b"gzip"))
                etag = gzip_etag(etag)
            elif stored.plain is not None:
                body = stored.plain
            else:
                try:
                    body = gunzip(body)
                except zlib.error:  # a corrupt entry is a miss, never an error
                    logger.warning("asgi-cache: ignoring a corrupt gzip body at %r", self.full_key)
                    await self.passthrough("miss", "corrupt")
                    return
        if etag:
            headers.append((b"etag", etag))
        if status != 204 and status != 304:
            headers.append((b"content-length", b"%d" % len(body)))
        if with_age:
            age = max(0, int(time.time() - stored.created_at))
            headers.append((b"age", b"%d" % age))
        headers += self.mw.status_headers(status_value, x_cache)
        if self.not_modified(stored, etag):
            status = 304
            headers = [h for h in headers if h[0] in _NOT_MODIFIED_KEEP]
            body = b""
        elif self.scope["method"] == "HEAD":
            body = b""
        self.client_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def send_plain(self, status: int, status_value: str, x_cache: str) -> None:
        """Send an empty response generated by the cache itself (e.g. 504 only-if-cached)."""
        headers = [(b"content-length", b"0"), *self.mw.status_headers(status_value, x_cache)]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": b""})

    async def passthrough(self, fwd: str, detail: str) -> None:
        """Let the app answer, only adding ``Cache-Status`` (and hiding ``Cache-Tag``)."""
        mw = self.mw
        x_cache = "BYPASS" if fwd == "bypass" else "MISS"
        status = mw.status_headers(f"fwd={fwd}; detail={detail}", x_cache)

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = mw.client_headers(list(message.get("headers", [])))
                message = {**message, "headers": headers + status}
            await self.send(message)

        await mw.app(self.scope, self.receive, send)


def _vary_names(stored: StoredResponse) -> tuple[str, ...]:
    names = parse_vary([v.decode("latin-1") for n, v in stored.headers if n == b"vary"])
    return names or ()


def _has_origin_validator(stored: StoredResponse) -> bool:
    return bool(
        (stored.etag and not stored.flags & FLAG_DERIVED_ETAG) or stored.header(b"last-modified")
    )


async def _discard(message: Message) -> None:
    return None
