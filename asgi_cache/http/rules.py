"""What a shared cache may store and serve: request bypass rules and response storability.

Each function returns a short reason string (used in ``Cache-Status: ...; detail=<reason>``)
or ``None`` when the request or response is fine. The rules and where they come from:

- RFC 9111 section 3: only final responses with a status the policy allows, no ``no-store``,
  no ``private`` (we are a shared cache), no ``Vary: *`` (section 4.1);
- ``Set-Cookie`` responses are never stored: replaying one user's cookie to others is the
  classic cache leak;
- RFC 9111 section 3.5: a request with ``Authorization`` may only be answered from a shared
  cache when the response says ``public``, ``s-maxage`` or ``must-revalidate``; this library
  applies the same rule to ``Cookie`` (private by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .cache_control import (
    HEURISTIC_STATUSES,
    UNDERSTOOD_STATUSES,
    delta_seconds,
    field_names,
    parse_cache_control,
    parse_vary,
)
from .conditional import origin_preconditions
from .freshness import explicit_lifetime, heuristic_lifetime, parse_age
from .policy import ResponsePolicy
from .responses import (
    FLAG_MUST_REVALIDATE,
    FLAG_NO_CACHE,
    FLAG_NO_CACHE_FIELDS,
    FLAG_SHAREABLE,
    FLAG_TARGETED,
)
from .targeted import select_targeted

LOGGED_VALUE_CHARS: Final = 60
"""Characters of a client's value (a path, a tag filled from it) a log line shows at most."""

METHOD_OVERRIDE_HEADERS: Final = ("x-http-method-override", "x-http-method", "x-method-override")
_CREDENTIALS: Final = ("authorization", "cookie")
_BYPASS_FIELDS: Final = frozenset(
    {"content-length", "transfer-encoding", "if-match", "if-unmodified-since"}
).union(METHOD_OVERRIDE_HEADERS)
"""Every field `request_bypass_reason` looks at: a request with none of them (most) is
cleared by one set operation."""


def clip(value: str) -> str:
    """``value`` as a log line may show it: repr'd, at most `LOGGED_VALUE_CHARS`
    characters of it, and its full length when cut (client input is never logged whole)."""
    if len(value) <= LOGGED_VALUE_CHARS:
        return repr(value)
    return f"{value[:LOGGED_VALUE_CHARS]!r}... ({len(value)} characters)"


def request_bypass_reason(headers: dict[str, str]) -> str | None:
    """Why a GET/HEAD request must not touch the cache at all, if it must not."""
    if headers.keys().isdisjoint(_BYPASS_FIELDS):
        return None
    length = headers.get("content-length", "0").strip()
    if (length and length != "0") or "transfer-encoding" in headers:
        return "request-body"  # a GET with a body: its meaning is undefined (RFC 9110 9.3.1)
    if any(h in headers for h in METHOD_OVERRIDE_HEADERS):
        return "method-override"
    if origin_preconditions(headers):
        return "precondition"  # If-Match / If-Unmodified-Since: only the origin can say
    return None


@dataclass(frozen=True, slots=True)
class RequestDirectives:
    """What the request's ``Cache-Control`` (and ``Pragma``) ask of the cache."""

    no_store: bool = False
    """Do not store the response (RFC 9111 section 5.2.1.5)."""
    no_cache: bool = False
    """Go to the origin first: ``no-cache``, ``max-age=0`` or ``Pragma: no-cache``."""
    max_age: int | None = None
    """Accept no stored response older than this (section 5.2.1.1)."""
    only_if_cached: bool = False
    """Answer from the cache or with 504, never from the origin (section 5.2.1.7)."""
    max_stale: float | None = None
    """Accept a stale response up to this many seconds past its lifetime (section 5.2.1.2;
    ``inf`` for ``max-stale`` without a value)."""
    min_fresh: float | None = None
    """Accept only a response still fresh for this many seconds (section 5.2.1.3)."""

    @classmethod
    def parse(cls, headers: dict[str, str]) -> RequestDirectives:
        """Read the directives from the request's headers (lowercase names)."""
        if "cache-control" not in headers and "pragma" not in headers:
            return NO_DIRECTIVES  # most requests: nothing to parse, nothing to build
        cc = parse_cache_control(headers.get("cache-control"))
        max_age: int | None = None
        if "max-age" in cc:
            max_age = delta_seconds(cc["max-age"]) or 0
        # RFC 9111 section 5.4: Pragma only counts when there is no Cache-Control.
        pragma = headers.get("pragma", "").lower()
        pragma_no_cache = "cache-control" not in headers and "no-cache" in pragma
        max_stale: float | None = None
        if "max-stale" in cc:
            arg = cc["max-stale"]
            # No value: any staleness; an invalid one counts as none at all (0).
            max_stale = float("inf") if arg is None else float(delta_seconds(arg) or 0)
        min_fresh: float | None = None
        if "min-fresh" in cc:
            min_fresh = float(delta_seconds(cc["min-fresh"]) or 0)
        return cls(
            no_store="no-store" in cc,
            no_cache="no-cache" in cc or max_age == 0 or pragma_no_cache,
            max_age=max_age,
            only_if_cached="only-if-cached" in cc,
            max_stale=max_stale,
            min_fresh=min_fresh,
        )


NO_DIRECTIVES: Final = RequestDirectives()
"""A request asking nothing of the cache (shared: the directives are frozen)."""


def credentials_reason(headers: dict[str, str], policy: ResponsePolicy) -> str | None:
    """Which credential header makes this request private under ``policy``, if any."""
    if policy.public:
        return None
    for name in _CREDENTIALS:
        if name in headers and name not in policy.vary:
            if name == "cookie" and not policy.cookies.private(headers[name]):
                continue  # only ignored and keyed cookies (ignored_cookies, vary_cookies)
            return name
    return None


@dataclass(slots=True)
class ResponseFacts:
    """What the response headers say, parsed once when the response starts."""

    status: int
    headers: list[tuple[bytes, bytes]]
    cc: dict[str, str | None]
    vary: tuple[str, ...] | None
    etag: bytes
    last_modified: bytes
    content_length: int | None
    content_type: bytes
    set_cookie: bool
    expires: str | None
    date: str | None
    age: int | None
    """The origin's ``Age`` (RFC 9111 section 5.1), ``None`` when absent or invalid."""
    fields: dict[bytes, list[str]]
    """The lines of every ``*-cache-control`` field (candidates for RFC 9213 targeting)."""
    targeted: bool = False
    """A field of the target list is present: it is stripped from client responses."""

    @classmethod
    def parse(cls, status: int, headers: list[tuple[bytes, bytes]]) -> ResponseFacts:
        """Parse the fields the rules need from an ASGI header list."""
        cc_values: list[str] = []
        vary_values: list[str] = []
        etag = last_modified = content_type = b""
        content_length: int | None = None
        set_cookie = False
        expires = date = None
        age_lines: list[str] = []
        fields: dict[bytes, list[str]] = {}
        for raw_name, value in headers:
            name = raw_name.lower()
            if name == b"cache-control":
                cc_values.append(value.decode("latin-1"))
            elif name == b"vary":
                vary_values.append(value.decode("latin-1"))
            elif name == b"etag":
                etag = value
            elif name == b"last-modified":
                last_modified = value
            elif name == b"content-length":
                content_length = int(value) if value.strip().isdigit() else None
            elif name == b"content-type":
                content_type = value.lower()
            elif name == b"set-cookie":
                set_cookie = True
            elif name == b"expires":
                # A singleton field: several lines make one invalid value (RFC 9110 5.5).
                line = value.decode("latin-1")
                expires = line if expires is None else f"{expires}, {line}"
            elif name == b"date":
                line = value.decode("latin-1")
                date = line if date is None else f"{date}, {line}"
            elif name == b"age":
                age_lines.append(value.decode("latin-1"))
            elif name.endswith(b"-cache-control"):
                fields.setdefault(name, []).append(value.decode("latin-1"))
        return cls(
            status=status,
            headers=headers,
            cc=parse_cache_control(", ".join(cc_values)),
            vary=parse_vary(vary_values),
            etag=etag,
            last_modified=last_modified,
            content_length=content_length,
            content_type=content_type,
            set_cookie=set_cookie,
            expires=expires,
            date=date,
            age=parse_age(age_lines),
            fields=fields,
        )

    def use_targeted(self, targeted: tuple[bytes, ...]) -> None:
        """Obey the first valid field of the target list instead of ``Cache-Control`` and
        ``Expires`` (RFC 9213 section 2.2), when the response has one."""
        if not targeted or not self.fields:
            return
        self.targeted = any(name in self.fields for name in targeted)
        found = select_targeted(targeted, self.fields)
        if found is not None:
            self.cc = found
            self.expires = None

    @property
    def no_cache_fields(self) -> frozenset[bytes]:
        """The fields of a qualified ``no-cache="..."`` (RFC 9111 section 5.2.2.4)."""
        return field_names(self.cc.get("no-cache")) if "no-cache" in self.cc else frozenset()

    @property
    def private_fields(self) -> frozenset[bytes]:
        """The fields of a qualified ``private="..."`` (RFC 9111 section 5.2.2.7): never
        stored, the rest of the response is."""
        return field_names(self.cc.get("private")) if "private" in self.cc else frozenset()

    @property
    def no_cache(self) -> bool:
        """Unqualified ``no-cache``: revalidate before every use."""
        return "no-cache" in self.cc and not self.no_cache_fields

    @property
    def private(self) -> bool:
        """Unqualified ``private``: a shared cache never stores it."""
        return "private" in self.cc and not self.private_fields

    @property
    def no_store(self) -> bool:
        """``no-store`` in force: ``must-understand`` with an understood status overrides it
        (RFC 9111 section 5.2.2.3)."""
        cc = self.cc
        if "no-store" not in cc:
            return False
        return not ("must-understand" in cc and self.status in UNDERSTOOD_STATUSES)

    @property
    def shareable(self) -> bool:
        """Explicitly shareable for requests with credentials (RFC 9111 section 3.5)."""
        cc = self.cc
        return "public" in cc or "s-maxage" in cc or "must-revalidate" in cc

    @property
    def has_validator(self) -> bool:
        """Whether the origin sent a validator it can answer conditional requests with."""
        return bool(self.etag or self.last_modified)

    def unstorable_reason(
        self,
        policy: ResponsePolicy,
        *,
        credentials: str | None,
        explicit_only: bool,
        max_body_bytes: int,
    ) -> str | None:
        """Why this response must not be stored, if it must not."""
        cc = self.cc
        if self.status not in policy.statuses or self.status == 304:
            return "status"
        if "must-understand" in cc and self.status not in UNDERSTOOD_STATUSES:
            return "must-understand"  # RFC 9111 section 5.2.2.3
        if self.no_store:
            return "no-store"
        if self.private:
            return "private"
        if self.set_cookie and b"set-cookie" not in self.private_fields | self.no_cache_fields:
            # Deliberate: a Set-Cookie response is stored only when the origin says the
            # cookie is per user and the rest is shared (private="set-cookie").
            return "set-cookie"
        if self.vary is None:
            return "vary-star"
        if credentials is not None and not self.shareable:
            return credentials
        if self.content_length is not None and self.content_length > max_body_bytes:
            return "too-large"
        if self.content_type.startswith(b"text/event-stream"):
            return "event-stream"
        if any(b"\0" in n or b"\0" in v for n, v in self.headers):
            return "bad-header"  # RFC 9110 section 5.5 forbids NUL; the stored form relies on it
        if self.no_cache and not self.has_validator:
            return "no-cache"  # would be revalidated on every use, and cannot be
        if explicit_only and policy.ttl is None:
            # RFC 9111 section 3: explicit freshness, or public or a heuristically cacheable
            # status; the latter only with a validator (Last-Modified for the heuristic,
            # or an ETag to revalidate a lifetime of 0), or it would be expired at once.
            explicit = explicit_lifetime(cc, self.expires, self.date, 0.0) is not None
            heuristic = "public" in cc or self.status in HEURISTIC_STATUSES
            if not explicit and not (heuristic and self.has_validator):
                return "no-freshness"
        return None

    def flags(self) -> int:
        """Entry flags for the directives this response carries."""
        cc = self.cc
        flags = 0
        if self.no_cache:
            flags |= FLAG_NO_CACHE
        elif self.no_cache_fields:
            flags |= FLAG_NO_CACHE_FIELDS
        if self.targeted:
            flags |= FLAG_TARGETED
        # s-maxage implies proxy-revalidate for shared caches (RFC 9111 section 5.2.2.10).
        if "must-revalidate" in cc or "proxy-revalidate" in cc or "s-maxage" in cc:
            flags |= FLAG_MUST_REVALIDATE
        if self.shareable:
            flags |= FLAG_SHAREABLE
        return flags

    def lifetime(
        self,
        policy: ResponsePolicy,
        default_ttl: float,
        now: float,
        *,
        explicit_only: bool,
        heuristic_max: float = 0.0,
    ) -> float:
        """Freshness lifetime before jitter (`freshness`): the policy's ttl, else
        s-maxage/max-age/Expires, else (``cache_all``) a heuristic one or 0, else (opt-in)
        the default TTL."""
        if policy.ttl is not None:
            return policy.ttl
        explicit = explicit_lifetime(self.cc, self.expires, self.date, now)
        if explicit is not None:
            return explicit
        if not explicit_only:
            return default_ttl
        last_modified = self.last_modified.decode("latin-1") if self.last_modified else None
        return heuristic_lifetime(
            status=self.status,
            public="public" in self.cc,
            last_modified=last_modified,
            date=self.date,
            now=now,
            cap=heuristic_max,
        )

    def stale_windows(self, policy: ResponsePolicy) -> tuple[float, float]:
        """(stale-while-revalidate, stale-if-error) seconds: the policy's, else RFC 5861's."""
        swr = policy.stale_while_revalidate
        if swr is None:
            swr = float(delta_seconds(self.cc.get("stale-while-revalidate")) or 0)
        sie = policy.stale_if_error
        if sie is None:
            sie = float(delta_seconds(self.cc.get("stale-if-error")) or 0)
        return swr, sie
