"""CacheSettings: defaults, validation and parsing of ASGI_CACHE_* variables."""

from __future__ import annotations

import logging

import pytest

from asgi_cache import Cache, CacheSettings, ConfigurationError


def test_defaults_are_valid_and_embedded() -> None:
    s = CacheSettings()
    assert s.url == "memory://"
    assert s.backend_scheme == "memory"
    assert s.default_ttl > 0
    assert 0 <= s.ttl_jitter < 1


def test_from_env_reads_every_documented_variable() -> None:
    env = {
        "ASGI_CACHE_URL": "redis://cache.internal:6380/2",
        "ASGI_CACHE_NAMESPACE": "shop",
        "ASGI_CACHE_DEFAULT_TTL": "0.25",
        "ASGI_CACHE_ENABLED": "off",
        "ASGI_CACHE_MAX_BODY_BYTES": "2_000",
        "ASGI_CACHE_SERIALIZER": "MsgPack",
        "ASGI_CACHE_TTL_JITTER": "0",
        "ASGI_CACHE_LOCK_TIMEOUT": "3",
        "ASGI_CACHE_OP_TIMEOUT": "0.1",
        "ASGI_CACHE_NEGATIVE_TTL": "2.5",
    }
    s = CacheSettings.from_env(env)
    assert s.url == "redis://cache.internal:6380/2"
    assert s.namespace == "shop"
    assert s.default_ttl == 0.25
    assert s.enabled is False
    assert s.max_body_bytes == 2000
    assert s.serializer == "msgpack"
    assert s.ttl_jitter == 0
    assert s.lock_timeout == 3
    assert s.op_timeout == 0.1
    assert s.negative_ttl == 2.5


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on"])
def test_boolean_true_spellings(raw: str) -> None:
    assert CacheSettings.from_env({"ASGI_CACHE_ENABLED": raw}).enabled is True


@pytest.mark.parametrize(
    ("var", "raw", "allowed"),
    [
        ("ASGI_CACHE_DEFAULT_TTL", "-5", "duration in seconds > 0"),
        ("ASGI_CACHE_DEFAULT_TTL", "ten", "duration in seconds > 0"),
        ("ASGI_CACHE_DEFAULT_TTL", "inf", "duration in seconds > 0"),
        ("ASGI_CACHE_ENABLED", "maybe", "1/0, true/false, yes/no, on/off"),
        ("ASGI_CACHE_SERIALIZER", "pickle", "one of: json, msgpack"),
        ("ASGI_CACHE_TTL_JITTER", "1.5", "fraction >= 0 and < 1"),
        ("ASGI_CACHE_URL", "http://x", "memory://"),
        ("ASGI_CACHE_URL", "redis://", "redis://host"),
        ("ASGI_CACHE_NAMESPACE", "my shop", "letters, digits"),
        ("ASGI_CACHE_MAX_BODY_BYTES", "1.5", "whole number of bytes"),
        ("ASGI_CACHE_OP_TIMEOUT", "0", "duration in seconds > 0"),
    ],
)
def test_bad_values_name_variable_value_and_what_is_allowed(
    var: str, raw: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Cache.from_env({var: raw})
    message = str(info.value)
    assert var in message
    assert repr(raw) in message
    assert allowed in message
    assert isinstance(info.value, ValueError)


def test_direct_construction_validates_fields() -> None:
    with pytest.raises(ConfigurationError, match=r"CacheSettings\.default_ttl=0 .*> 0"):
        CacheSettings(default_ttl=0)
    with pytest.raises(ConfigurationError, match="max_connections"):
        CacheSettings(max_connections=True)  # a bool is not a count
    with pytest.raises(ConfigurationError, match="url"):
        Cache.from_url("mysql://x")


def test_overrides_beat_environment_and_replace_validates() -> None:
    s = CacheSettings.from_env({"ASGI_CACHE_NAMESPACE": "env"}, namespace="code")
    assert s.namespace == "code"
    assert s.replace(default_ttl=5).default_ttl == 5
    with pytest.raises(ConfigurationError):
        s.replace(ttl_jitter=2)


def test_unknown_variables_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        CacheSettings.from_env({"ASGI_CACHE_DEFAULT_TLL": "5", "ASGI_CACHE_REQUIRE_REDIS": "1"})
    assert "ASGI_CACHE_DEFAULT_TLL" in caplog.text
    assert "REQUIRE_REDIS" not in caplog.text


def test_unix_and_rediss_urls_are_accepted() -> None:
    assert CacheSettings(url="unix:///run/redis.sock").backend_scheme == "unix"
    assert CacheSettings(url="rediss://h:6380/0").backend_scheme == "rediss"
    with pytest.raises(ConfigurationError):
        CacheSettings(url="unix://")


def test_configuration_reference_lists_every_setting() -> None:
    import dataclasses
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for field in dataclasses.fields(CacheSettings):
        assert f"`ASGI_CACHE_{field.name.upper()}`" in doc, field.name
        assert f"`{field.name}`" in doc, field.name
