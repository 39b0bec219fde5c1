"""The router shapes Starlette and FastAPI build, and how to see into each of them.

The middleware runs before the router, so it must follow the same path through the app's
routes as the router will (`asgi_cache.http.routing` matches, `route_audit`
enumerates). The shapes:

- Starlette ``Route``, ``WebSocketRoute`` and FastAPI ``APIRoute`` (and subclasses): a full
  match's child scope names the ``endpoint``; FastAPI routes also carry the ``dependant`` that
  FastAPI solves before calling the endpoint;
- ``Mount`` and ``Host``: their ``routes`` are those of the mounted app or router (a mounted
  Starlette or FastAPI app, a ``Router``), matched against the child scope;
- FastAPI's included router (``app.include_router(...)`` from FastAPI 0.137 on): one route
  standing for the whole included router, whose ``matches()`` says FULL but names no endpoint.
  Its ``_match(scope)`` returns what it will dispatch to (the original route, the route
  context holding the prefixed path and the effective dependant, with router- and app-level
  dependencies), and ``effective_candidates()`` lists its routes, nested included routers
  among them. Both are private FastAPI methods, so they are only used on objects that have
  the whole shape; anything else is a route this module cannot see into (the audit says so
  once). Older FastAPI copies included routes into the parent as plain ``APIRoute`` objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final, NamedTuple

from starlette.routing import Host, Match, Mount

# The modules whose ``matches`` only look at the path, method and (Host) host header.
_STOCK_MODULES: Final = frozenset({"starlette.routing", "fastapi.routing"})
MAX_DEPTH: Final = 32
"""Deepest nesting of mounts and included routers followed (a guard against cycles)."""


class Selected(NamedTuple):
    """What an included router dispatches a request to."""

    route: Any
    """The route it selected: an ``APIRoute``, a Starlette route, a mount, a host, or a nested
    included router."""
    child_scope: dict[str, Any]
    """The selected route's child scope (``endpoint``, ``path_params``, ...)."""
    context: Any
    """FastAPI's route context for the selected route (its effective ``dependant``), if any."""


def is_included_router(route: object) -> bool:
    """Whether ``route`` is FastAPI's included-router route (FastAPI 0.137 and later)."""
    return (
        hasattr(route, "include_context")
        and hasattr(route, "original_router")
        and callable(getattr(route, "_match", None))
        and callable(getattr(route, "effective_candidates", None))
    )


def select_included(route: Any, scope: dict[str, Any]) -> Selected | None:
    """The route an included router dispatches ``scope`` to, if it fully matches one."""
    try:
        match, child, selected, context = route._match(scope)
    except Exception:  # another FastAPI's private shape: treat as a route we cannot see into
        return None
    if match is not Match.FULL or selected is None:
        return None
    return Selected(selected, dict(child), context)


def included_candidates(route: Any) -> list[tuple[Any, Any]]:
    """An included router's routes as (route, context) pairs, nested routers as (router, None)."""
    try:
        candidates = list(route.effective_candidates())
    except Exception:
        return []
    pairs: list[tuple[Any, Any]] = []
    for candidate in candidates:
        if is_included_router(candidate):
            pairs.append((candidate, None))
            continue
        inner = getattr(candidate, "starlette_route", None) or getattr(
            candidate, "original_route", None
        )
        pairs.append((inner, candidate))
    return pairs


def _custom(route: object) -> bool:
    matches = getattr(type(route), "matches", None)
    return getattr(matches, "__module__", None) not in _STOCK_MODULES


def has_custom_matching(routes: Sequence[Any]) -> bool:
    """Whether any route in the tree has its own ``matches`` (it may look at any header).

    Such a route's decision, or the decision of routes after it, may depend on more than the
    path, so resolutions of that app are never remembered per path.
    """
    for route, _context, _endpoint in _walk(routes, 0):
        if route is not None and _custom(route):
            return True
    return False


def enumerate_endpoints(routes: Sequence[Any]) -> Iterator[Any]:
    """Every endpoint the router can dispatch to, through every shape above."""
    for _route, _context, endpoint in _walk(routes, 0):
        if endpoint is not None:
            yield endpoint


def _walk(routes: Sequence[Any], depth: int) -> Iterator[tuple[Any, Any, Any]]:
    """(route, context, endpoint) for every route of the tree, depth first."""
    if depth > MAX_DEPTH:
        return
    for route in routes:
        yield from _walk_route(route, None, depth)


def _walk_route(route: Any, context: Any, depth: int) -> Iterator[tuple[Any, Any, Any]]:
    if is_included_router(route):
        for inner, inner_context in included_candidates(route):
            if inner is route or depth > MAX_DEPTH:
                continue
            yield from _walk_route(inner, inner_context, depth + 1)
        return
    if isinstance(route, Mount | Host):
        yield route, context, None
        yield from _walk(mounted_routes(route), depth + 1)
        return
    endpoint = getattr(context, "endpoint", None) or getattr(route, "endpoint", None)
    yield route, context, endpoint


def mounted_routes(route: Mount | Host) -> Sequence[Any]:
    """The routes of a mount's or host's app (``[]`` for an app without routes)."""
    try:
        routes = route.routes
    except Exception:
        return []
    return routes if isinstance(routes, list) else []
