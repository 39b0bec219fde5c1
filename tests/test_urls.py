"""Backend URLs: every form of DESIGN.md parsed into its parts, every bad one refused clearly."""

from __future__ import annotations

import dataclasses

import pytest

from asgi_cache import Cache, CacheSettings, ConfigurationError
from asgi_cache._urls import (
    OPTIONS,
    SCHEMES,
    BackendURL,
    HostPort,
    UrlKind,
    UrlOptions,
    mask_url,
    parse_url,
)

NAME = "ASGI_CACHE_URL"


def parse(url: object) -> BackendURL:
    return parse_url(url, name=NAME)


def refused(url: object, *, name: str = NAME) -> str:
    """The message of the error ``url`` raises (checked for the grammar on the way)."""
    with pytest.raises(ConfigurationError) as info:
        parse_url(url, name=name)
    message = str(info.value)
    assert message.startswith(f"{name}="), message
    assert " is not allowed: expected " in message, message
    return message


# -- good URLs ----------------------------------------------------------------------------


def test_memory() -> None:
    for url in ("memory://", "memory:///", "MEMORY://"):
        u = parse(url)
        assert (u.kind, u.scheme, u.tls, u.hosts, u.db) == (UrlKind.MEMORY, "memory", False, (), 0)


@pytest.mark.parametrize(
    ("url", "host", "port", "db"),
    [
        ("redis://cache", "cache", 6379, 0),
        ("redis://cache/", "cache", 6379, 0),
        ("redis://cache:6380", "cache", 6380, 0),
        ("redis://cache:6380/", "cache", 6380, 0),
        ("redis://Cache.Internal:1/15", "cache.internal", 1, 15),
        ("redis://10.0.0.7:65535/0", "10.0.0.7", 65535, 0),
        ("redis://redis_1:6379/3", "redis_1", 6379, 3),
        ("redis://[::1]:7000/2", "::1", 7000, 2),
        ("redis://[fe80::1]/1", "fe80::1", 6379, 1),
        ("redis://h/007", "h", 6379, 7),
    ],
)
def test_redis_host_port_db(url: str, host: str, port: int, db: int) -> None:
    u = parse(url)
    assert u.kind is UrlKind.REDIS
    assert u.tls is False
    assert u.hosts == (HostPort(host, port),)
    assert u.db == db
    assert u.username is None
    assert u.password is None
    assert u.options == UrlOptions()
    assert u.masked == url


def test_credentials_are_percent_decoded_and_never_shown() -> None:
    u = parse("redis://app%3Aone:p%40ss%3Aw%2Fd@h:6379/0")
    assert (u.username, u.password) == ("app:one", "p@ss:w/d")
    assert "p%40ss" not in repr(u)
    assert "p@ss" not in repr(u)
    assert u.masked == "redis://app%3Aone:***@h:6379/0"
    only_password = parse("redis://:s3cret@h/0")
    assert (only_password.username, only_password.password) == (None, "s3cret")
    only_user = parse("redis://reader@h/0")
    assert (only_user.username, only_user.password) == ("reader", None)
    empty_password = parse("redis://reader:@h/0")
    assert empty_password.password == ""


def test_rediss_and_tls_options() -> None:
    u = parse(
        "rediss://h:6380/1?ssl_cert_reqs=Required&ssl_ca_certs=/etc/ca.pem"
        "&ssl_certfile=/etc/c.pem&ssl_keyfile=/etc/k.pem&ssl_check_hostname=no"
    )
    assert (u.kind, u.tls, u.db) == (UrlKind.REDIS, True, 1)
    assert u.options == UrlOptions(
        ssl_cert_reqs="required",
        ssl_ca_certs="/etc/ca.pem",
        ssl_certfile="/etc/c.pem",
        ssl_keyfile="/etc/k.pem",
        ssl_check_hostname=False,
    )


def test_common_options_are_typed() -> None:
    u = parse("redis://h/0?protocol=2&client_name=shop-web&socket_keepalive=on")
    assert u.options.protocol == 2
    assert u.options.client_name == "shop-web"
    assert u.options.socket_keepalive is True
    assert parse("redis://h/0?protocol=3").options.protocol == 3
    assert parse("redis://h/0?").options == UrlOptions()


def test_unix_socket() -> None:
    u = parse("unix:///run/redis/redis.sock")
    assert (u.kind, u.socket_path, u.db, u.hosts) == (
        UrlKind.UNIX,
        "/run/redis/redis.sock",
        0,
        (),
    )
    with_db = parse("unix://:pw@/run/redis%20x.sock?db=4&protocol=3")
    assert (with_db.socket_path, with_db.db, with_db.password) == ("/run/redis x.sock", 4, "pw")
    assert with_db.options.protocol == 3
    assert with_db.masked == "unix://:***@/run/redis%20x.sock?db=4&protocol=3"


@pytest.mark.parametrize("scheme", ["redis+cluster", "rediss+cluster"])
@pytest.mark.parametrize("path", ["", "/", "/0"])
def test_cluster(scheme: str, path: str) -> None:
    u = parse(f"{scheme}://app:pw@n1:7000,n2:7001,10.0.0.3{path}?protocol=3")
    assert u.kind is UrlKind.CLUSTER
    assert u.tls is scheme.startswith("rediss")
    assert u.hosts == (HostPort("n1", 7000), HostPort("n2", 7001), HostPort("10.0.0.3", 6379))
    assert u.db == 0
    assert (u.username, u.password) == ("app", "pw")
    assert u.options.protocol == 3
    assert parse(f"{scheme}://only:7000").hosts == (HostPort("only", 7000),)


@pytest.mark.parametrize("scheme", ["redis+sentinel", "rediss+sentinel"])
def test_sentinel(scheme: str) -> None:
    u = parse(
        f"{scheme}://app:pw@s1:26379,s2,[::1]:26380/mymaster/2"
        "?sentinel_username=watch&sentinel_password=s%26cret"
    )
    assert u.kind is UrlKind.SENTINEL
    assert u.tls is scheme.startswith("rediss")
    assert u.hosts == (HostPort("s1", 26379), HostPort("s2", 26379), HostPort("::1", 26380))
    assert (u.service, u.db) == ("mymaster", 2)
    assert (u.username, u.password) == ("app", "pw")
    assert u.options.sentinel_username == "watch"
    assert u.options.sentinel_password == "s&cret"
    assert "s&cret" not in repr(u)
    assert u.masked.endswith("sentinel_password=***")
    assert ":***@" in u.masked
    no_db = parse(f"{scheme}://s1/mymaster/")
    assert (no_db.service, no_db.db) == ("mymaster", 0)


def test_every_scheme_of_the_design_is_known() -> None:
    assert set(SCHEMES) == {
        "memory",
        "redis",
        "rediss",
        "unix",
        "redis+cluster",
        "rediss+cluster",
        "redis+sentinel",
        "rediss+sentinel",
    }
    # Every option has a field of its own, except db, folded into BackendURL.db.
    fields = {f.name for f in dataclasses.fields(UrlOptions)}
    assert set(OPTIONS) - {"db"} == fields


def test_value_object_is_frozen() -> None:
    u = parse("redis://h/0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.db = 1  # type: ignore[misc]


# -- bad URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # scheme
        (
            "http://h",
            "one of the schemes memory://, redis://, rediss://, unix://, redis+cluster://",
        ),
        ("redis:/h", "one of the schemes"),
        ("h:6379", "one of the schemes"),
        ("", "one of the schemes"),
        ("redis+proxy://h", "one of the schemes"),
        # host
        ("redis://", "a host: redis://host[:port][/db]"),
        ("redis:///0", "a host"),
        ("redis://:pw@/0", "a host"),
        ("redis://bad host/0", "a host name or IP address, got 'bad host'"),
        ("redis://-h/0", "a host name or IP address, got '-h'"),
        ("redis://h:1:2/0", "a port from 1 to 65535, got 'h:1:2'"),
        ("redis://[::1/0", "an IPv6 host as [address][:port]"),
        ("redis://[zz::1]/0", "an IPv6 host"),
        ("redis://[::1]x/0", "an IPv6 host"),
        ("redis://a,b/0", "one host in a redis:// URL"),
        ("redis+cluster://a:1,,b:2/", "a host: redis+cluster://host:port[,host:port...]"),
        ("redis+cluster://a:1,A:1/", "each host once"),
        ("unix://h/run/r.sock", "no host in a unix:// URL"),
        # port
        ("redis://h:99999/0", "a port from 1 to 65535, got 'h:99999'"),
        ("redis://h:0/0", "a port from 1 to 65535, got 'h:0'"),
        ("redis://h:/0", "a port from 1 to 65535, got 'h:'"),
        ("redis://h:-1/0", "a port from 1 to 65535"),
        ("redis://h:+80/0", "a port from 1 to 65535"),
        ("redis://h:http/0", "a port from 1 to 65535"),
        ("redis+cluster://a:7000,b:70000/", "a port from 1 to 65535, got 'b:70000'"),
        ("redis+sentinel://s:0/m", "a port from 1 to 65535"),
        # db
        ("redis://h/abc", "a database number (a whole number >= 0) as the path, got '/abc'"),
        ("redis://h/-1", "a database number"),
        ("redis://h/+1", "a database number"),
        ("redis://h/1.5", "a database number"),
        ("redis://h/0/1", "a database number"),
        ("redis://h/%31%20", "a database number"),
        ("redis+cluster://a:1/1", "Redis Cluster has only database 0"),
        ("redis+cluster://a:1/x", "Redis Cluster has only database 0"),
        ("redis+sentinel://s/m/x", "a database number (a whole number >= 0) after the service"),
        ("redis+sentinel://s/m/0/1", "after the service"),
        ("unix:///r.sock?db=x", "option db as a database number"),
        ("unix:///r.sock?db=-2", "option db as a database number"),
        # sentinel service, unix path, memory
        ("redis+sentinel://s1,s2", "the Sentinel service name as the path"),
        ("redis+sentinel://s1/", "the Sentinel service name"),
        ("redis+sentinel://s1/%20/0", "the Sentinel service name"),
        ("unix://", "the socket's path"),
        ("unix:///", "the socket's path"),
        ("memory://h", "memory:// alone"),
        ("memory://x/y", "memory:// alone"),
        ("memory://?size=1", "memory:// alone"),
        # options
        ("redis://h/0?foo=1", "only the options protocol, client_name, socket_keepalive in"),
        ("redis://h/0#x", "no '#' fragment"),
        ("redis://h/0?protocol", "options as name=value pairs joined by '&'"),
        ("redis://h/0?protocol=2&protocol=3", "each option once, got 'protocol' twice"),
        ("redis://h/0?protocol=4", "option protocol as 2 or 3 (the RESP version), got '4'"),
        ("redis://h/0?protocol=", "option protocol as 2 or 3"),
        ("redis://h/0?socket_keepalive=maybe", "option socket_keepalive as a boolean"),
        ("redis://h/0?client_name=a%20b", "option client_name as a client name without spaces"),
        ("redis://h/0?db=1", "only the options protocol, client_name, socket_keepalive in"),
        ("redis://h/0?ssl_cert_reqs=none", "'ssl_cert_reqs' only with TLS (a rediss scheme)"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "option ssl_cert_reqs as one of: none, optional"),
        ("rediss://h/0?ssl_ca_certs=", "option ssl_ca_certs as a file path"),
        ("unix:///r.sock?ssl_certfile=/c", "only the options db, protocol"),
        ("redis://h/0?sentinel_password=x", "only the options"),
        ("redis+cluster://a:1/?sentinel_username=x", "only the options"),
        ("redis://h/0?socket_timeout=1", "the setting op_timeout (ASGI_CACHE_OP_TIMEOUT)"),
        ("redis://h/0?socket_connect_timeout=1", "the setting connect_timeout"),
        ("redis://h/0?max_connections=9", "the setting max_connections"),
        ("redis://h/0?timeout=1", "the setting pool_timeout (ASGI_CACHE_POOL_TIMEOUT)"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, expected: str) -> None:
    message = refused(url)
    assert repr(mask_url(url)) in message  # as given, but for a password
    assert expected in message


def test_unknown_option_lists_what_each_kind_allows() -> None:
    assert "db, protocol, client_name, socket_keepalive in a unix:// URL" in refused(
        "unix:///r.sock?x=1"
    )
    rediss = refused("rediss+cluster://a:1/?x=1")
    assert "ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_check_hostname" in rediss
    assert "sentinel_username" not in rediss
    listed = "sentinel_username, sentinel_password, replica_reads in a redis+sentinel:// URL"
    assert listed in refused("redis+sentinel://s/m?x=1")


def test_not_a_string() -> None:
    assert "expected a URL string" in refused(6379)
    assert "expected a URL string" in refused(None)


def test_errors_name_the_caller_and_mask_passwords() -> None:
    message = refused("redis://app:hunter2@h:99999/0", name="CacheSettings.url")
    assert message.startswith("CacheSettings.url='redis://app:***@h:99999/0' is not allowed")
    assert "hunter2" not in message
    message = refused("redis+sentinel://s/m/x?sentinel_password=hunter2")
    assert "hunter2" not in message
    message = refused("redis+sentinel://s/m?sentinel_password=")
    assert "got an empty value" in message


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://u:pw@h/0", "redis://u:***@h/0"),
        ("redis://:pw@h/0", "redis://:***@h/0"),
        ("redis://u@h/0", "redis://u@h/0"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://u:p@w:d@h/0", "redis://u:***@h/0"),  # an unencoded "@" stays hidden
        ("redis://u:p/w@h/0", "redis://u:***@h/0"),  # and so does an unencoded "/"
        ("redis://h/0?client_name=a@b:c", "redis://h/0?client_name=a@b:c"),
        (
            "redis+sentinel://s/m?sentinel_password=x&protocol=3",
            "redis+sentinel://s/m?sentinel_password=***&protocol=3",
        ),
        ("not a url", "not a url"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# -- settings -------------------------------------------------------------------------------


def test_from_env_refuses_a_bad_port_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        CacheSettings.from_env({"ASGI_CACHE_URL": "redis://:hunter2@cache:99999/0"})
    message = str(info.value)
    assert message.startswith("ASGI_CACHE_URL='redis://:***@cache:99999/0' is not allowed")
    assert "a port from 1 to 65535" in message
    assert "hunter2" not in message


def test_from_env_refuses_a_db_that_is_not_a_number() -> None:
    with pytest.raises(ConfigurationError, match=r"ASGI_CACHE_URL='redis://h/abc'.*database"):
        Cache.from_env({"ASGI_CACHE_URL": " redis://h/abc "})


def test_settings_name_the_field_when_built_directly() -> None:
    with pytest.raises(ConfigurationError, match=r"^CacheSettings\.url='redis://h/0\?bogus=1'"):
        CacheSettings(url="redis://h/0?bogus=1")
    with pytest.raises(ConfigurationError, match=r"^CacheSettings\.url=42 .*URL string"):
        CacheSettings(url=42)  # type: ignore[arg-type]


def test_settings_keep_good_urls_as_given() -> None:
    for url in (
        "memory://",
        "redis://h:6380/2?protocol=3",
        "rediss://h/0",
        "unix:///r.sock?db=1",
        "redis+cluster://a:7000,b:7001/",
        "rediss+cluster://a:7000/?ssl_cert_reqs=none",
        "redis+sentinel://:pw@s1,s2/mymaster/0?replica_reads=yes",
        "rediss+sentinel://s1/mymaster",
    ):
        assert CacheSettings.from_env({"ASGI_CACHE_URL": url}).url == url
        assert CacheSettings(url=url).url == url
