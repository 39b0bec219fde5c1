"""Connection options of the Redis backends, built from a parsed URL and the cache's settings.

One place turns a `BackendURL` (credentials, TLS, RESP version,
client name, keepalive) and the settings that bound time (``op_timeout``,
``connect_timeout``) into the keyword arguments redis-py's connections take, for the cluster
backend's nodes and the Sentinel backend's servers alike. ``protocol`` and ``socket_timeout``
are always passed explicitly: redis-py 8 defaults to RESP3 and a 5 s socket timeout, and the
cache must not depend on a library default it did not choose.
"""

from __future__ import annotations

import sys
from typing import Any

from .._urls import BackendURL
from .._validate import seconds, whole

_TIMEOUT = seconds()

DEFAULT_PROTOCOL = 3
"""RESP version when the URL does not say (``?protocol=2`` for an old proxy)."""


def connection_options(
    url: BackendURL, *, op_timeout: float, connect_timeout: float
) -> dict[str, Any]:
    """The redis-py connection keyword arguments for the servers ``url`` names.

    Args:
        url: The parsed URL (its credentials are the data nodes' ones).
        op_timeout: The per-operation budget; the socket timeout on Python >= 3.12.
        connect_timeout: Budget for opening a connection.
    """
    o = url.options
    options: dict[str, Any] = {
        "username": url.username,
        "password": url.password,
        "protocol": o.protocol or DEFAULT_PROTOCOL,
        # Every call already runs under asyncio.timeout(op_timeout) (see _errors.run_mapped).
        # redis-py turns socket_timeout into asyncio.wait_for around each send, which on
        # Python 3.11 can swallow a cancellation landing as the send completes.
        "socket_timeout": op_timeout if sys.version_info >= (3, 12) else None,
        "socket_connect_timeout": connect_timeout,
    }
    if o.client_name is not None:
        options["client_name"] = o.client_name
    if o.socket_keepalive is not None:
        options["socket_keepalive"] = o.socket_keepalive
    if url.tls:
        options["ssl"] = True
        for name in ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if getattr(o, name) is not None:
                options[name] = getattr(o, name)
        if o.ssl_check_hostname is not None:
            options["ssl_check_hostname"] = o.ssl_check_hostname
    return options


def check_budgets(
    *, op_timeout: float, connect_timeout: float, pool_timeout: float, max_connections: int
) -> None:
    """Validate the time and pool options every Redis backend takes.

    Raises:
        ConfigurationError: A timeout is not finite seconds > 0 (``pool_timeout``: >= 0) or
            ``max_connections`` is not a whole number > 0; the message names the option.
    """
    _TIMEOUT.require("op_timeout", op_timeout)
    _TIMEOUT.require("connect_timeout", connect_timeout)
    seconds(zero=True).require("pool_timeout", pool_timeout)
    whole().require("max_connections", max_connections)
