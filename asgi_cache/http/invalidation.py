"""Invalidation on unsafe requests (RFC 9111 section 4.4) and ``@cache.invalidates`` hooks.

A POST/PUT/PATCH/DELETE answered 2xx or 3xx invalidates, before its response start reaches
the client (so the client's next GET is fresh):

1. every cached variant of the target URI (through the implicit per-path URL tag every
   response entry depends on);
2. same-origin ``Location`` and ``Content-Location`` URIs the same way;
3. the tags of the route's ``@cache.invalidates("users:{user_id}", ...)``, filled from path
   parameters.

A 4xx/5xx response or an exception invalidates nothing. Only URIs that can have cached
entries (a GET route with a policy, or any path in ``cache_all`` mode) are invalidated, so
mutations of uncached resources cost no backend command.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from starlette.types import Message, Receive, Send

from .context import HttpContext
from .keying import url_tag_for
from .policy import checked_tags, fill_templates
from .rules import clip

logger = logging.getLogger("asgi_cache.http")


class UnsafeRequest:
    """One mutating request passing through the middleware."""

    __slots__ = ("ctx", "params", "receive", "refresh", "scope", "send", "tags")

    def __init__(
        self, ctx: HttpContext, scope: MutableMapping[str, Any], receive: Receive, send: Send
    ) -> None:
        self.ctx = ctx
        self.scope = scope
        self.receive = receive
        self.send = send
        resolution = ctx.resolver.resolve(scope, ctx.app)
        self.params = resolution.params
        self.tags: list[str] = []
        self.refresh = ctx.options.refresh_on_write
        if resolution.invalidates is not None:
            self.refresh = self.refresh or resolution.invalidates.refresh
            # Templates name only parameters the route has (checked when it was resolved).
            filled = fill_templates(resolution.invalidates.tags, resolution.params) or []
            self.tags, invalid = checked_tags(filled)
            if invalid:
                # A client's path value made a tag that cannot exist: nothing is tagged with
                # it, so there is nothing to invalidate; the URI and the other tags still are.
                ctx.store.stats.log.log(
                    logging.WARNING,
                    "bad tag value",
                    "asgi-cache: %s %s: skipping the tag %s filled from the request (not a "
                    "valid tag); invalidating the URI and the other tags",
                    scope["method"],
                    clip(scope["path"]),
                    clip(invalid[0]),
                )

    async def run(self) -> None:
        """Call the app; invalidate before a successful response starts."""
        await self.ctx.app(self.scope, self.receive, self._send)

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 400:
            await self.invalidate(list(message.get("headers", [])))
        await self.send(message)

    async def invalidate(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Invalidate the target URI, same-origin Location/Content-Location, and the tags."""
        paths = [self.scope["path"]]
        host = _host(self.scope)
        for name, value in headers:
            if name.lower() in (b"location", b"content-location"):
                path = same_origin_path(value.decode("latin-1"), self.scope["path"], host)
                if path is not None:
                    paths.append(path)
        tags = list(self.tags)
        for path in dict.fromkeys(paths):
            if self.ctx.path_cacheable(self.scope, path):
                tags.append(url_tag_for(path))
        if tags:
            # A budget of its own (invalidation_timeout), not the per-operation one: a slow
            # Redis or a starved event loop must not leave other workers serving the entries
            # this write replaced while the retry queue waits (read-after-write).
            store = self.ctx.store
            await store.tags.invalidate(*tags, budget=store.settings.invalidation_timeout)
            if self.refresh:
                # The write is done (the app answered) and its invalidation has landed (or
                # is queued): what the next reader would miss is fetched now instead.
                self.ctx.refresher.schedule(tags)


def _host(scope: MutableMapping[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"host":
            return str(value.decode("latin-1").strip().lower())
    return ""


def same_origin_path(reference: str, base_path: str, host: str) -> str | None:
    """The decoded path of ``reference`` if it is on this origin (RFC 9111 section 4.4)."""
    parts = urlsplit(reference.strip())
    if parts.netloc and parts.netloc.lower() != host:
        return None
    if parts.scheme and parts.scheme not in ("http", "https"):
        return None
    path = parts.path
    if not path:
        return None
    if not path.startswith("/"):
        path = urlsplit(urljoin(base_path, path)).path
    return unquote(path)
