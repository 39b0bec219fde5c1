"""Find the Starlette/FastAPI route a request will reach, and the cache policy on it.

The middleware runs before the router, so it matches the request against the app's routes
itself (``route.matches(scope)`` exactly as the router does, descending into mounts). Results
are remembered per (method, path) in a bounded map, so resolving a known path is a dict
lookup; routes that depend on more than the path (``Host``) are matched but never remembered.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import Host, Match, Mount

from .policy import (
    InvalidationPolicy,
    ResponsePolicy,
    invalidation_policy_of,
    response_policy_of,
)

__all__ = ["Resolution", "RouteResolver"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """The policies of the matched route and its path parameters."""

    response: ResponsePolicy | None
    invalidates: InvalidationPolicy | None
    params: dict[str, Any]


_NONE = Resolution(None, None, {})


class RouteResolver:
    """Resolves requests to route policies, remembering results per path."""

    __slots__ = ("_memo", "max_items")

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self._memo: dict[tuple[str, str, str, int], Resolution] = {}

    def resolve(self, scope: MutableMapping[str, Any], app: Any) -> Resolution:
        """The resolution for ``scope``; ``method`` GET is used for HEAD (served from GET)."""
        routes = _routes_of(scope.get("app")) or _routes_of(app)
        if not routes:
            return _NONE
        method = scope["method"]
        memo_key = (method, scope.get("root_path", ""), scope["path"], id(routes))
        hit = self._memo.get(memo_key)
        if hit is not None:
            return hit
        match_scope = dict(scope)
        if method == "HEAD":
            match_scope["method"] = "GET"
        found, cacheable = _match(routes, match_scope)
        if cacheable:
            memo = self._memo
            if len(memo) >= self.max_items:
                del memo[next(iter(memo))]
            memo[memo_key] = found
        return found


def _routes_of(app: Any) -> Sequence[Any] | None:
    routes = getattr(app, "routes", None)
    return routes if isinstance(routes, list) else None


def _match(routes: Sequence[Any], scope: dict[str, Any]) -> tuple[Resolution, bool]:
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # a custom route that cannot match this scope
            continue
        if match is not Match.FULL:
            continue
        host_based = isinstance(route, Host)
        if isinstance(route, Mount | Host):
            sub_scope = {**scope, **child}
            inner, cacheable = _match(route.routes, sub_scope)
            return inner, cacheable and not host_based
        endpoint = child.get("endpoint", getattr(route, "endpoint", None))
        method = scope["method"]
        return (
            Resolution(
                response_policy_of(endpoint),
                invalidation_policy_of(endpoint, method),
                dict(child.get("path_params", {})),
            ),
            True,
        )
    return _NONE, True
