"""``CacheMiddleware``: a pure ASGI middleware caching GET/HEAD responses (RFC 9111).

Two modes:

- opt-in (default): only routes decorated with ``@cache.response(...)`` are cached. The
  middleware matches the request against the app's routes before anything else, so every
  other request costs no backend round trip at all;
- ``cache_all=True``: every GET/HEAD is a candidate, driven by the response's own
  ``Cache-Control`` like a reverse proxy; works on any ASGI app (no router needed).

Non-HTTP scopes pass straight through; lifespan events passing through start and stop the
cache. Per-request state lives in :class:`~asgi_cache.http.exchange.Exchange`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._store import HasStore, store_of
from .._tasks import BackgroundTasks
from .._validate import ASCII_TEXT, FLAG, whole
from .exchange import Exchange, Shared
from .invalidation import UnsafeRequest
from .keying import (
    DEFAULT_IGNORED_QUERY_PARAMS,
    DigestMemo,
    KeyOptions,
    RequestKey,
    VaryMemory,
)
from .policy import ResponsePolicy
from .responses import StoredResponse
from .routing import RouteResolver

logger = logging.getLogger("asgi_cache.http")


UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BYTES = whole(words="bytes").or_none()


@dataclass(frozen=True, slots=True, kw_only=True)
class MiddlewareOptions:
    """The behaviour switches of one :class:`CacheMiddleware`."""

    cache_all: bool
    honor_request_cache_control: bool
    invalidate_unsafe: bool
    expose_cache_tags: bool
    cache_status_name: str
    x_cache: bool


class CacheMiddleware:
    """Cache GET/HEAD responses of an ASGI app in a :class:`~asgi_cache.Cache`.

    Args:
        app: The ASGI app to wrap.
        cache: The cache to store responses in; started and stopped with the app's lifespan.
        cache_all: Cache every GET/HEAD by its response's ``Cache-Control`` (reverse-proxy
            mode) instead of only routes decorated with ``@cache.response(...)``.
        statuses: Response statuses stored in ``cache_all`` mode (default ``{200}``; see
            ``asgi_cache.http.HEURISTIC_STATUSES``).
        allowed_hosts: Hosts whose requests may be cached (``"example.com"``,
            ``"*.example.com"``); others bypass, so forged Host headers cannot fill the cache.
        ignored_query_params: Query parameters left out of keys (glob patterns); tracking
            parameters such as ``utm_*`` by default.
        honor_request_cache_control: Honour request ``no-cache``, ``max-age`` and
            ``Pragma: no-cache`` (``False`` protects the origin from clients forcing misses).
        invalidate_unsafe: Invalidate the target URI of successful POST/PUT/PATCH/DELETE
            requests and the tags of ``@cache.invalidates(...)`` (RFC 9111 section 4.4).
        cache_tag_header: Response header a handler may set to tag a response at run time.
        expose_cache_tags: Keep ``Cache-Tag`` in client responses (stripped by default).
        cache_status_name: The cache's name in ``Cache-Status`` (RFC 9211).
        x_cache: Also send ``X-Cache: HIT|MISS|STALE|BYPASS``.
        max_body_bytes: Largest body stored; defaults to the cache's ``max_body_bytes``.
        compress_min_bytes: On Redis, store text-like bodies at least this long gzip-coded
            (when that saves an eighth) and send them as they are to clients accepting gzip;
            ``None`` stores every body as sent (as the in-process backend always does). See
            :mod:`asgi_cache.http.encoding`.

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
    ) -> None:
        store = store_of(cache)
        for name, flag in (
            ("cache_all", cache_all),
            ("honor_request_cache_control", honor_request_cache_control),
            ("invalidate_unsafe", invalidate_unsafe),
            ("expose_cache_tags", expose_cache_tags),
            ("x_cache", x_cache),
        ):
            FLAG.require(name, flag)
        ASCII_TEXT.require("cache_tag_header", cache_tag_header)
        ASCII_TEXT.require("cache_status_name", cache_status_name)
        _BYTES.require("max_body_bytes", max_body_bytes)
        _BYTES.require("compress_min_bytes", compress_min_bytes)
        self.app = app
        self.store = store
        """The cache's store: entries, tags and locks (the middleware never sees the backend)."""
        self.options = MiddlewareOptions(
            cache_all=cache_all,
            honor_request_cache_control=honor_request_cache_control,
            invalidate_unsafe=invalidate_unsafe,
            expose_cache_tags=expose_cache_tags,
            cache_status_name=cache_status_name.strip(),
            x_cache=x_cache,
        )
        self.keying = KeyOptions.build(allowed_hosts, ignored_query_params)
        self.default_policy = ResponsePolicy.build(statuses=statuses)
        self.max_body_bytes = max_body_bytes or store.settings.max_body_bytes
        self.compress_min_bytes = compress_min_bytes
        self.cache_tag_header = cache_tag_header.strip().lower().encode()
        self.resolver = RouteResolver(
            fallback=self.default_policy if cache_all else None,
            ignored_query=self.keying.ignored,
        )
        self.vary_memory = VaryMemory()
        self.digests = DigestMemo()
        self.inflight: dict[str, asyncio.Future[Shared | None]] = {}
        self.refreshing: set[str] = set()
        self._background = BackgroundTasks("background refresh")
        self._status_prefix = cache_status_name.strip() + "; "

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            method = scope["method"]
            if method == "GET" or method == "HEAD":
                await self._get(scope, receive, send)
                return
            if method in UNSAFE_METHODS and self.options.invalidate_unsafe:
                await self._unsafe(scope, receive, send)
                return
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self.app(scope, receive, send)

    # -- GET / HEAD ----------------------------------------------------------------------------

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.store.settings.enabled:
            await self.app(scope, receive, send)
            return
        resolution = self.resolver.resolve(scope, self.app)
        policy = resolution.response
        explicit_only = False
        if policy is None:
            policy = resolution.fallback  # cache_all mode: the response's Cache-Control rules
            if policy is None:
                await self.app(scope, receive, send)  # not a cacheable route: no Redis at all
                return
            explicit_only = True
        exchange = Exchange(
            self,
            dict(scope),
            receive,
            send,
            policy,
            resolution.params,
            explicit_only=explicit_only,
        )
        await exchange.run()

    def status_headers(self, value: str, x_cache: str) -> list[tuple[bytes, bytes]]:
        """The ``Cache-Status`` (RFC 9211) and ``X-Cache`` headers for an outcome."""
        headers = [(b"cache-status", (self._status_prefix + value).encode())]
        if self.options.x_cache:
            headers.append((b"x-cache", x_cache.encode()))
        return headers

    def client_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Origin headers as sent to the client (``Cache-Tag`` hidden unless exposed)."""
        if self.options.expose_cache_tags:
            return headers
        name = self.cache_tag_header
        return [(n, v) for n, v in headers if n.lower() != name]

    async def vary_of(self, key: RequestKey) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The Vary names and runtime tags remembered for the request's URL.

        In-process first; the backend copy is read when this process does not know the
        URL's tags yet (once per URL and process).
        """
        memory = self.vary_memory
        local = memory.get_local(key.url_digest)
        if local is not None and local[1] is not None:
            return local[0], local[1]
        store = self.store
        raw, answered = await store.read_note(store.keys.vary(key.url_digest), what="vary read")
        if not answered:
            return (), ()
        found = memory.decode(raw)
        memory.put_local(key.url_digest, *found)
        return found

    async def remember(
        self, key: RequestKey, vary: tuple[str, ...], tags: tuple[str, ...], ttl: float
    ) -> None:
        """Remember a URL's response Vary names and runtime tags (when they changed)."""
        memory = self.vary_memory
        if memory.get_local(key.url_digest) == (vary, tags):
            return
        memory.put_local(key.url_digest, vary, tags)
        store = self.store
        ttl = max(ttl, store.settings.default_ttl)
        await store.write_note(
            store.keys.vary(key.url_digest), memory.encode(vary, tags), ttl, what="vary write"
        )

    def schedule_refresh(self, exchange: Exchange, stored: StoredResponse) -> None:
        """Start one background refresh of ``exchange``'s entry (stale-while-revalidate)."""
        full_key = exchange.full_key
        if full_key in self.refreshing:
            return
        self.refreshing.add(full_key)
        refresh = Exchange(
            self,
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
        refresh.full_key = full_key
        refresh.stale = stored
        refresh.fwd = "stale"
        self._background.start_soon(lambda: self._refresh(refresh))

    async def _refresh(self, refresh: Exchange) -> None:
        try:
            await refresh.origin()
        except Exception:
            logger.warning("asgi-cache: background refresh failed", exc_info=True)
        finally:
            self.refreshing.discard(refresh.full_key)

    # -- unsafe methods ------------------------------------------------------------------------

    async def _unsafe(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.store.settings.enabled:
            await self.app(scope, receive, send)
            return
        await UnsafeRequest(self, scope, receive, send).run()

    def path_cacheable(self, scope: Scope, path: str) -> bool:
        """Whether GET responses of ``path`` on this app may be in the cache at all."""
        if self.options.cache_all:
            return True
        get_scope = {**scope, "method": "GET", "path": path, "query_string": b""}
        return self.resolver.resolve(get_scope, self.app).response is not None

    # -- lifespan ------------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.store.runtime
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
                await self._stop_background()
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
        """Wait for the background refreshes running now (stale-while-revalidate)."""
        await self._background.drain()

    async def _stop_background(self) -> None:
        await self._background.aclose()


async def _never() -> Message:
    return {"type": "http.disconnect"}  # pragma: no cover - background refreshes own receive
