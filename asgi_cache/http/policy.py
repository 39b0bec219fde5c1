"""Route metadata: what ``@cache.response(...)`` and ``@cache.invalidates(...)`` attach.

The decorators return the endpoint itself with an attribute set, so they go *below*
``@app.get(...)`` and FastAPI or Starlette see the original function (``functools.wraps``
copies the attribute too, so other decorators in between keep it).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from .._exceptions import ConfigurationError
from .._templates import fill_tags
from .._validate import FLAG, Check, seconds
from ..keys import validate_tag
from .cache_control import CACHEABLE_BY_DEFAULT
from .cookies import CookieRules

RESPONSE_ATTR: Final = "__asgi_cache_response__"
INVALIDATES_ATTR: Final = "__asgi_cache_invalidates__"

F = TypeVar("F", bound=Callable[..., Any])


def _template_fields(template: str, option: str) -> frozenset[str]:
    if not isinstance(template, str) or not template:
        raise ConfigurationError(f"{option}={template!r} is not allowed: expected non-empty str")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ConfigurationError(
            f"{option}={template!r} is not allowed: bad template ({exc}); use 'users:{{user_id}}'"
        ) from None
    for f in fields:
        if not f.isidentifier():
            raise ConfigurationError(
                f"{option}={template!r} is not allowed: {{{f}}} must name a path parameter"
            )
    return frozenset(fields)


def missing_fields(templates: Iterable[str], params: Iterable[str]) -> dict[str, list[str]]:
    """The templates naming fields that are not among ``params`` (the route's path
    parameters), each with the names it misses. Only path parameters fill templates."""
    names = set(params)
    out: dict[str, list[str]] = {}
    for template in templates:
        missing = sorted(_template_fields(template, "tags") - names)
        if missing:
            out[template] = missing
    return out


def checked_tags(filled: Iterable[str]) -> tuple[list[str], list[str]]:
    """Filled tags split into the valid ones and the ones a request value made invalid
    (too long, CR/LF/NUL, ``*``): ``(valid, invalid)``."""
    valid: list[str] = []
    invalid: list[str] = []
    for tag in filled:
        try:
            valid.append(validate_tag(tag))
        except ConfigurationError:
            invalid.append(tag)
    return valid, invalid


def fill_templates(templates: Iterable[str], params: Mapping[str, Any]) -> list[str] | None:
    """Fill ``{name}`` placeholders from path parameters; ``None`` if one is missing."""
    try:
        return fill_tags(templates, params)  # one fill for every tag template
    except (KeyError, IndexError, ValueError, AttributeError):
        return None


_POSITIVE = seconds().or_none()
_NON_NEGATIVE = seconds(zero=True).or_none()


def _duration(value: float | None, option: str, check: Check = _NON_NEGATIVE) -> float | None:
    check.require(option, value)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponsePolicy:
    """How the middleware caches the responses of one route (built by ``cache.response``)."""

    ttl: float | None = None
    """Freshness lifetime; ``None`` uses the response's ``s-maxage``/``max-age``/``Expires``,
    else the cache's default TTL."""
    tags: tuple[str, ...] = ()
    """Tag templates filled from path parameters (``"users:{user_id}"``)."""
    stale_while_revalidate: float | None = None
    """Seconds a stale entry may be served while one background refresh runs (RFC 5861)."""
    stale_if_error: float | None = None
    """Seconds a stale entry may be served when the origin fails (RFC 5861)."""
    vary: tuple[str, ...] = ()
    """Request headers (lowercased) whose hashed values are part of the key."""
    public: bool = False
    """Cache responses to requests with ``Cookie``/``Authorization`` too (shared by all)."""
    statuses: frozenset[int] = CACHEABLE_BY_DEFAULT
    """Response statuses that may be stored."""
    max_age: float | None = None
    """When set, ``Cache-Control: max-age=<n>`` is added for clients if the origin set none."""
    lock: bool = False
    """Coalesce misses across processes with a Redis lock (one round trip more per miss)."""
    keyed_headers: tuple[str, ...] = ()
    """Request headers the route's dependencies read (found by the middleware when it first
    resolves the route, never set by hand). Their exact values are hashed into the key like
    ``vary``; unlike ``vary`` they do not make ``Cookie``/``Authorization`` requests
    cacheable."""
    uncacheable: str | None = None
    """Set by the middleware when the route reads request inputs it cannot key: the
    ``Cache-Status`` detail its responses bypass the cache with."""
    ignored_cookies: tuple[str, ...] = ()
    """Cookies (names or glob patterns) that do not make a request private (see
    `cookies`); the middleware's are added when it applies the policy."""
    vary_cookies: tuple[str, ...] = ()
    """Cookies whose (hashed) values are part of the key."""
    cookies: CookieRules = field(init=False, repr=False, compare=False)
    """``ignored_cookies`` and ``vary_cookies``, compiled."""
    key_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """``vary``, ``keyed_headers`` and ``cookie:<name>`` for each of ``vary_cookies``:
    every request input the key is made of."""
    vary_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The request header names a response says it varies on (``cookie`` for the
    varied cookies)."""

    def __post_init__(self) -> None:
        cookies = CookieRules.build(self.ignored_cookies, self.vary_cookies)
        headers = {*self.vary, *self.keyed_headers}
        object.__setattr__(self, "cookies", cookies)
        object.__setattr__(self, "key_names", tuple(sorted({*headers, *cookies.key_names()})))
        varied = headers | ({"cookie"} if cookies.vary else set())
        object.__setattr__(self, "vary_names", tuple(sorted(varied)))

    def with_cookies(self, rules: CookieRules) -> ResponsePolicy:
        """This policy with a middleware's cookie rules added to its own."""
        if not rules:
            return self
        merged = self.cookies.merged(rules)
        return dataclasses.replace(self, ignored_cookies=merged.ignored, vary_cookies=merged.vary)

    def for_route(
        self, *, keyed_headers: Iterable[str] = (), uncacheable: str | None = None
    ) -> ResponsePolicy:
        """This policy as applied to one route: keyed on its inputs, or refused."""
        return dataclasses.replace(
            self, keyed_headers=tuple(sorted(set(keyed_headers))), uncacheable=uncacheable
        )

    @classmethod
    def build(
        cls,
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        stale_while_revalidate: float | None = None,
        stale_if_error: float | None = None,
        vary: Iterable[str] = (),
        public: bool = False,
        statuses: Iterable[int] | None = None,
        max_age: float | None = None,
        lock: bool = False,
        ignored_cookies: Iterable[str] = (),
        vary_cookies: Iterable[str] = (),
    ) -> ResponsePolicy:
        """Validate options and build a policy.

        Raises:
            ConfigurationError: An option has a value that is not allowed.
        """
        if isinstance(tags, str):
            raise ConfigurationError(f"tags={tags!r} is not allowed: expected a list of str")
        tag_list = tuple(tags)
        for t in tag_list:
            _template_fields(t, "tags")
        if isinstance(vary, str):
            raise ConfigurationError(f"vary={vary!r} is not allowed: expected a list of names")
        vary_names = tuple(sorted({_header_name(v) for v in vary}))
        status_set = CACHEABLE_BY_DEFAULT if statuses is None else frozenset(statuses)
        if not status_set or not all(
            isinstance(s, int) and not isinstance(s, bool) and 200 <= s <= 599 for s in status_set
        ):
            raise ConfigurationError(
                f"statuses={statuses!r} is not allowed: expected HTTP statuses 200-599"
            )
        FLAG.require("public", public)
        FLAG.require("lock", lock)
        cookies = CookieRules.build(ignored_cookies, vary_cookies)
        return cls(
            ttl=_duration(ttl, "ttl", _POSITIVE),
            tags=tag_list,
            stale_while_revalidate=_duration(stale_while_revalidate, "stale_while_revalidate"),
            stale_if_error=_duration(stale_if_error, "stale_if_error"),
            vary=vary_names,
            public=public,
            statuses=status_set,
            max_age=_duration(max_age, "max_age"),
            lock=lock,
            ignored_cookies=cookies.ignored,
            vary_cookies=cookies.vary,
        )

    def attach(self, endpoint: F) -> F:
        """Attach this policy to ``endpoint`` and return it unchanged."""
        _set_attr(endpoint, RESPONSE_ATTR, self)
        return endpoint


@dataclass(frozen=True, slots=True)
class InvalidationPolicy:
    """The tags a mutating route invalidates when it succeeds (``cache.invalidates``)."""

    tags: tuple[str, ...]
    """Tag templates filled from path parameters."""
    refresh: bool = False
    """Fetch the GET entries the invalidation reached again, in the background."""

    @classmethod
    def build(cls, tags: Iterable[str], *, refresh: bool = False) -> InvalidationPolicy:
        """Validate tag templates and build a policy.

        Raises:
            ConfigurationError: A template is not a non-empty str with named fields, or
                ``refresh`` is not a bool.
        """
        tag_list = tuple(tags)
        for t in tag_list:
            _template_fields(t, "invalidates")
        FLAG.require("refresh", refresh)
        return cls(tag_list, refresh)

    def attach(self, endpoint: F) -> F:
        """Attach this policy to ``endpoint`` and return it unchanged."""
        _set_attr(endpoint, INVALIDATES_ATTR, self)
        return endpoint


def _header_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or not name.strip().isascii():
        raise ConfigurationError(f"vary entry {name!r} is not allowed: expected a header name")
    return name.strip().lower()


def _set_attr(endpoint: Any, attr: str, value: object) -> None:
    try:
        setattr(endpoint, attr, value)
    except (AttributeError, TypeError):
        raise ConfigurationError(
            f"cannot attach cache metadata to {endpoint!r}: decorate a function or class"
        ) from None


def response_policy_of(endpoint: object) -> ResponsePolicy | None:
    """The response policy attached to an endpoint (function or ``HTTPEndpoint`` class)."""
    policy = getattr(endpoint, RESPONSE_ATTR, None)
    if policy is None and isinstance(endpoint, type):
        policy = getattr(getattr(endpoint, "get", None), RESPONSE_ATTR, None)
    return policy if isinstance(policy, ResponsePolicy) else None


def invalidation_policy_of(endpoint: object, method: str) -> InvalidationPolicy | None:
    """The invalidation policy attached to an endpoint (or its ``HTTPEndpoint`` method)."""
    policy = getattr(endpoint, INVALIDATES_ATTR, None)
    if policy is None and isinstance(endpoint, type):
        handler = getattr(endpoint, method.lower(), None)
        policy = getattr(handler, INVALIDATES_ATTR, None)
    return policy if isinstance(policy, InvalidationPolicy) else None
