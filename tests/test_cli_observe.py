"""``asgi-cache diagnose`` against a real Redis reconfigured for each finding, and
``asgi-cache top`` under a pseudo-terminal (a frame is rendered, ``q`` and Ctrl-C quit)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asgi_cache.cli import main

from .http_support import command_calls, uvicorn_worker
from .redis_server import RedisServer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ASGI_CACHE_"):
            monkeypatch.delenv(name)


def diagnose(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> tuple[int, dict]:
    code = main(["diagnose", "--url", url, "--namespace", "diag", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def severities(report: dict) -> dict[str, str]:
    return {f["what"].split(":")[0]: f["severity"] for f in report["findings"]}


def test_diagnose_finds_what_to_change(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory", "0")
    own_redis.command("CONFIG", "SET", "slowlog-log-slower-than", "0")  # log every command
    client = own_redis.client()
    client.set("diag:d:big", "x" * (2 << 20))
    client.set("diag:d:small", "y")
    client.set("other:d:huge", "z" * (3 << 20))  # another namespace: not listed
    code, report = diagnose(capsys, own_redis.url)
    assert code == 1  # no maxmemory is an error
    found = severities(report)
    assert found["maxmemory is 0"] == "error"
    assert any(k.startswith("1 sampled keys are above 1.0 MiB (largest 2.") for k in found)
    assert any(k.endswith("slow log entries touch the namespace (SET)") for k in found)
    keys = [k["key"] for k in report["biggest_keys"]]
    assert keys == ["diag:d:big", "diag:d:small"]
    calls = command_calls(own_redis)
    assert "keys" not in calls  # SCAN, never KEYS
    assert calls["scan"] >= 1
    assert calls["memory|usage"] == 2

    own_redis.command("CONFIG", "SET", "maxmemory", "100mb")
    own_redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    code, report = diagnose(capsys, own_redis.url)
    assert code == 1
    assert severities(report)["maxmemory-policy is noeviction"] == "error"

    own_redis.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    own_redis.command("CONFIG", "SET", "slowlog-log-slower-than", "10000000")
    own_redis.command("SLOWLOG", "RESET")
    own_redis.command("DEL", "diag:d:big")
    code, report = diagnose(capsys, own_redis.url)
    assert code == 0
    assert all(f["severity"] != "error" for f in report["findings"])
    assert report["server"]["maxmemory_policy"] == "allkeys-lru"


def test_diagnose_prints_findings_with_the_change(
    own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.command("CONFIG", "SET", "maxmemory-policy", "volatile-lru")
    own_redis.command("CONFIG", "SET", "maxmemory", "100mb")
    code = main(["diagnose", "--url", own_redis.url, "--namespace", "diag"])
    out = capsys.readouterr().out
    assert code == 0
    assert "WARNING: maxmemory-policy is volatile-lru" in out
    assert "change: prefer allkeys-lru or allkeys-lfu" in out
    assert "namespace    diag" in out


def test_diagnose_down_and_bad_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--url", "redis://127.0.0.1:1/0", "--timeout", "0.5"]) == 1
    assert "cannot use Redis at redis://127.0.0.1:1/0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["diagnose", "--sample", "0"])
    assert "'0' is not allowed: expected a whole number > 0" in capsys.readouterr().err


# -- top ---------------------------------------------------------------------------------------


@pytest.fixture
def dashboard_site() -> Iterator[str]:
    app = "tests.metrics_dashboard_app:create_app"
    with uvicorn_worker(dict(os.environ), app, ready="/up") as base:
        yield base


class Terminal:
    """``asgi-cache top`` in a child process whose stdin and stdout are a pseudo-terminal."""

    def __init__(self, *argv: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        code = "from asgi_cache.cli import main; raise SystemExit(main())"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "top", *argv],
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
        )
        os.close(slave)
        self.seen = b""

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never shown; the screen had: {self.seen[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    assert self.proc.poll() is None, self.proc.stderr.read()  # type: ignore[union-attr]

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def exit_code(self, timeout: float = 30) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            os.close(self.master)
            if self.proc.poll() is None:  # a failed test: no leftover process
                self.proc.kill()
                self.proc.wait(10)
            assert self.proc.stderr is not None
            self.errors = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
        return code


def test_top_renders_the_app_and_quits_on_q(redis_server: RedisServer, dashboard_site: str) -> None:
    for _ in range(4):  # 1 miss, 3 hits
        httpx.get(f"{dashboard_site}/items/1", timeout=30)
    term = Terminal(
        "--url", redis_server.url, "--dashboard", f"{dashboard_site}/cache/", "--interval", "0.2"
    )
    term.wait_for("asgi-cache top")
    term.wait_for("75.0 %")
    term.wait_for("/items/{item_id}: 3 cached, 1 origin")
    for _ in range(4):
        httpx.get(f"{dashboard_site}/items/1", timeout=30)
    term.wait_for("87.5 %")  # refreshed: 7 of 8
    term.type(b"q")
    assert term.exit_code() == 0, term.errors


def test_top_quits_on_ctrl_c_and_restores_the_terminal(redis_server: RedisServer) -> None:
    term = Terminal("--url", redis_server.url, "--interval", "0.2")
    term.wait_for("pass --dashboard URL")
    term.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the foreground process
    assert term.exit_code() == 0


def test_top_once_without_a_terminal(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--url", redis_server.url, "--once"]) == 0
    out = capsys.readouterr().out
    assert "asgi-cache top" in out
    assert "memory" in out
    with pytest.raises(SystemExit):
        main(["top", "--url", redis_server.url, "--interval", "0"])
    assert main(["top", "--url", redis_server.url, "--once", "--dashboard", "ftp://x"]) == 2
    assert "--dashboard='ftp://x' is not allowed" in capsys.readouterr().err
