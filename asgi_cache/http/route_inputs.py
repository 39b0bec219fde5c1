"""What request inputs a FastAPI route's dependencies read, found once from its dependant tree.

A hit is answered before FastAPI solves the route's dependencies, so whatever they read
(an ``X-API-Key`` header, a session cookie, a ``Header()`` set by a proxy) decides the answer
without being seen by the cache. `route_inputs` reads the tree FastAPI will solve (the
route's own parameters, its sub-dependencies recursively, router-level and app-level
dependencies) and says:

- which request headers are read: ``Header()`` parameters (under every name FastAPI accepts
  for them: alias, validation aliases, the parameter name with ``_`` turned into ``-``, the
  fields of a header model), ``APIKeyHeader`` names, and ``Authorization`` for the HTTP
  (Basic, Bearer, Digest), OAuth2 and OpenID Connect schemes; ``Cookie`` when a ``Cookie()``
  parameter or an ``APIKeyCookie`` reads a cookie;
- which query parameters are read (``Query()`` parameters, ``APIKeyQuery``), which the URL
  already keys unless the middleware ignores them;
- what cannot be analysed: a dependency taking the ``Request``/``HTTPConnection``
  itself (it may read anything), a security scheme with its own ``__call__``,
  a header or query model that accepts extra fields (its answer depends on every header).

The endpoint's own parameters are analysed too, except a ``Request`` parameter of the
endpoint itself: the endpoint is the decorated function, its reads are the author's to
declare with ``vary=`` (templates, ``url_for`` and ``request.app.state`` are its usual uses).

Nothing here imports FastAPI: the dependant (``fastapi.dependencies.models.Dependant``) and
the security schemes are read by their documented attributes, so every supported FastAPI
version works the same way.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

_AUTHORIZATION_SCHEMES: Final = frozenset({"http", "oauth2", "openIdConnect"})
_API_KEY_PLACES: Final = frozenset({"header", "cookie", "query"})
_MAX_NODES: Final = 2000
"""Dependant nodes read at most (a guard against pathological trees): more is opaque."""


@dataclass(frozen=True, slots=True)
class RouteInputs:
    """The request inputs a route's dependencies read."""

    headers: frozenset[str]
    """Lowercased request header names (``cookie`` when any cookie is read)."""
    queries: frozenset[str]
    """Query parameter names."""
    opaque: tuple[str, ...]
    """Why some inputs cannot be known (each a short sentence); empty when all are known."""


def route_inputs(dependant: Any) -> RouteInputs:
    """Read a FastAPI route's dependant tree once (see the module docstring)."""
    walk = _Walk()
    walk.visit(dependant, top=True)
    return RouteInputs(frozenset(walk.headers), frozenset(walk.queries), tuple(walk.opaque))


class _Walk:
    __slots__ = ("headers", "nodes", "opaque", "queries", "seen")

    def __init__(self) -> None:
        self.headers: set[str] = set()
        self.queries: set[str] = set()
        self.opaque: list[str] = []
        self.seen: set[int] = set()
        self.nodes = 0

    def visit(self, dependant: Any, *, top: bool) -> None:
        if id(dependant) in self.seen:
            return
        self.seen.add(id(dependant))
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            if self.nodes == _MAX_NODES + 1:
                self.opaque.append(f"the dependency tree has more than {_MAX_NODES} nodes")
            return
        call = getattr(dependant, "call", None)
        scheme = _security_scheme(call)
        if scheme is not None:
            self._scheme(scheme)
            return  # a known scheme's own Request parameter is what it reads, said above
        for field in getattr(dependant, "header_params", ()):
            self.headers |= {n.lower() for n in self._names(field, header=True, kind="header")}
        if getattr(dependant, "cookie_params", ()):
            self.headers.add("cookie")
        for field in getattr(dependant, "query_params", ()):
            self.queries |= self._names(field, header=False, kind="query")
        if not top:
            for attr in ("request_param_name", "http_connection_param_name"):
                if getattr(dependant, attr, None):
                    self.opaque.append(f"dependency {_name(call)} takes the request itself")
                    break
        for sub in getattr(dependant, "dependencies", ()):
            self.visit(sub, top=False)

    def _scheme(self, scheme: Any) -> None:
        model = getattr(scheme, "model", None)
        kind = _value(getattr(model, "type_", None))
        own_call = _defining_module(type(scheme), "__call__")
        if not own_call.startswith("fastapi.security"):
            self.opaque.append(f"security scheme {type(scheme).__name__} has its own __call__")
        elif kind in _AUTHORIZATION_SCHEMES:
            self.headers.add("authorization")
        elif kind == "apiKey":
            where = _value(getattr(model, "in_", None))
            name = getattr(model, "name", None)
            if not isinstance(name, str) or where not in _API_KEY_PLACES:
                self.opaque.append(f"API key scheme {type(scheme).__name__} reads {where!r}")
            elif where == "header":
                self.headers.add(name.lower())
            elif where == "cookie":
                self.headers.add("cookie")
            else:
                self.queries.add(name)
        else:
            self.opaque.append(f"security scheme {type(scheme).__name__} of type {kind!r}")

    def _names(self, field: Any, *, header: bool, kind: str) -> set[str]:
        """Every request name FastAPI may read ``field`` from (a superset is harmless)."""
        info = getattr(field, "field_info", None)
        model = _param_model(getattr(info, "annotation", None))
        if model is None:
            return _field_names(getattr(field, "name", None), getattr(field, "alias", None), info)
        extra = getattr(model, "model_config", {}).get("extra")
        if extra in ("allow", "forbid"):
            self.opaque.append(f"{kind} model {model.__name__} reads every {kind} (extra={extra})")
        names: set[str] = set()
        for name, model_field in getattr(model, "model_fields", {}).items():
            names |= _field_names(name, getattr(model_field, "alias", None), model_field)
        if header:
            names |= {n.replace("_", "-") for n in names}
        return names


def _field_names(name: object, alias: object, info: object) -> set[str]:
    names = {n for n in (name, alias) if isinstance(n, str)}
    validation = getattr(info, "validation_alias", None)
    if isinstance(validation, str):
        names.add(validation)
    for choice in getattr(validation, "choices", ()):
        if isinstance(choice, str):
            names.add(choice)
    return names | {n.replace("_", "-") for n in names}


def _param_model(annotation: Any) -> type | None:
    """The pydantic model a ``Header()``/``Query()``/``Cookie()`` parameter is, if any."""
    for candidate in _types_in(annotation, 0):
        if hasattr(candidate, "model_fields") and hasattr(candidate, "model_config"):
            return candidate
    return None


def _types_in(annotation: Any, depth: int) -> Iterable[type]:
    if depth > 4:
        return
    if isinstance(annotation, type):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _types_in(arg, depth + 1)


def _security_scheme(call: Any) -> Any:
    """``call`` (unwrapped) if it is a ``fastapi.security`` scheme instance, else ``None``."""
    while isinstance(call, functools.partial):
        call = call.func
    if call is None or isinstance(call, type) or inspect.isroutine(call):
        return None
    for klass in type(call).__mro__:
        if klass.__name__ == "SecurityBase" and klass.__module__.startswith("fastapi.security"):
            return call
    return None


def _defining_module(klass: type, attr: str) -> str:
    for base in klass.__mro__:
        if attr in vars(base):
            return str(base.__module__)
    return ""


def _value(member: object) -> object:
    return getattr(member, "value", member)


def _name(call: object) -> str:
    return str(getattr(call, "__qualname__", None) or type(call).__qualname__)
