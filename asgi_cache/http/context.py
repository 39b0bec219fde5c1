"""What every request of one middleware shares: frozen options and the app-wide memos.

[`CacheMiddleware`][asgi_cache.CacheMiddleware] validates its options
and builds one `HttpContext` at construction; each request's
`Exchange` (and each unsafe request) is handed it, as
Starlette's ``GZipResponder`` is handed plain values rather than its middleware. The
context holds:

- the options (`MiddlewareOptions`) and the storing rules derived from them;
- the memos shared by every request: the route resolver, the digest memo, the per-URL Vary
  memory, what the hits of each entry share (`hits`), the in-flight misses coalesced in
  this process and the running refreshes;
- the store handle (entries, tags, locks: the middleware never sees a backend) and the
  clock every freshness decision reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from starlette.types import ASGIApp

from .._store import Store
from .._tasks import BackgroundTasks
from .hits import HitMemo
from .keying import DigestMemo, KeyOptions, RequestKey, VaryMemory
from .policy import ResponsePolicy
from .refresh import WriteRefresher
from .responses import StoredResponse
from .routing import RouteResolver
from .status import StatusHeaders
from .storing import StoringRules

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True, kw_only=True)
class MiddlewareOptions:
    """The behaviour switches of one [`CacheMiddleware`][asgi_cache.CacheMiddleware] (validated)."""

    cache_all: bool
    honor_request_cache_control: bool
    invalidate_unsafe: bool
    expose_cache_tags: bool
    cache_status_name: str
    x_cache: bool
    max_body_bytes: int
    """Largest body stored; larger ones stream through."""
    cache_tag_header: bytes
    """The response header naming tags at run time (lowercase)."""
    store_post_responses: bool = False
    """``cache_all``: reuse fresh POST responses for later GETs (RFC 9110 section 9.3.3)."""
    refresh_on_write: bool = False
    """Refresh the GET entries every successful unsafe request invalidated (`refresh`)."""


class Shared(NamedTuple):
    """What a coalesced leader hands its waiters: the response and the key it fits."""

    stored: StoredResponse
    names: tuple[str, ...]
    """The header names the response varies on (policy and response ``Vary``)."""
    full_key: str


Flight = asyncio.Future[Shared | None]
"""A miss in flight in this process: what its leader shares when it has an answer (``None``:
nothing to share, the waiters ask the app themselves)."""


def release(flight: Flight | None, result: Shared | None) -> None:
    """Wake the requests waiting on ``flight`` with ``result`` (once; later calls do
    nothing)."""
    if flight is not None and not flight.done():
        flight.set_result(result)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpContext:
    """Options and memos shared by every request of one middleware (built once)."""

    app: ASGIApp
    """The wrapped app (the origin)."""
    options: MiddlewareOptions
    store: Store
    """The cache's store: entries, tags and locks."""
    keying: KeyOptions
    resolver: RouteResolver
    digests: DigestMemo
    vary_memory: VaryMemory
    rules: StoringRules
    status_headers: StatusHeaders
    """Renders a `CacheStatus` as response headers."""
    clock: Callable[[], float]
    """Unix time, for every freshness decision."""
    background: BackgroundTasks
    """Where background refreshes (stale-while-revalidate) run."""
    inflight: dict[str, Flight] = field(default_factory=dict)
    """Misses in flight in this process, by full key: later identical misses wait on them."""
    refreshing: set[str] = field(default_factory=set)
    """Full keys whose background refresh is running (one at a time per key)."""
    refresher: WriteRefresher
    """The GET entries a write may refresh, and those refreshes (refresh on write)."""
    hits: HitMemo = field(default_factory=HitMemo)
    """What the hits of each stored entry share (its decoded response, its sent forms)."""

    def full_key(self, key: RequestKey, names: tuple[str, ...], policy: ResponsePolicy) -> str:
        """The store key of ``key``'s variant for the varied header ``names``."""
        if not names:
            return key.plain_key(self.store.keys.http)
        return self.store.keys.http(key.digest(names, exact=policy.keyed_headers))

    def client_headers(self, headers: Headers) -> Headers:
        """Origin headers as sent to the client (``Cache-Tag`` hidden unless exposed, and
        the targeted cache-control fields this cache obeys, RFC 9213)."""
        hidden = set(self.rules.targeted)
        if not self.options.expose_cache_tags:
            hidden.add(self.options.cache_tag_header)
        if not hidden:
            return headers
        return [(n, v) for n, v in headers if n.lower() not in hidden]

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

    def path_cacheable(self, scope: MutableMapping[str, Any], path: str) -> bool:
        """Whether GET responses of ``path`` on this app may be in the cache at all."""
        if self.options.cache_all:
            return True
        get_scope = {**scope, "method": "GET", "path": path, "query_string": b""}
        return self.resolver.resolve(get_scope, self.app).response is not None
