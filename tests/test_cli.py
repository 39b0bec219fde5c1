"""The ``asgi-cache`` command against the suite's real Redis, run in-process and as a script."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from asgi_cache import Cache
from asgi_cache._entries import FORMAT_VERSION
from asgi_cache.cli import main, redact

from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer

NS = "shop"


@pytest.fixture
async def shop(redis_url: str) -> AsyncIterator[Cache]:
    """A cache on the suite's Redis in namespace ``shop``, to put entries where the CLI looks."""
    async with Cache.from_url(
        redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace=NS, ttl_jitter=0.0
    ) as cache:
        yield cache


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ASGI_CACHE_URL", "ASGI_CACHE_NAMESPACE", "ASGI_CACHE_DEFAULT_TTL"):
        monkeypatch.delenv(var, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def arun(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """:func:`run` from an async test: ``main`` runs its own event loop, so in a thread."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fields(text: str) -> dict[str, str]:
    """The ``name  value`` lines of human output as a dict (first occurrence wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition("  ")
        out.setdefault(name.strip(), value.strip())
    return out


# -- health ---------------------------------------------------------------------------------


async def test_health_reports_a_healthy_redis(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await arun(capsys, "health", "--url", redis_url, "--namespace", NS)
    assert code == 0
    shown = fields(out)
    assert shown["status"] == "healthy"
    assert shown["backend"].startswith("redis ")
    assert shown["namespace"] == NS
    assert shown["policy"] == "allkeys-lru"
    assert "used of 256.0 MiB" in shown["memory"]
    assert shown["latency"].endswith(" ms")


async def test_health_json_and_url_from_the_environment(
    redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASGI_CACHE_URL", redis_url)
    monkeypatch.setenv("ASGI_CACHE_NAMESPACE", "fromenv")
    code, out, _ = await arun(capsys, "health", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["status"] == "healthy"
    assert report["namespace"] == "fromenv"
    assert report["maxmemory"] == 256 * 1024 * 1024


async def test_health_of_a_killed_redis_fails_with_exit_1(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.stop()
    code, out, _ = await arun(capsys, "health", "--url", own_redis.url, "--timeout", "0.5")
    assert code == 1
    shown = fields(out)
    assert shown["status"] == "down"
    assert "redis" in shown["error"].lower()


async def test_health_of_a_noeviction_redis_is_degraded_but_succeeds(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    code, out, _ = await arun(capsys, "--url", own_redis.url, "health")
    assert code == 0
    assert fields(out)["status"] == "degraded"
    assert fields(out)["warnings"] == "maxmemory_policy is noeviction"


async def test_health_shows_the_breaker_when_the_cache_has_one(
    redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Cache.health

    async def with_breaker(self: Cache) -> dict[str, Any]:
        return {**(await real(self)), "breaker": "closed"}

    monkeypatch.setattr(Cache, "health", with_breaker)
    code, out, _ = await arun(capsys, "health", "--url", redis_url)
    assert code == 0
    assert fields(out)["breaker"] == "closed"


# -- bad input ------------------------------------------------------------------------------


def test_a_memory_url_is_refused_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "health", "--url", "memory://")
    assert code == 2
    assert "memory:// cache lives inside the app's own process" in err
    assert "--url or ASGI_CACHE_URL" in err


def test_a_bad_environment_variable_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASGI_CACHE_DEFAULT_TTL", "soon")
    code, _, err = run(capsys, "stats", "--url", "redis://127.0.0.1:1/0")
    assert code == 2
    assert "ASGI_CACHE_DEFAULT_TTL='soon' is not allowed" in err


def test_a_bad_url_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "health", "--url", "http://example.com")
    assert code == 2
    assert "url='http://example.com' is not allowed" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invalidate", "--tag", "x", "--batch", "0"], "'0' is not allowed"),
        (["health", "--timeout", "-1"], "expected seconds > 0"),
        (["demo", "--write-ratio", "1.5"], "expected a fraction"),
        (["demo", "--port", "70000"], "expected a port"),
        (["demo", "--warmup", "x"], "expected a whole number >= 0"),
        (["demo", "--requests", "many"], "expected a whole number > 0"),
        (["demo", "--port", "http"], "expected a whole number >= 0"),
        (["demo", "--time-limit", "soon"], "expected seconds > 0"),
        (["demo", "--think", "-1"], "expected seconds >= 0"),
        (["demo", "--think", "x"], "expected seconds >= 0"),
        (["demo", "--write-ratio", "half"], "expected a fraction"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_argument_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_redact_hides_passwords() -> None:
    assert redact("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("redis://user:s3cret@host/0") == "redis://user:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


# -- stats ----------------------------------------------------------------------------------


async def test_stats_counts_the_namespace_keys_by_kind(
    shop: Cache, redis_url: str, redis_client: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        await shop.set(f"users:{n}", {"n": n}, tags=[f"users:{n}"])
    async with redis_client.pipeline(transaction=False) as pipe:
        for n in range(1500):  # more than one SCAN page
            pipe.set(f"other-app:{n}", b"x", ex=60)  # another namespace: not counted
        await pipe.execute()
    await redis_client.set(f"{NS}:zz", b"x", ex=60)  # ours but not a known key space

    code, out, _ = await arun(capsys, "stats", "--url", redis_url, "--namespace", NS, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["keys"]["data"] == 3
    assert report["keys"]["tags"] == 4  # three tags and the namespace-wide one
    assert report["keys"]["other"] == 1
    assert report["keys"]["total"] == 8
    assert report["redis"]["maxmemory_policy"] == "allkeys-lru"

    code, out, _ = await arun(capsys, "stats", "--url", redis_url, "--namespace", NS)
    assert code == 0
    assert "data 3, http 0, vary 0, tags 4" in fields(out)["keys"]


async def test_stats_of_a_killed_redis_fails(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.stop()
    code, _, err = await arun(capsys, "stats", "--url", own_redis.url, "--timeout", "0.5")
    assert code == 1
    assert f"cannot use Redis at {own_redis.url}" in err


# -- invalidate -----------------------------------------------------------------------------


async def test_invalidate_tag_stops_serving_only_tagged_entries(
    shop: Cache, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.set("users:1:profile", {"name": "Ada"}, tags=["users:1"])
    await shop.set("users:2:profile", {"name": "Alan"}, tags=["users:2"])

    code, out, _ = await arun(
        capsys, "invalidate", "--redis-url", redis_url, "--namespace", NS, "--tag", "users:1"
    )
    assert code == 0
    assert "invalidated 1 tag(s); 1 had live entries" in out
    assert await shop.get("users:1:profile") is None
    assert await shop.get("users:2:profile") == {"name": "Alan"}


async def test_invalidate_key_deletes_those_keys(
    shop: Cache, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.set("a", 1)
    await shop.set("b", 2)
    await shop.set("c", 3)
    code, out, _ = await arun(
        capsys, "--url", redis_url, "--namespace", NS, "invalidate", "--key", "a", "--key", "b"
    )
    assert code == 0
    assert "deleted 2 of 2 key(s)" in out
    assert (await shop.get("a"), await shop.get("b"), await shop.get("c")) == (None, None, 3)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_invalidate_prefix_scans_in_batches_with_progress(
    shop: Cache,
    redis_url: str,
    redis_client: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with redis_client.pipeline(transaction=False) as pipe:
        for n in range(1200):
            pipe.set(shop.keys.data(f"users:{n}"), b"x", ex=60)
        await pipe.execute()
    await shop.set("orders:1", "keep")
    await shop.set("users", "keep: the prefix is 'users:'")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    argv = ["invalidate", "--redis-url", redis_url, "--namespace", NS]
    code = await asyncio.to_thread(main, [*argv, "--prefix", "users:", "--batch", "100"])

    assert code == 0
    assert "deleted 1200 entries under 'users:'" in capsys.readouterr().out
    updates = terminal.getvalue().split("\r")[1:]
    assert len(updates) > 3  # one update per SCAN batch, not one at the end
    assert updates[-1] == "deleting users:*: 1200 deleted\n"
    assert await redis_client.keys(shop.keys.data("users:*")) == []
    assert await shop.get("orders:1") == "keep"
    assert await shop.get("users") == "keep: the prefix is 'users:'"


async def test_invalidate_prefix_without_a_terminal_prints_no_progress(
    shop: Cache, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.set("users:1", 1)
    code, out, err = await arun(
        capsys, "invalidate", "--redis-url", redis_url, "--namespace", NS, "--prefix", "users:"
    )
    assert code == 0
    assert "deleted 1 entries under 'users:'" in out
    assert err == ""


def test_invalidate_needs_something_to_invalidate(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "invalidate", "--redis-url", redis_url)
    assert code == 2
    assert "at least one of --tag T, --key K, --url PAGE or --prefix P" in err


def test_invalidate_rejects_a_bad_tag(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "invalidate", "--redis-url", redis_url, "--tag", "*")
    assert code == 2
    assert "tag '*' is reserved" in err


async def test_invalidate_on_a_killed_redis_fails_with_exit_1(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.stop()
    code, _, err = await arun(
        capsys, "invalidate", "--redis-url", own_redis.url, "--timeout", "0.5", "--tag", "a"
    )
    assert code == 1
    assert f"cannot use Redis at {own_redis.url}" in err


async def test_invalidate_fails_when_redis_dies_during_the_operation(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_invalidate = Cache.invalidate_tags

    async def die_first(self: Cache, *tags: str) -> int:
        own_redis.stop()  # Redis answered the health probe, then went away
        return await real_invalidate(self, *tags)

    monkeypatch.setattr(Cache, "invalidate_tags", die_first)
    code, _, err = await arun(
        capsys, "invalidate", "--redis-url", own_redis.url, "--timeout", "0.5", "--tag", "a"
    )
    assert code == 1
    assert "tag invalidation was not applied" in err


async def test_invalidate_prefix_fails_when_redis_dies_during_the_scan(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Cache.invalidate_prefix

    async def die_first(self: Cache, prefix: str, **options: Any) -> int:
        own_redis.stop()
        return await real(self, prefix, **options)

    monkeypatch.setattr(Cache, "invalidate_prefix", die_first)
    code, _, err = await arun(
        capsys, "invalidate", "--redis-url", own_redis.url, "--timeout", "0.5", "--prefix", "a"
    )
    assert code == 1
    assert f"cannot use Redis at {own_redis.url}" in err


async def test_invalidate_url_stops_serving_a_cached_page(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from asgi_cache import CacheMiddleware

    cache = Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace=NS)

    @cache.response(ttl=300)
    async def user(request: Any) -> JSONResponse:
        return JSONResponse({"id": request.path_params["user_id"]})

    app = Starlette(routes=[Route("/users/{user_id}", user)])
    app.add_middleware(CacheMiddleware, cache=cache)
    transport = httpx.ASGITransport(app=app)
    async with cache, httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
        await c.get("/users/1?lang=en")
        assert (await c.get("/users/1?lang=en")).headers["x-cache"] == "HIT"
        await c.get("/users/2")

        code, out, _ = await arun(
            capsys, "invalidate", "--redis-url", redis_url, "--namespace", NS,
            "--url", "/users/1", "--url", "http://other.test/users/404",
        )  # fmt: skip

        assert code == 0
        assert "invalidated /users/1 (had live responses)" in out
        assert "invalidated http://other.test/users/404 (no live responses)" in out
        assert (await c.get("/users/1?lang=en")).headers["x-cache"] == "MISS"
        assert (await c.get("/users/2")).headers["x-cache"] == "HIT"


# -- inspect --------------------------------------------------------------------------------


async def test_inspect_shows_the_metadata_of_a_value(
    shop: Cache, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.set("users:7:profile", {"name": "Grace"}, ttl=120, tags=["users:7"])
    code, out, _ = await arun(
        capsys, "inspect", "users:7:profile", "--redis-url", redis_url, "--namespace", NS, "--json"
    )
    assert code == 0
    info = json.loads(out)
    assert info["key"] == "users:7:profile"
    assert info["full_key"] == f"{NS}:d:users:7:profile"
    assert info["kind"] == "json"
    assert info["format_version"] == FORMAT_VERSION
    assert info["state"] == "fresh"
    assert 110 < info["ttl_left"] <= 120
    assert 110 < info["fresh_for"] <= 120
    assert info["body_bytes"] == len(b'{"name":"Grace"}')
    assert info["size"] > info["body_bytes"]
    assert [(t["tag"], t["current"]) for t in info["tags"]] == [
        ("(whole namespace)", True),
        ("users:7", True),
    ]
    assert "value" not in info

    code, out, _ = await arun(
        capsys, "inspect", "users:7:profile", "--redis-url", redis_url, "--namespace", NS, "--value"
    )
    assert code == 0
    shown = fields(out)
    assert shown["kind"] == "json"
    assert shown["state"] == "fresh"
    assert shown["format"] == f"version {FORMAT_VERSION}"
    assert shown["value"] == '{"name":"Grace"}'
    assert "users:7 (current)" in out


async def test_inspect_shows_an_invalidated_entry_without_deleting_it(
    shop: Cache, redis_url: str, redis_client: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.set("users:8", "Edsger", tags=["users:8"])
    await shop.invalidate_tags("users:8")
    full_key = shop.keys.data("users:8")

    code, out, _ = await arun(
        capsys, "inspect", full_key, "--redis-url", redis_url, "--namespace", NS
    )

    assert code == 0
    assert fields(out)["state"] == "invalidated"
    assert "users:8 (INVALIDATED)" in out
    assert await redis_client.exists(full_key) == 1  # a cache read would have unlinked it


async def test_inspect_a_missing_key_fails_with_exit_1(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await arun(
        capsys, "inspect", "users:404", "--redis-url", redis_url, "--namespace", NS
    )
    assert code == 1
    assert fields(out)["exists"] == "no"
    assert f"no entry at '{NS}:d:users:404'" in err


async def test_inspect_a_foreign_value_reports_it(
    redis_url: str, redis_client: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    await redis_client.set(f"{NS}:d:legacy", b"pickled? no thanks", ex=60)
    code, out, _ = await arun(
        capsys, "inspect", "legacy", "--redis-url", redis_url, "--namespace", NS
    )
    assert code == 1
    assert fields(out)["error"] == "not a valid asgi-cache entry: truncated header"


async def test_inspect_rejects_a_bad_key(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await arun(capsys, "inspect", "bad\nkey", "--redis-url", redis_url)
    assert code == 2
    assert "must not contain CR, LF or NUL" in err


async def test_inspect_on_a_killed_redis_fails(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.stop()
    code, _, err = await arun(
        capsys, "inspect", "k", "--redis-url", own_redis.url, "--timeout", "0.5"
    )
    assert code == 1
    assert "cannot use Redis" in err


# -- the installed console script -----------------------------------------------------------


def _script() -> str:
    script = Path(sys.executable).parent / "asgi-cache"
    if not script.exists():  # pragma: no cover - the package is installed with its scripts
        pytest.skip("the asgi-cache console script is not installed in this environment")
    return str(script)


async def script(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed ``asgi-cache`` script (in a thread: the test's loop keeps running)."""
    return await asyncio.to_thread(
        subprocess.run, [_script(), *argv], env=env, capture_output=True, text=True, timeout=60
    )


async def test_the_console_script_runs_commands(shop: Cache, redis_url: str) -> None:
    await shop.set("users:1", {"name": "Ada"}, tags=["users:1"])
    env = {"ASGI_CACHE_URL": redis_url, "ASGI_CACHE_NAMESPACE": NS, "PATH": "/usr/bin:/bin"}

    health = await script("health", "--json", env=env)
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "healthy"

    inv = await script("invalidate", "--tag", "users:1", env=env)
    assert inv.returncode == 0, inv.stderr
    assert await shop.get("users:1") is None

    missing = await script("inspect", "users:1", env=env)
    assert missing.returncode == 1  # the invalidated entry was unlinked by the read above

    usage = await script(env=env)
    assert usage.returncode == 2
    assert "usage: asgi-cache" in usage.stderr
