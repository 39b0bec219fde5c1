"""The CLI: one meaning per option, ``clear``, SIGPIPE, and ``inspect`` for pages."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_cache import Cache, CacheMiddleware
from asgi_cache.cli import main

from .redis_server import BEHAVIOUR_OP_TIMEOUT

pytestmark = pytest.mark.redis

NS = "clidata"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ASGI_CACHE_"):
            monkeypatch.delenv(name)


async def arun(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- invalidate --url means a page -------------------------------------------------------------


def test_a_redis_url_given_as_a_page_is_refused_with_the_right_option(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["invalidate", "--url", redis_url])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "is a Redis URL, but --url names a cached page" in err
    assert "--redis-url" in err


def test_a_relative_path_without_a_slash_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["invalidate", "--url", "users/42"])
    assert "expected a page path starting with /" in capsys.readouterr().err


def test_without_a_redis_url_the_message_names_redis_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "invalidate", "--url", "/users/1")
    assert code == 2
    assert "give the Redis URL with --redis-url or ASGI_CACHE_URL" in err


def test_tag_star_points_to_asgi_cache_clear(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "invalidate", "--redis-url", redis_url, "--tag", "*")
    assert code == 2
    assert "asgi-cache clear" in err


# -- clear -------------------------------------------------------------------------------------


@pytest.fixture
async def shop(redis_url: str) -> AsyncIterator[Cache]:
    cache = Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace=NS, ttl_jitter=0.0)
    async with cache:
        yield cache


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_clear_with_yes_invalidates_every_entry(
    shop: Cache, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.set("a:1", 1, tags=["x"])
    await shop.set("b:2", 2)
    code, out, _ = await arun(capsys, "clear", "--url", redis_url, "--namespace", NS, "--yes")
    assert code == 0
    assert f"cleared namespace {NS!r}" in out
    assert await shop.get("a:1") is None
    assert await shop.get("b:2") is None


async def test_clear_asks_first_and_keeps_everything_on_no(
    shop: Cache,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await shop.set("a:1", 1)
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, _, err = await arun(capsys, "clear", "--url", redis_url, "--namespace", NS)
    assert code == 1
    assert f"invalidate every entry of namespace {NS!r}" in err
    assert "not cleared" in err
    assert await shop.get("a:1") == 1
    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    code, _, _ = await arun(capsys, "clear", "--url", redis_url, "--namespace", NS)
    assert code == 0
    assert await shop.get("a:1") is None


async def test_clear_without_a_terminal_refuses_unless_yes(
    shop: Cache,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await shop.set("a:1", 1)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped, not a terminal
    code, _, err = await arun(capsys, "clear", "--url", redis_url, "--namespace", NS)
    assert code == 2
    assert "pass --yes" in err
    assert await shop.get("a:1") == 1


# -- SIGPIPE -----------------------------------------------------------------------------------


def test_a_closed_pipe_prints_no_traceback(redis_url: str) -> None:
    command = Path(sys.executable).parent / "asgi-cache"
    assert command.exists()
    script = f"{command} stats --json --url {redis_url} | true"
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    assert "BrokenPipeError" not in done.stderr, done.stderr


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_exits_141_quietly(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["stats", "--json", "--url", redis_url]) == 141


# -- inspect: HTTP entries, and from a page URL to its keys ------------------------------------


async def test_inspect_goes_from_a_page_url_to_its_variants(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = Cache.from_url(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT, namespace=NS, ttl_jitter=0.0)

    @cache.response(ttl=300, vary=["accept-language"], tags=["users:{user_id}"])
    async def user(request: Any) -> JSONResponse:
        return JSONResponse({"id": request.path_params["user_id"]}, headers={"x-app": "1"})

    app = Starlette(routes=[Route("/users/{user_id}", user)])
    app.add_middleware(CacheMiddleware, cache=cache)
    transport = httpx.ASGITransport(app=app)
    async with cache, httpx.AsyncClient(transport=transport, base_url="https://shop.test") as c:
        await c.get("/users/1?q=1")
        await c.get("/users/1?q=1", headers={"accept-language": "fr"})
        await c.get("/users/2")

    code, out, _ = await arun(
        capsys, "inspect", "--url", "https://shop.test/users/1?q=1", "--header",
        "Accept-Language:", "--redis-url", redis_url, "--namespace", NS, "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["vary"] == ["accept-language"]
    assert report["learned_vary"] == []  # the responses sent no Vary: the route's vary=
    entry = report["entry"]  # the variant without an Accept-Language header
    assert entry["exists"]
    assert entry["kind"] == "response"
    assert entry["status"] == 200
    assert ["x-app", "1"] in entry["headers"]
    assert entry["state"] == "fresh"
    assert any(t["tag"] == "users:1" for t in entry["tags"])
    assert len(report["variants"]) == 2  # both languages of /users/1, not /users/2
    assert report["key"] in {v["full_key"] for v in report["variants"]}

    code, out, _ = await arun(
        capsys, "inspect", "--url", "https://shop.test/users/1?q=1",
        "--header", "Accept-Language: fr", "--redis-url", redis_url, "--namespace", NS,
    )  # fmt: skip
    assert code == 0
    assert "vary      accept-language" in out
    assert "<- this request" in out

    # The entry's own key, as the text view shows an HTTP entry.
    code, out, _ = await arun(
        capsys, "inspect", entry["full_key"], "--redis-url", redis_url, "--namespace", NS
    )
    assert code == 0
    assert "status" in out
    assert "header       x-app: 1" in out


async def test_inspect_url_of_an_uncached_page_fails(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await arun(
        capsys, "inspect", "--url", "https://shop.test/none", "--redis-url", redis_url,
        "--namespace", NS,
    )  # fmt: skip
    assert code == 1
    assert "no cached response" in err
    assert "variants  0" in out


def test_inspect_needs_a_key_or_a_url_and_an_absolute_url(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "inspect", "--redis-url", redis_url)
    assert code == 2
    assert "either a KEY or --url" in err
    code, _, err = run(capsys, "inspect", "--url", "/users/1", "--redis-url", redis_url)
    assert code == 2
    assert "absolute URL" in err
    code, _, err = run(
        capsys, "inspect", "--url", "https://a/b", "--header", "nocolon", "--redis-url", redis_url
    )
    assert code == 2
    assert "'Name: value'" in err
