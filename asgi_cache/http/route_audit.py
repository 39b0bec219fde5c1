"""Find cache policies the middleware can never apply, so it can say so once.

A ``@cache.response``/``@cache.invalidates`` policy only works on the function the router
dispatches to. Two mistakes hide it silently: a decorator between ``@app.get(...)`` and
``@cache.response(...)`` that does not use ``functools.wraps`` (the route calls the wrapper,
the policy sits on the wrapped function), and a route type the resolver cannot see into (a
custom route keeping its handler under another name, an app wrapped in a middleware and then
mounted). `unreachable_policies` compares two walks of the app's routes:

- what the resolver sees: every endpoint `enumerate_endpoints` reaches,
  and the policies attached to them;
- what the app holds: every function reachable from the routes through route-like objects
  (routes, routers, apps, FastAPI's route contexts: anything with ``routes``, ``endpoint``,
  ``original_route`` or ``original_router``), their lists, and, from each function, what it
  wraps (``__wrapped__``, ``functools.partial``, closure cells holding functions).

A policy held but not seen is reported. Policies are compared by identity, so a wrapper made
with ``functools.wraps`` (which copies the policy onto the wrapper) is not reported. The walk
is bounded and runs once per app (at its first request), never per request. A decorated
function that is in no route at all (another app's, or never registered) is not reachable
and not reported.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from starlette.routing import BaseRoute

from .policy import INVALIDATES_ATTR, RESPONSE_ATTR
from .route_shapes import enumerate_endpoints

_MAX_OBJECTS: Final = 50_000
"""Objects visited at most by one audit (a guard for very large or cyclic apps)."""
_ROUTE_LIKE_ATTRS: Final = ("routes", "endpoint", "original_route", "original_router", "app")
_PATH_NAMES: Final = 6
"""Type names kept of the path from the app's routes to a reported function."""
_CLASS_HANDLERS: Final = ("get", "head", "post", "put", "patch", "delete")


class Unreachable(NamedTuple):
    """A function with a cache policy that no request can reach through resolvable routes."""

    name: str
    """The function's qualified name."""
    decorators: str
    """Which decorators it carries (``@cache.response``, ``@cache.invalidates``)."""
    hint: str
    """Why it is unreachable and what to do."""


def _policies_of(obj: Any) -> list[tuple[str, object]]:
    """The policy objects attached to a function (or an ``HTTPEndpoint`` class's handlers)."""
    holders = [obj]
    if isinstance(obj, type):
        holders += [vars(obj)[h] for h in _CLASS_HANDLERS if h in vars(obj)]
    found: list[tuple[str, object]] = []
    for holder in holders:
        attrs = getattr(holder, "__dict__", None)
        if not isinstance(attrs, dict):
            continue
        for attr, label in (
            (RESPONSE_ATTR, "@cache.response"),
            (INVALIDATES_ATTR, "@cache.invalidates"),
        ):
            policy = attrs.get(attr)
            if policy is not None:
                found.append((label, policy))
    return found


def _is_function_like(obj: object) -> bool:
    return inspect.isroutine(obj) or isinstance(obj, functools.partial | type)


def _wrapped_by(obj: Any) -> list[Any]:
    """What a function wraps: ``__wrapped__``, a partial's function, closure functions."""
    inner: list[Any] = []
    for attr in ("__wrapped__", "__func__", "func"):
        value = getattr(obj, attr, None) if not isinstance(obj, type) else None
        if value is not None and _is_function_like(value):
            inner.append(value)
    for cell in getattr(obj, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if _is_function_like(value):
            inner.append(value)
    return inner


def _is_route_like(obj: object) -> bool:
    """Routes, routers, apps, middleware (``self.app``) and FastAPI's route contexts."""
    if isinstance(obj, BaseRoute):
        return True
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict) and any(attr in attrs for attr in _ROUTE_LIKE_ATTRS):
        return True
    return any("routes" in vars(klass) for klass in type(obj).__mro__)


def _attribute_values(obj: object) -> list[Any]:
    values = list(getattr(obj, "__dict__", {}).values())
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if isinstance(slot, str) and hasattr(obj, slot):
                values.append(getattr(obj, slot))
    return values


def unreachable_policies(routes: Sequence[Any]) -> list[Unreachable]:
    """Policies held by the app's routes that route resolution never reaches."""
    seen_policies: set[int] = set()
    for endpoint in enumerate_endpoints(routes):
        seen_policies.update(id(policy) for _, policy in _policies_of(endpoint))
    found: list[Unreachable] = []
    visited: set[int] = set()
    # (object, reached from a function, type names of the route-like objects on the way)
    stack: list[tuple[Any, bool, tuple[str, ...]]] = [(list(routes), False, ())]
    while stack and len(visited) < _MAX_OBJECTS:
        obj, from_function, path = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        if _is_function_like(obj):
            hidden = [(d, p) for d, p in _policies_of(obj) if id(p) not in seen_policies]
            if hidden:
                seen_policies.update(id(p) for _, p in hidden)
                found.append(_report(obj, hidden, from_function, path))
            stack.extend((inner, True, path) for inner in _wrapped_by(obj))
        elif isinstance(obj, list | tuple):
            stack.extend((item, from_function, path) for item in reversed(obj))
        elif _is_route_like(obj):
            inner_path = (*path, type(obj).__name__)[-_PATH_NAMES:]
            stack.extend((value, False, inner_path) for value in _attribute_values(obj))
    return found


def _report(
    obj: Any, hidden: list[tuple[str, object]], from_function: bool, path: tuple[str, ...]
) -> Unreachable:
    name = str(getattr(obj, "__qualname__", None) or repr(obj))
    decorators = " and ".join(sorted({d for d, _ in hidden}))
    if from_function:
        hint = (
            "the route calls a wrapper of it: put the cache decorator directly below "
            "@app.get(...)/@router.get(...), or make the decorators in between use "
            "functools.wraps"
        )
    else:
        hint = (
            f"it is reached through {' > '.join(path)}, which the middleware cannot see "
            "into: use Route/APIRoute/Mount/Host/include_router, and mount apps unwrapped"
        )
    return Unreachable(name, decorators, hint)
