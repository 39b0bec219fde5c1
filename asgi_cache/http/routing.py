"""Find the Starlette/FastAPI route a request will reach, and the cache policy on it.

The middleware runs before the router, so it matches the request against the app's routes
itself, exactly as the router will dispatch it: ``route.matches(scope)`` in order, the first
full match wins (a partial match, a 405, is not a match), descending into mounts, hosts,
mounted apps and FastAPI's included routers (`route_shapes`).

Results are remembered per (method, path) in a bounded map, so resolving a known path is a
dict lookup. Routes that depend on more than the path are matched but never remembered:
``Host`` routes (per request), and every route of an app that has a route with its own
``matches`` (it may read any header).

When a GET route with a policy (or, in ``cache_all`` mode, any FastAPI route) is first
resolved, its dependant tree is read once (`route_inputs`) and the policy is adapted
to it: the headers its dependencies read become part of the key, or, when some input cannot
be known, the route is refused (it bypasses the cache at no backend cost) unless declared
``public=True`` or with ``vary=``. The decision is logged once per route, and remembered per
(policy, dependant), never recomputed per request.

At the first request, the app's routes are audited once (`route_audit`): a policy
that no request can reach is logged as a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from starlette.routing import Host, Match, Mount

from .cookies import CookieRules
from .policy import (
    InvalidationPolicy,
    ResponsePolicy,
    invalidation_policy_of,
    missing_fields,
    response_policy_of,
)
from .route_audit import unreachable_policies
from .route_inputs import route_inputs
from .route_shapes import (
    MAX_DEPTH,
    has_custom_matching,
    is_included_router,
    mounted_routes,
    select_included,
)

logger = logging.getLogger("asgi_cache.http")

UNCACHEABLE_INPUTS: Final = "request-inputs"
"""``Cache-Status`` detail of a route refused because it reads inputs that cannot be keyed."""
BAD_TEMPLATE: Final = "tag-template"
"""``Cache-Status`` detail of a route whose tag templates name a parameter it does not have."""
_READS: Final = frozenset({"GET", "HEAD"})

_P = TypeVar("_P", ResponsePolicy, InvalidationPolicy)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The policies of the matched route and its path parameters."""

    response: ResponsePolicy | None
    """The route's response policy, adapted to the inputs its dependencies read."""
    invalidates: InvalidationPolicy | None
    params: dict[str, Any]
    fallback: ResponsePolicy | None = None
    """In ``cache_all`` mode: the policy for this request when the route has none."""
    route: str = ""
    """The matched route's path template (``/users/{user_id}``), empty when none matched:
    the bounded name metrics label requests with (never the URL)."""


@dataclass(frozen=True, slots=True)
class _Target:
    """What the router dispatches to: the endpoint, FastAPI's dependant, a name for logs."""

    endpoint: Any
    dependant: Any
    params: dict[str, Any]
    path: str


class RouteResolver:
    """Resolves requests to route policies, remembering results per path.

    Args:
        max_items: Resolutions remembered (oldest dropped first).
        fallback: The ``cache_all`` mode policy for requests whose route has none (``None``
            in opt-in mode).
        ignored_query: Whether the middleware leaves a query parameter out of keys.
        cookies: The middleware's ``ignored_cookies``/``vary_cookies``, added to every
            route's policy.
    """

    __slots__ = (
        "_adapted",
        "_audited",
        "_checked",
        "_cookies",
        "_fallback",
        "_ignored_query",
        "_memo",
        "_with_cookies",
        "max_items",
    )

    def __init__(
        self,
        max_items: int = 4096,
        *,
        fallback: ResponsePolicy | None = None,
        ignored_query: Callable[[str], bool] = lambda name: False,
        cookies: CookieRules | None = None,
    ) -> None:
        self.max_items = max_items
        self._cookies = cookies or CookieRules()
        self._fallback = None if fallback is None else fallback.with_cookies(self._cookies)
        self._ignored_query = ignored_query
        # id(policy) -> (policy, the policy with the middleware's cookie rules)
        self._with_cookies: dict[int, tuple[object, ResponsePolicy]] = {}
        self._memo: dict[tuple[str, str, str, int], Resolution] = {}
        # id(routes) -> whether resolutions may be remembered per path (the routes list is
        # kept alive in the value so its id stays unique).
        self._audited: dict[int, tuple[Sequence[Any], bool]] = {}
        # (id(policy), id(dependant)) -> (policy, dependant, adapted policy)
        self._adapted: dict[tuple[int, int], tuple[object, object, ResponsePolicy]] = {}
        # (id(policy), path parameter names) -> (policy, the policy as checked)
        self._checked: dict[tuple[int, frozenset[str]], tuple[object, Any]] = {}

    def resolve(self, scope: MutableMapping[str, Any], app: Any) -> Resolution:
        """The resolution for ``scope``; ``method`` GET is used for HEAD (served from GET)."""
        routes = getattr(scope.get("app"), "routes", None)  # `_routes_of`, inline: per request
        if not isinstance(routes, list) or not routes:
            routes = _routes_of(app)
        if not routes:
            return Resolution(None, None, {}, self._fallback)
        method = scope["method"]
        memo_key = (method, scope.get("root_path", ""), scope["path"], id(routes))
        hit = self._memo.get(memo_key)
        if hit is not None:
            return hit
        audited = self._audited.get(id(routes))
        if audited is None:
            audited = self._audit(routes)
        match_scope = dict(scope)
        if isinstance(scope.get("fastapi"), dict):  # FastAPI keeps matching state there
            match_scope["fastapi"] = dict(scope["fastapi"])
        if method == "HEAD":
            match_scope["method"] = "GET"
        target, cacheable = _match(routes, match_scope, 0)
        found = self._resolution(target, match_scope["method"])
        if cacheable and audited[1]:
            memo = self._memo
            if len(memo) >= self.max_items:
                del memo[next(iter(memo))]
            memo[memo_key] = found
        return found

    def _audit(self, routes: Sequence[Any]) -> tuple[Sequence[Any], bool]:
        for item in unreachable_policies(routes):
            logger.warning(
                "asgi-cache: %s carries %s but no request can reach it: %s; it is never "
                "cached nor invalidated",
                item.name,
                item.decorators,
                item.hint,
            )
        audited = (routes, not has_custom_matching(routes))
        self._audited[id(routes)] = audited
        return audited

    def _resolution(self, target: _Target | None, method: str) -> Resolution:
        if target is None:
            return Resolution(None, None, {}, self._fallback)
        policy = response_policy_of(target.endpoint)
        fallback = self._fallback
        if method in _READS and target.dependant is not None:
            if policy is not None:
                policy = self._adapt(policy, target)
            elif fallback is not None:
                fallback = self._adapt(fallback, target)
        invalidates = invalidation_policy_of(target.endpoint, method)
        if policy is not None and self._cookies:
            policy = self._cookied(policy)
        if policy is not None and policy.tags:
            policy = self._checked_templates(policy, target)
        if invalidates is not None and invalidates.tags:
            invalidates = self._checked_templates(invalidates, target)
        return Resolution(policy, invalidates, target.params, fallback, target.path)

    def _cookied(self, policy: ResponsePolicy) -> ResponsePolicy:
        """``policy`` with the middleware's cookie rules added (once per policy)."""
        known = self._with_cookies.get(id(policy))
        if known is not None:
            return known[1]
        applied = policy.with_cookies(self._cookies)
        if len(self._with_cookies) >= self.max_items:
            del self._with_cookies[next(iter(self._with_cookies))]
        self._with_cookies[id(policy)] = (policy, applied)
        return applied

    def _checked_templates(self, policy: _P, target: _Target) -> _P:
        """``policy`` as it applies to a route with ``target``'s path parameters, checked
        once per pair: a tag template naming a parameter the route does not have is a
        configuration error, logged once. A response policy is then refused (its entries
        could not be invalidated by that tag); an invalidation policy keeps the other
        templates (and the URI invalidation)."""
        key = (id(policy), frozenset(target.params))
        known = self._checked.get(key)
        if known is not None:
            checked: _P = known[1]
            return checked
        broken = missing_fields(policy.tags, target.params)
        checked = policy
        if broken:
            what = "response" if isinstance(policy, ResponsePolicy) else "invalidation"
            logger.error(
                "asgi-cache: configuration error: %s (%s) has %s tag templates naming "
                "parameters it does not have: %s; only path parameters fill templates (%s), "
                "query parameters do not; %s",
                getattr(target.endpoint, "__qualname__", target.endpoint),
                target.path,
                what,
                "; ".join(f"{t!r} needs {', '.join(m)}" for t, m in broken.items()),
                ", ".join(sorted(target.params)) or "it has none",
                "not caching it"
                if isinstance(policy, ResponsePolicy)
                else "invalidating its URI and the other tags only",
            )
            if isinstance(policy, ResponsePolicy):
                checked = policy.for_route(
                    keyed_headers=policy.keyed_headers, uncacheable=BAD_TEMPLATE
                )
            else:
                checked = InvalidationPolicy(tuple(t for t in policy.tags if t not in broken))
        if len(self._checked) >= self.max_items:
            del self._checked[next(iter(self._checked))]
        self._checked[key] = (policy, checked)
        return checked

    def _adapt(self, policy: ResponsePolicy, target: _Target) -> ResponsePolicy:
        """``policy`` adapted to the inputs of the route's dependant (once per pair)."""
        dependant = target.dependant
        key = (id(policy), id(dependant))
        known = self._adapted.get(key)
        if known is not None:
            return known[2]
        adapted = self._decide(policy, target)
        if len(self._adapted) >= self.max_items:
            del self._adapted[next(iter(self._adapted))]
        self._adapted[key] = (policy, dependant, adapted)
        return adapted

    def _decide(self, policy: ResponsePolicy, target: _Target) -> ResponsePolicy:
        inputs = route_inputs(target.dependant)
        name = f"{getattr(target.endpoint, '__qualname__', target.endpoint)} ({target.path})"
        ignored = sorted(q for q in inputs.queries if self._ignored_query(q))
        reasons: list[str] = []
        hints: list[str] = []
        if inputs.opaque and not (policy.public or policy.vary):
            reasons += inputs.opaque
            hints.append("declare the request headers it depends on with vary=[...]")
        if ignored and not policy.public:
            reasons.append(f"it reads query parameters the cache ignores ({', '.join(ignored)})")
            hints.append("take them out of ignored_query_params")
        if reasons:
            logger.warning(
                "asgi-cache: not caching %s: %s; %s, or declare public=True if its answer is "
                "the same for every caller",
                name,
                "; ".join(reasons),
                ", ".join(hints),
            )
            return policy.for_route(uncacheable=UNCACHEABLE_INPUTS)
        if not inputs.headers:
            return policy
        logger.info(
            "asgi-cache: %s is keyed on the request headers its dependencies read: %s",
            name,
            ", ".join(sorted(inputs.headers)),
        )
        return policy.for_route(keyed_headers=inputs.headers)


def _routes_of(app: Any) -> Sequence[Any] | None:
    routes = getattr(app, "routes", None)
    return routes if isinstance(routes, list) else None


def _match(routes: Sequence[Any], scope: dict[str, Any], depth: int) -> tuple[_Target | None, bool]:
    """The target of the first fully matching route, and whether it may be remembered."""
    if depth > MAX_DEPTH:
        return None, False
    for route in routes:
        if is_included_router(route):
            # Its matches() says FULL without naming an endpoint; its selection does.
            selected = select_included(route, scope)
            if selected is None:
                continue
            return _descend(selected.route, scope, selected.child_scope, selected.context, depth)
        try:
            match, child = route.matches(scope)
        except Exception:  # a custom route that cannot match this scope
            continue
        if match is Match.FULL:
            return _descend(route, scope, child, None, depth)
    return None, True


def _descend(
    route: Any, scope: dict[str, Any], child: dict[str, Any], context: Any, depth: int
) -> tuple[_Target | None, bool]:
    """The target behind a fully matched route (a mount, a host, a nested router, a leaf)."""
    if is_included_router(route):
        selected = select_included(route, {**scope, **child})
        if selected is None:
            return None, True
        sub_scope = {**scope, **child}
        return _descend(
            selected.route, sub_scope, selected.child_scope, selected.context, depth + 1
        )
    if isinstance(route, Mount | Host):
        target, cacheable = _match(mounted_routes(route), {**scope, **child}, depth + 1)
        return target, cacheable and not isinstance(route, Host)
    endpoint = child.get("endpoint", getattr(route, "endpoint", None))
    holder = context if context is not None else route
    return (
        _Target(
            endpoint,
            getattr(holder, "dependant", None),
            dict(child.get("path_params", {})),
            str(getattr(holder, "path", None) or getattr(route, "path", "?")),
        ),
        True,
    )
