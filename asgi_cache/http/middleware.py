"""``CacheMiddleware``: a pure ASGI middleware caching GET/HEAD responses (RFC 9111).

Two modes:

- opt-in (default): only routes decorated with ``@cache.response(...)`` are cached. The
  middleware matches the request against the app's routes before anything else, so every
  other request costs no backend round trip at all;
- ``cache_all=True``: every GET/HEAD is a candidate, driven by the response's own
  ``Cache-Control`` like a reverse proxy; works on any ASGI app (no router needed).

Non-HTTP scopes pass straight through; lifespan events passing through start and stop the
cache. Per-request state lives in `Exchange`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._store import HasStore, store_of
from .._tasks import BackgroundTasks
from .._validate import ASCII_TEXT, FLAG, seconds, whole
from .cache_control import UNDERSTOOD_STATUSES
from .context import HttpContext, MiddlewareOptions
from .cookies import CookieRules
from .exchange import Exchange
from .freshness import DEFAULT_HEURISTIC_MAX_TTL
from .invalidation import UnsafeRequest
from .keying import DEFAULT_IGNORED_QUERY_PARAMS, DigestMemo, KeyOptions, VaryMemory
from .policy import ResponsePolicy
from .post import PostResponse
from .refresh import WriteRefresher
from .routing import RouteResolver
from .status import StatusHeaders
from .storing import StoringRules, shortening
from .targeted import target_list

logger = logging.getLogger("asgi_cache.http")


SAFE_METHODS: Final = frozenset(
    {"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH", "PRI"}
)
"""Methods known to be safe (RFC 9110 section 9.2.1 and the IANA method registry). Any other
method, extension methods such as ``M-SEARCH`` included, invalidates on success (RFC 9111
section 4.4: "including methods whose safety is unknown"). Squid invalidates the same way
for the methods it knows; Varnish's builtin VCL and nginx invalidate nothing by default."""
_BYTES = whole(words="bytes").or_none()
_HEURISTIC = seconds(zero=True)


class CacheMiddleware:
    """Cache GET/HEAD responses of an ASGI app in a [`Cache`][asgi_cache.Cache].

    Args:
        app: The ASGI app to wrap.
        cache: The cache to store responses in; started and stopped with the app's lifespan.
        cache_all: Cache every GET/HEAD by its response's ``Cache-Control`` (reverse-proxy
            mode) instead of only routes decorated with ``@cache.response(...)``.
        statuses: Response statuses stored in ``cache_all`` mode (default: every final status
            RFC 9110 defines, when the response has explicit freshness or may have a
            heuristic one, RFC 9111 section 3; see ``asgi_cache.http.HEURISTIC_STATUSES``).
        allowed_hosts: Hosts whose requests may be cached (``"example.com"``,
            ``"*.example.com"``); others bypass, so forged Host headers cannot fill the cache.
        ignored_query_params: Query parameters left out of keys (glob patterns); tracking
            parameters such as ``utm_*`` by default.
        honor_request_cache_control: Honour request ``no-cache``, ``max-age`` and
            ``Pragma: no-cache`` (``False`` protects the origin from clients forcing misses:
            a browser's reload sends ``max-age=0``, a hard reload ``no-cache``).
        ignored_cookies: Cookies (names or glob patterns such as ``"_ga*"``) that do not
            make a request private, added to every route's own: analytics and consent
            cookies, which responses never depend on.
        vary_cookies: Cookies whose (hashed) values become part of the key (``"lang"``),
            added to every route's own.
        invalidate_unsafe: Invalidate the target URI of successful requests with a method
            not known to be safe (POST, PUT, PATCH, DELETE, extension methods) and the tags of
            ``@cache.invalidates(...)`` (RFC 9111 section 4.4).
        cache_tag_header: Response header a handler may set to tag a response at run time.
        expose_cache_tags: Keep ``Cache-Tag`` in client responses (stripped by default).
        cache_status_name: The cache's name in ``Cache-Status`` (RFC 9211).
        x_cache: Also send ``X-Cache: HIT|MISS|STALE|BYPASS``.
        max_body_bytes: Largest body stored; defaults to the cache's ``max_body_bytes``.
        compress_min_bytes: On Redis, store text-like bodies at least this long gzip-coded
            (when that saves an eighth) and send them as they are to clients accepting gzip;
            ``None`` stores every body as sent (as the in-process backend always does). See
            `asgi_cache.http.encoding`.
        targeted_cache_control: The targeted cache-control fields (RFC 9213) this cache
            obeys instead of ``Cache-Control``, most specific first; they are not sent to
            clients. Default: ``("CDN-Cache-Control",)`` in ``cache_all`` mode, none for
            opt-in routes. ``()`` turns targeting off.
        heuristic_max_ttl: Cap, in seconds, of the heuristic freshness ``cache_all`` mode
            gives a response with ``Last-Modified`` and no explicit freshness (10 % of its
            age, RFC 9111 section 4.2.2); default one day, ``0`` turns heuristics off.
        store_post_responses: In ``cache_all`` mode, store a ``POST`` response that has
            explicit freshness and a ``Content-Location`` equal to its target, to answer
            later ``GET`` requests of that URI (RFC 9110 section 9.3.3).
        refresh_on_write: After every successful unsafe request, fetch the GET entries its
            invalidation reached again in the background (as
            ``@cache.invalidates(..., refresh=True)`` does for one route), so the next
            reader hits; see `asgi_cache.http.refresh`.

    Raises:
        ConfigurationError: An option has a value that is not allowed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: HasStore,
        cache_all: bool = False,
        statuses: Sequence[int] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        ignored_query_params: Sequence[str] = DEFAULT_IGNORED_QUERY_PARAMS,
        honor_request_cache_control: bool = True,
        invalidate_unsafe: bool = True,
        cache_tag_header: str = "cache-tag",
        expose_cache_tags: bool = False,
        cache_status_name: str = "asgi-cache",
        x_cache: bool = True,
        max_body_bytes: int | None = None,
        compress_min_bytes: int | None = 500,
        ignored_cookies: Sequence[str] = (),
        vary_cookies: Sequence[str] = (),
        targeted_cache_control: Sequence[str] | None = None,
        heuristic_max_ttl: float = DEFAULT_HEURISTIC_MAX_TTL,
        store_post_responses: bool = False,
        refresh_on_write: bool = False,
    ) -> None:
        store = store_of(cache)
        for name, flag in (
            ("cache_all", cache_all),
            ("honor_request_cache_control", honor_request_cache_control),
            ("invalidate_unsafe", invalidate_unsafe),
            ("expose_cache_tags", expose_cache_tags),
            ("x_cache", x_cache),
            ("store_post_responses", store_post_responses),
            ("refresh_on_write", refresh_on_write),
        ):
            FLAG.require(name, flag)
        ASCII_TEXT.require("cache_tag_header", cache_tag_header)
        ASCII_TEXT.require("cache_status_name", cache_status_name)
        _BYTES.require("max_body_bytes", max_body_bytes)
        _BYTES.require("compress_min_bytes", compress_min_bytes)
        _HEURISTIC.require("heuristic_max_ttl", heuristic_max_ttl)
        if targeted_cache_control is None:
            targeted_cache_control = ("CDN-Cache-Control",) if cache_all else ()
        targeted = target_list(targeted_cache_control)
        self.app = app
        name = cache_status_name.strip()
        tag_header = cache_tag_header.strip().lower().encode()
        self.options = MiddlewareOptions(
            cache_all=cache_all,
            honor_request_cache_control=honor_request_cache_control,
            invalidate_unsafe=invalidate_unsafe,
            expose_cache_tags=expose_cache_tags,
            cache_status_name=name,
            x_cache=x_cache,
            max_body_bytes=max_body_bytes or store.settings.max_body_bytes,
            cache_tag_header=tag_header,
            store_post_responses=store_post_responses,
            refresh_on_write=refresh_on_write,
        )
        keying = KeyOptions.build(allowed_hosts, ignored_query_params)
        cookies = CookieRules.build(ignored_cookies, vary_cookies)
        if statuses is None and cache_all:
            statuses = sorted(UNDERSTOOD_STATUSES)
        default_policy = ResponsePolicy.build(statuses=statuses)
        background = BackgroundTasks("background refresh")
        self.context = HttpContext(
            app=app,
            options=self.options,
            store=store,
            keying=keying,
            resolver=RouteResolver(
                fallback=default_policy if cache_all else None,
                ignored_query=keying.ignored,
                cookies=cookies,
            ),
            digests=DigestMemo(),
            vary_memory=VaryMemory(),
            rules=StoringRules(
                default_ttl=store.settings.default_ttl,
                jitter=shortening(store.settings.ttl_jitter, random.Random()),
                # In process memory a smaller entry saves little and every identity hit would
                # pay a decompression; Redis saves memory and network bytes.
                compress_min_bytes=None if store.in_process else compress_min_bytes,
                cache_tag_header=tag_header,
                drop_headers=frozenset() if expose_cache_tags else frozenset({tag_header}),
                targeted=targeted,
                heuristic_max=float(heuristic_max_ttl),
            ),
            status_headers=StatusHeaders(name, x_cache),
            clock=time.time,
            background=background,
            refresher=WriteRefresher(background),
        )
        """Options and memos every request is handed (built once)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            if method not in SAFE_METHODS and self.options.invalidate_unsafe:
                await self._unsafe(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # -- GET / HEAD, inline (no coroutine of its own): every hit takes this path.
        ctx = self.context
        if not ctx.store.settings.enabled:
            await self.app(scope, receive, send)
            return
        resolution = ctx.resolver.resolve(scope, self.app)
        policy = resolution.response
        explicit_only = False
        if policy is None:
            policy = resolution.fallback  # cache_all mode: the response's Cache-Control rules
            if policy is None:
                await self.app(scope, receive, send)  # not a cacheable route: no Redis at all
                return
            explicit_only = True
        stats = ctx.store.stats
        started = time.perf_counter() if stats.timing else 0.0
        exchange = Exchange(
            ctx,
            dict(scope),
            receive,
            send,
            policy,
            resolution.params,
            explicit_only=explicit_only,
        )
        await exchange.run()
        if started:
            # Labelled by the route's template, never the URL (bounded label values).
            cached = not exchange.responder.asked_app
            stats.served(resolution.route, cached, time.perf_counter() - started)

    # -- unsafe methods ------------------------------------------------------------------------

    async def _unsafe(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.context
        if not ctx.store.settings.enabled:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and ctx.options.cache_all and ctx.options.store_post_responses:
            send = PostResponse(ctx, dict(scope), send)  # RFC 9110 section 9.3.3
        await UnsafeRequest(ctx, scope, receive, send).run()

    # -- lifespan ------------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.context.store.runtime
        started = False

        async def wrapped_receive() -> Message:
            nonlocal started
            message = await receive()
            if message["type"] == "lifespan.startup" and not started:
                started = True
                await runtime.start()  # before the app's own startup, which may use it
            return message

        async def wrapped_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.context.background.aclose()
                if started:
                    started = False
                    await runtime.stop()  # after the app's own shutdown, which may use it
            await send(message)

        try:
            await self.app(scope, wrapped_receive, wrapped_send)
        finally:
            if started:
                await runtime.stop()

    async def drain(self) -> None:
        """Wait for the background refreshes running now (stale-while-revalidate, refresh
        on write)."""
        await self.context.background.drain()
