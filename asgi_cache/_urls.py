"""Backend URLs: every form asgi-cache accepts, parsed and validated into one frozen value.

The forms (DESIGN.md, "Configuration by environment")::

    memory://
    redis://[user:password@]host[:port][/db][?options]          rediss:// with TLS
    unix://[user:password@]/path/to/redis.sock[?db=N&options]
    redis+cluster://[user:password@]h1:p1,h2:p2[/][?options]     rediss+cluster:// with TLS
    redis+sentinel://[user:password@]h1:26379,h2:26379/<service>[/<db>][?options]
                                                                 rediss+sentinel:// with TLS

The user name and password (percent-encoded where they hold ``:``, ``@``, ``/``, ``?`` or
``#``) authenticate to the Redis servers; for Sentinel they are the data nodes' credentials,
and the Sentinels' own, if any, are the ``sentinel_username`` and ``sentinel_password``
options. The query takes a closed list of options (`OPTIONS`), each with its type;
timeouts and pool sizes are not among them because [`CacheSettings`][asgi_cache.CacheSettings] owns
those (one place for each setting).

A URL that does not fit raises [`ConfigurationError`][asgi_cache.ConfigurationError] in the settings
grammar, ``<name>=<value!r> is not allowed: expected <what>``, where ``name`` is what the
caller calls the URL (``ASGI_CACHE_URL``, ``CacheSettings.url``), the value has its password
masked (`mask_url`), and ``what`` says which part is wrong and what it may be.

This module is foundation: it imports nothing of the package but the exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

from ._exceptions import ConfigurationError

DEFAULT_PORT = 6379
"""Port of a Redis server (and of a cluster seed) when the URL gives none."""
DEFAULT_SENTINEL_PORT = 26379
"""Port of a Sentinel when the URL gives none."""


class UrlKind(Enum):
    """What a URL points at (the scheme without its TLS variant)."""

    MEMORY = "memory"
    """The embedded in-process backend."""
    REDIS = "redis"
    """One Redis server over TCP."""
    UNIX = "unix"
    """One Redis server over a Unix socket."""
    CLUSTER = "cluster"
    """A Redis Cluster, reached through one or more seed nodes."""
    SENTINEL = "sentinel"
    """A primary and its replicas, found through one or more Sentinels."""


SCHEMES: dict[str, tuple[UrlKind, bool]] = {
    "memory": (UrlKind.MEMORY, False),
    "redis": (UrlKind.REDIS, False),
    "rediss": (UrlKind.REDIS, True),
    "unix": (UrlKind.UNIX, False),
    "redis+cluster": (UrlKind.CLUSTER, False),
    "rediss+cluster": (UrlKind.CLUSTER, True),
    "redis+sentinel": (UrlKind.SENTINEL, False),
    "rediss+sentinel": (UrlKind.SENTINEL, True),
}
"""Every scheme the parser knows: its kind and whether it uses TLS."""

_FORMS = {
    UrlKind.MEMORY: "memory://",
    UrlKind.REDIS: "redis://host[:port][/db] (rediss:// for TLS)",
    UrlKind.UNIX: "unix:///path/to/redis.sock[?db=N]",
    UrlKind.CLUSTER: "redis+cluster://host:port[,host:port...][/] (rediss+cluster:// for TLS)",
    UrlKind.SENTINEL: (
        "redis+sentinel://host:port[,host:port...]/<service>[/<db>] (rediss+sentinel:// for TLS)"
    ),
}


class HostPort(NamedTuple):
    """One ``host:port`` of a URL (an IPv6 address without its brackets)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlOptions:
    """The query options of a URL; ``None`` where the URL does not set one."""

    protocol: int | None = None
    """RESP version, 2 or 3."""
    client_name: str | None = None
    """Name the connections give themselves (``CLIENT SETNAME``), shown by ``CLIENT LIST``."""
    socket_keepalive: bool | None = None
    """TCP keepalive on the connections."""
    ssl_cert_reqs: str | None = None
    """TLS: whether the server's certificate is checked: ``none``, ``optional``, ``required``."""
    ssl_ca_certs: str | None = None
    """TLS: file of the certificate authorities to trust."""
    ssl_certfile: str | None = None
    """TLS: client certificate file."""
    ssl_keyfile: str | None = None
    """TLS: client private key file."""
    ssl_check_hostname: bool | None = None
    """TLS: whether the certificate must name the host."""
    sentinel_username: str | None = None
    """Sentinel: user name for the Sentinels themselves."""
    sentinel_password: str | None = field(default=None, repr=False)
    """Sentinel: password for the Sentinels themselves."""
    replica_reads: bool | None = None
    """Sentinel: read entries from a replica (stale by the replication lag, see
    docs/operations.md); everything else stays on the primary."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendURL:
    """A parsed and validated backend URL (build one with `parse_url`)."""

    scheme: str
    """The scheme as written, lower-cased (``rediss+cluster``)."""
    kind: UrlKind
    """What the URL points at."""
    tls: bool
    """Whether connections use TLS (the ``rediss`` schemes)."""
    hosts: tuple[HostPort, ...] = ()
    """The server, the cluster's seed nodes or the Sentinels; empty for memory and unix."""
    socket_path: str | None = None
    """The Unix socket's path (``unix://`` only)."""
    db: int = 0
    """The database number (always 0 for memory and cluster)."""
    service: str | None = None
    """The Sentinel service (the monitored primary's name); Sentinel only."""
    username: str | None = None
    """User name for the Redis servers (ACL), or ``None``."""
    password: str | None = field(default=None, repr=False)
    """Password for the Redis servers, or ``None``; never shown by ``repr``."""
    options: UrlOptions = field(default_factory=UrlOptions)
    """The query options."""
    masked: str = ""
    """The URL as given, with any password replaced by ``***``: safe to log and show."""


class _Option(NamedTuple):
    parse: Callable[[str], Any]  # raises ValueError on a bad value
    what: str
    kinds: frozenset[UrlKind]
    tls_only: bool = False


_REDIS_KINDS = frozenset(UrlKind) - {UrlKind.MEMORY}
_TCP_KINDS = frozenset({UrlKind.REDIS, UrlKind.CLUSTER, UrlKind.SENTINEL})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_BOOLEAN = "a boolean: 1/0, true/false, yes/no, on/off"


def _boolean(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    raise ValueError(raw)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(raw)
        return raw.lower()

    return parse


def _protocol(raw: str) -> int:
    if raw not in ("2", "3"):
        raise ValueError(raw)
    return int(raw)


def _token(raw: str) -> str:
    # CLIENT SETNAME refuses spaces; the other string options are names or paths.
    if not raw or any(c.isspace() for c in raw):
        raise ValueError(raw)
    return raw


def _text(raw: str) -> str:
    if not raw:
        raise ValueError(raw)
    return raw


def _db_number(raw: str) -> int:
    if not _is_number(raw):
        raise ValueError(raw)
    return int(raw)


OPTIONS: dict[str, _Option] = {
    "db": _Option(_db_number, "a database number (a whole number >= 0)", frozenset({UrlKind.UNIX})),
    "protocol": _Option(_protocol, "2 or 3 (the RESP version)", _REDIS_KINDS),
    "client_name": _Option(_token, "a client name without spaces", _REDIS_KINDS),
    "socket_keepalive": _Option(_boolean, _BOOLEAN, _REDIS_KINDS),
    "ssl_cert_reqs": _Option(
        _one_of("none", "optional", "required"),
        "one of: none, optional, required",
        _TCP_KINDS,
        tls_only=True,
    ),
    "ssl_ca_certs": _Option(_text, "a file path", _TCP_KINDS, tls_only=True),
    "ssl_certfile": _Option(_text, "a file path", _TCP_KINDS, tls_only=True),
    "ssl_keyfile": _Option(_text, "a file path", _TCP_KINDS, tls_only=True),
    "ssl_check_hostname": _Option(_boolean, _BOOLEAN, _TCP_KINDS, tls_only=True),
    "sentinel_username": _Option(_text, "a user name", frozenset({UrlKind.SENTINEL})),
    "sentinel_password": _Option(_text, "a password", frozenset({UrlKind.SENTINEL})),
    "replica_reads": _Option(_boolean, _BOOLEAN, frozenset({UrlKind.SENTINEL})),
}
"""The query options, each with its parser, what it accepts and the kinds of URL taking it
(``db`` is folded into `BackendURL.db`, the others into `UrlOptions`)."""

# Options redis-py would take from a URL that CacheSettings owns instead.
_SETTINGS_OWNED = {
    "socket_timeout": "op_timeout",
    "socket_connect_timeout": "connect_timeout",
    "max_connections": "max_connections",
    "timeout": "pool_timeout",
}
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)
_HOST_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,251}[A-Za-z0-9_])?$")
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+$")
_SERVICE_RE = re.compile(r"^[^\s/]+$")
_PASSWORD_OPTION_RE = re.compile(r"([?&][^=&#]*password=)([^&#]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***``: the one in the user part and the
    values of ``*password`` query options. Works on URLs that do not parse, so an error
    message can show what was given without leaking the secret."""
    head, sep, tail = url.partition("://")
    if not sep:
        return url
    # The user part ends at the last "@" before the query: a password must percent-encode
    # "?" and "#", but an unencoded "@" or "/" in it still lands in the masked span.
    end = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    at = tail.rfind("@", 0, end)
    if at >= 0:
        user, colon, _ = tail[:at].partition(":")
        if colon:
            tail = f"{user}:***{tail[at:]}"
    return head + sep + _PASSWORD_OPTION_RE.sub(r"\1***", tail)


def _fail(name: str, url: str, what: str) -> ConfigurationError:
    return ConfigurationError(f"{name}={mask_url(url)!r} is not allowed: expected {what}")


def parse_url(url: object, *, name: str) -> BackendURL:
    """Parse and validate a backend URL.

    Args:
        url: The URL; anything else is refused.
        name: What the caller calls the URL (``ASGI_CACHE_URL``, ``CacheSettings.url``,
            ``--url``); errors start with it.

    Returns:
        The URL's parts, typed and validated.

    Raises:
        ConfigurationError: ``url`` is not one of the forms above: a scheme asgi-cache does
            not know, a missing or malformed host, a port outside 1-65535, a database that is
            not a whole number >= 0 (or not 0 for a cluster), a missing Sentinel service, an
            unknown option or an option value of the wrong type. The message names ``name``,
            shows the URL with its password masked and says what is allowed.
    """
    if not isinstance(url, str):
        raise ConfigurationError(
            f"{name}={url!r} is not allowed: expected a URL string such as redis://host:6379/0"
        )
    match = _SCHEME_RE.match(url)
    if match is None or match.group(1).lower() not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise _fail(name, url, f"a URL with one of the schemes {known}")
    return _Parser(name, url, match.group(1).lower()).parse(match.group(2))


class _Parser:
    """The parts of one URL being parsed, and what an error about it needs."""

    def __init__(self, name: str, url: str, scheme: str) -> None:
        self.name, self.url, self.scheme = name, url, scheme
        self.kind, self.tls = SCHEMES[scheme]
        self.form = _FORMS[self.kind]

    def fail(self, what: str) -> ConfigurationError:
        return _fail(self.name, self.url, what)

    def parse(self, rest: str) -> BackendURL:
        if "#" in rest:
            raise self.fail(f"no '#' fragment: {self.form}")
        rest, _, query = rest.partition("?")
        netloc, slash, path = rest.partition("/")
        path = slash + path
        userinfo, at, hostpart = netloc.rpartition("@")
        common: dict[str, Any] = {"scheme": self.scheme, "kind": self.kind, "tls": self.tls}
        common["masked"] = mask_url(self.url)
        if self.kind is UrlKind.MEMORY:
            if netloc or path not in ("", "/") or query:
                raise self.fail("memory:// alone (no host, path or options)")
            return BackendURL(**common)
        user, colon, password = userinfo.partition(":")
        common["username"] = (unquote(user) or None) if at else None
        common["password"] = unquote(password) if at and colon else None
        options, db_option = self.options(query)
        if self.kind is UrlKind.UNIX:
            if hostpart:
                raise self.fail(f"no host in a unix:// URL: {self.form}")
            if path in ("", "/"):
                raise self.fail(f"the socket's path: {self.form}")
            return BackendURL(
                **common, options=options, socket_path=unquote(path), db=db_option or 0
            )
        return BackendURL(**common, options=options, hosts=self.hosts(hostpart), **self.path(path))

    def hosts(self, hostpart: str) -> tuple[HostPort, ...]:
        items = hostpart.split(",")
        if self.kind is UrlKind.REDIS and len(items) > 1:
            raise self.fail(
                f"one host in a {self.scheme}:// URL (several need a +cluster or +sentinel scheme)"
            )
        default = DEFAULT_SENTINEL_PORT if self.kind is UrlKind.SENTINEL else DEFAULT_PORT
        hosts: list[HostPort] = []
        for item in items:
            port_text: str | None
            if item.startswith("["):
                host, bracket, after = item[1:].partition("]")
                if not bracket or not _IPV6_RE.match(host) or after[:1] not in ("", ":"):
                    raise self.fail(f"an IPv6 host as [address][:port], got {item!r}: {self.form}")
                port_text = after[1:] if after else None
            else:
                host, colon, after = item.partition(":")
                if not host:
                    raise self.fail(f"a host: {self.form}")
                if not _HOST_RE.match(host):
                    raise self.fail(f"a host name or IP address, got {host!r}: {self.form}")
                port_text = after if colon else None
            if port_text is not None and not (
                _is_number(port_text) and 1 <= int(port_text) <= 65535
            ):
                raise self.fail(f"a port from 1 to 65535, got {item!r}")
            hosts.append(HostPort(host.lower(), default if port_text is None else int(port_text)))
        if len(set(hosts)) != len(hosts):
            raise self.fail(f"each host once: {self.form}")
        return tuple(hosts)

    def path(self, path: str) -> dict[str, Any]:
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        db_what = "a database number (a whole number >= 0)"
        if self.kind is UrlKind.REDIS:
            if len(segments) > 1 or (segments and not _is_number(segments[0])):
                raise self.fail(f"{db_what} as the path, got {path!r}: {self.form}")
            return {"db": int(segments[0]) if segments else 0}
        if self.kind is UrlKind.CLUSTER:
            if segments not in ([], ["0"]):
                raise self.fail(
                    f"no database in the path (Redis Cluster has only database 0), "
                    f"got {path!r}: {self.form}"
                )
            return {}
        # Sentinel: /<service>[/<db>]
        if not segments or not _SERVICE_RE.match(segments[0]):
            raise self.fail(f"the Sentinel service name as the path: {self.form}")
        if len(segments) > 2 or (len(segments) == 2 and not _is_number(segments[1])):
            raise self.fail(f"{db_what} after the service, got {path!r}: {self.form}")
        return {"service": segments[0], "db": int(segments[1]) if len(segments) == 2 else 0}

    def options(self, query: str) -> tuple[UrlOptions, int | None]:
        if not query:
            return UrlOptions(), None
        allowed = [
            opt
            for opt, spec in OPTIONS.items()
            if self.kind in spec.kinds and (self.tls or not spec.tls_only)
        ]
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise self.fail("options as name=value pairs joined by '&'") from None
        values: dict[str, Any] = {}
        for opt, raw in pairs:
            spec = OPTIONS.get(opt)
            if opt in values:
                raise self.fail(f"each option once, got {opt!r} twice")
            if opt in _SETTINGS_OWNED:
                setting = _SETTINGS_OWNED[opt]
                raise self.fail(
                    f"no {opt!r} option in the URL: the setting {setting} "
                    f"(ASGI_CACHE_{setting.upper()}) sets it"
                )
            if spec is not None and spec.tls_only and self.kind in spec.kinds and not self.tls:
                raise self.fail(f"{opt!r} only with TLS (a rediss scheme)")
            if spec is None or opt not in allowed:
                listed = ", ".join(allowed)
                raise self.fail(f"only the options {listed} in a {self.scheme}:// URL, got {opt!r}")
            try:
                values[opt] = spec.parse(raw)
            except ValueError:
                got = "an empty value" if "password" in opt else repr(raw)
                raise self.fail(f"option {opt} as {spec.what}, got {got}") from None
        db = values.pop("db", None)
        return UrlOptions(**values), db


def _is_number(text: str) -> bool:
    # Digits only: int() would also take "+1", " 1" and "1_0".
    return text.isascii() and text.isdigit()
