"""What to store of a response, and for how long: pure functions over the response's facts.

No I/O and no state: given the parsed response (`ResponseFacts`), its body,
the route's policy and a clock reading, these functions say what the entry holds (the
end-to-end headers a hit replays, a validator, the body as sent or gzip-coded) and its three
instants (RFC 9111 section 4.2):

- ``fresh_until``: creation (the response time minus its corrected initial age, RFC 9111
  section 4.2.3) plus the freshness lifetime (`freshness`: the policy's ``ttl``, else
  ``s-maxage``/``max-age``/``Expires``, else a heuristic or the default TTL), jittered only
  downwards;
- ``fresh_until + swr``/``+ sie``: the RFC 5861 windows a stale entry may still serve in;
- ``stale_until``: when the entry leaves the backend (an entry with a validator is kept a
  while longer, to be revalidated cheaply with a conditional request).

The exchange (`exchange`) does the writing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .._exceptions import ConfigurationError
from ..keys import validate_tag
from .cache_control import merge_vary, parse_vary
from .dates import parse_http_date
from .encoding import compressible_type, try_gzip
from .freshness import created_at, jittered
from .policy import ResponsePolicy
from .responses import (
    FLAG_DERIVED_ETAG,
    FLAG_GZIP,
    FLAG_MUST_REVALIDATE,
    StoredResponse,
    derive_etag,
    end_to_end_headers,
)
from .rules import ResponseFacts

logger = logging.getLogger("asgi_cache.http")

Headers = list[tuple[bytes, bytes]]

_CONDITIONAL: Final = frozenset(
    {b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since", b"if-range"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoringRules:
    """The middleware-wide inputs of what is stored (plain values, fixed at construction)."""

    default_ttl: float
    """The cache's default TTL: lifetime of responses without freshness information (opt-in
    routes), and the least time an entry with a validator is kept."""
    jitter: Callable[[float], float]
    """Spreads a freshness lifetime, only ever shortening it (`shortening`)."""
    compress_min_bytes: int | None
    """Bodies at least this long may be stored gzip-coded; ``None``: never (in process)."""
    cache_tag_header: bytes
    """The response header naming tags at run time (lowercase)."""
    drop_headers: frozenset[bytes]
    """Response headers never stored (``Cache-Tag`` unless exposed)."""
    targeted: tuple[bytes, ...] = ()
    """The target list of RFC 9213 fields this cache obeys, in order (lowercase)."""
    heuristic_max: float = 0.0
    """Cap of a heuristic freshness lifetime (``cache_all`` mode); 0: no heuristic."""


def shortening(fraction: float, rng: random.Random) -> Callable[[float], float]:
    """A jitter that only shortens: a lifetime times a factor in ``[1 - fraction, 1]``.

    Responses stored together still expire apart, and none is fresh a moment past what the
    origin (``max-age``, ``s-maxage``, ``Expires``) or the policy's ``ttl`` allow (RFC 9111
    section 4.2: a cache may expire a response early, never late).
    """

    def jitter(lifetime: float) -> float:
        return lifetime * (1.0 - rng.uniform(0.0, fraction)) if fraction else lifetime

    return jitter


def set_times(
    stored: StoredResponse,
    facts: ResponseFacts,
    policy: ResponsePolicy,
    rules: StoringRules,
    *,
    now: float,
    created: float,
    explicit_only: bool,
    keep: bool,
) -> None:
    """Set ``stored``'s creation, freshness and stale windows from the response ``facts``
    (RFC 9111 section 4.2, RFC 5861).

    ``created``: when the response was generated, as `created_at`
    reckons it. ``keep``: the response has a validator, so the entry is worth keeping past
    its windows to revalidate cheaply.
    """
    lifetime = facts.lifetime(
        policy,
        rules.default_ttl,
        now,
        explicit_only=explicit_only,
        heuristic_max=rules.heuristic_max,
    )
    lifetime = jittered(lifetime, rules.jitter)  # the one place jitter touches a lifetime
    swr, sie = facts.stale_windows(policy)
    if stored.flags & FLAG_MUST_REVALIDATE:
        swr = sie = 0.0
    stored.created_at = created
    stored.fresh_until = created + lifetime
    stored.swr, stored.sie = swr, sie
    window = max(swr, sie)
    if keep:
        window = max(window, lifetime, rules.default_ttl)
    stored.stale_until = stored.fresh_until + window


def build_response(
    facts: ResponseFacts,
    body: bytes,
    policy: ResponsePolicy,
    rules: StoringRules,
    *,
    now: float,
    explicit_only: bool,
    request_time: float | None = None,
) -> StoredResponse | None:
    """The entry for a complete storable response, or ``None`` if it is already expired.

    ``request_time``: when the request was forwarded (RFC 9111 section 4.2.3); ``now`` is
    the response time.
    """
    # ETag and Content-Length depend on the representation served: added when serving.
    # Fields a qualified private="..." names are never stored (RFC 9111 section 5.2.2.7).
    drop = rules.drop_headers | facts.private_fields
    headers = [
        (n, v)
        for n, v in end_to_end_headers(facts.headers, drop)
        if n != b"content-length" and n != b"etag"
    ]
    flags = facts.flags()
    etag = facts.etag
    if not etag and facts.status == 200:
        etag = derive_etag(body)
        flags |= FLAG_DERIVED_ETAG
    plain: bytes | None = None
    if _compressible(facts, headers, body, rules.compress_min_bytes):
        coded = try_gzip(body)
        if coded is not None:
            body, plain = coded, body
            flags |= FLAG_GZIP
    if policy.max_age is not None and not facts.cc:
        headers.append((b"cache-control", b"max-age=%d" % int(policy.max_age)))
    headers = one_vary(headers, policy.vary_names)
    stored = StoredResponse(
        status=facts.status,
        headers=headers,
        body=body,
        created_at=now,
        fresh_until=now,
        stale_until=now,
        flags=flags,
        etag=etag,
        last_modified=parse_http_date(facts.last_modified.decode("latin-1")),
        tags=runtime_tags(facts, rules.cache_tag_header),
        plain=plain,
    )
    set_times(
        stored,
        facts,
        policy,
        rules,
        now=now,
        created=_created(facts, now, request_time),
        explicit_only=explicit_only,
        keep=facts.has_validator,
    )
    if stored.stale_until <= now + 0.001:
        return None
    return stored


def freshen(
    stale: StoredResponse,
    facts_304: ResponseFacts,
    policy: ResponsePolicy,
    rules: StoringRules,
    *,
    now: float,
    explicit_only: bool,
    request_time: float | None = None,
) -> ResponseFacts:
    """Update ``stale`` from the origin's 304 (RFC 9111 section 4.3.4); return the merged
    facts of the freshened response (its new lifetime is set from them, its age from the
    304, the response that just came from the origin)."""
    stale.freshen(facts_304.headers)
    stale.headers = one_vary(stale.headers, policy.vary_names)
    merged = ResponseFacts.parse(stale.status, stale.headers_with_etag())
    merged.use_targeted(rules.targeted)
    stale.flags = (stale.flags & (FLAG_DERIVED_ETAG | FLAG_GZIP)) | merged.flags()
    created = _created(facts_304, now, request_time)
    set_times(
        stale,
        merged,
        policy,
        rules,
        now=now,
        created=created,
        explicit_only=explicit_only,
        keep=True,
    )
    return merged


def one_vary(headers: Headers, names: tuple[str, ...]) -> Headers:
    """``headers`` with every ``Vary`` field merged into one, each name once whatever its
    case, the request headers the key is made of (``names``) named too, so that clients
    and caches downstream know what the response varies on."""
    values = [v.decode("latin-1") for n, v in headers if n == b"vary"]
    if not values and not names:
        return headers
    merged = merge_vary([*values, *names])
    kept = [(n, v) for n, v in headers if n != b"vary"]
    return [*kept, (b"vary", merged.encode("latin-1"))] if merged else kept


def _created(facts: ResponseFacts, now: float, request_time: float | None) -> float:
    """When the response just received (at ``now``) was generated (RFC 9111 4.2.3)."""
    request_time = now if request_time is None else request_time
    return created_at(age=facts.age, date=facts.date, request_time=request_time, response_time=now)


def _compressible(
    facts: ResponseFacts,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    minimum: int | None,
) -> bool:
    return (
        minimum is not None
        and len(body) >= minimum
        and facts.status == 200
        and "no-transform" not in facts.cc  # RFC 9110 section 7.7
        and compressible_type(facts.content_type)
        and not any(n == b"content-encoding" for n, _ in headers)
    )


def runtime_tags(facts: ResponseFacts, header: bytes) -> tuple[str, ...]:
    """The tags a handler named in its response (``Cache-Tag: a b`` or ``a, b``).

    A bad tag is left out with a warning (it comes from the app, not from a client).
    """
    tags: list[str] = []
    for n, v in facts.headers:
        if n.lower() != header:
            continue
        for tag in v.decode("latin-1").replace(",", " ").split():
            try:
                tags.append(validate_tag(tag))
            except ConfigurationError:
                logger.warning("asgi-cache: ignoring bad Cache-Tag value %r", tag[:100])
    return tuple(dict.fromkeys(tags))


def vary_names(stored: StoredResponse) -> tuple[str, ...]:
    """The header names a stored response says it varies on."""
    names = parse_vary([v.decode("latin-1") for n, v in stored.headers if n == b"vary"])
    return names or ()


def has_origin_validator(stored: StoredResponse) -> bool:
    """Whether the origin gave ``stored`` a validator it can answer a conditional with."""
    return bool(
        (stored.etag and not stored.flags & FLAG_DERIVED_ETAG) or stored.header(b"last-modified")
    )


def origin_scope(
    scope: dict[str, Any], stale: StoredResponse | None, *, keep_range: bool = False
) -> dict[str, Any]:
    """The scope the app sees on a miss: a GET (a HEAD miss is fetched whole, to be
    stored), with the entry's validators (with ``stale``, RFC 9111 section 4.3.1) instead
    of the client's conditionals, which are answered from the stored response.

    ``keep_range``: a range miss (no complete response stored) goes to the origin with its
    ``Range`` and ``If-Range`` (`ranges`); otherwise the complete response is asked
    for, and the range answered from it.
    """
    dropped = _CONDITIONAL if not keep_range else _CONDITIONAL - {b"if-range"}
    headers = [
        (n, v)
        for n, v in scope["headers"]
        if n.lower() not in dropped and (keep_range or n.lower() != b"range")
    ]
    if stale is not None:
        if stale.etag and not stale.flags & FLAG_DERIVED_ETAG:
            headers.append((b"if-none-match", stale.etag))
        last_modified = stale.header(b"last-modified")
        if last_modified:
            headers.append((b"if-modified-since", last_modified))
    new = dict(scope)
    new["headers"] = headers
    new["method"] = "GET"
    return new
