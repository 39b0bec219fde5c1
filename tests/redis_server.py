"""A real ``redis-server`` owned by the test suite, on a free loopback port.

The suite never talks to a Redis it did not start: every server here is a child process with
its own port and its own temporary directory, killed when the fixture ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

BEHAVIOUR_OP_TIMEOUT = 2.0
"""The op budget of every cache or backend in a test about behaviour rather than time budgets.

The library's default (250 ms) is right for an app and wrong for a test on a loaded 2-core
machine: one slow answer would turn into a fail-open miss and change the counts the test
asserts. Fault tests set their own short budgets on purpose.
"""

INSTALL_HINT = (
    "redis-server not found on PATH; install it (Debian/Ubuntu: apt-get install redis-server, "
    "macOS: brew install redis) to run the real-Redis tests, or set ASGI_CACHE_REQUIRE_REDIS=1 "
    "to make its absence an error"
)


def redis_binary() -> str | None:
    """Path of ``redis-server``, or ``None`` (failing when Redis is required)."""
    path = shutil.which("redis-server")
    if path is None and os.environ.get("ASGI_CACHE_REQUIRE_REDIS") == "1":
        pytest.fail("ASGI_CACHE_REQUIRE_REDIS=1 but " + INSTALL_HINT)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = 30.0) -> float:
    """Poll ``check`` until it is true; return the seconds it took.

    Readiness is always a condition polled against the servers themselves (a state, a
    replication link, a slot map), never a fixed sleep: a busy machine only makes it slower.
    A ``check`` that raises a Redis or socket error counts as "not yet".

    Raises:
        TimeoutError: ``check`` was still false after ``timeout`` seconds; names ``what``.
    """
    start = time.monotonic()
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        time.sleep(0.02)


class RedisServer:
    """One ``redis-server`` child process; it can be stopped, paused and restarted.

    Args:
        binary: Path of ``redis-server``.
        extra_args: Further command-line options, after the suite's defaults.
        directory: Working directory (created if missing); a fresh temporary one by default.
            A restart keeps it, so a cluster node finds its ``nodes.conf`` again.
    """

    def __init__(self, binary: str, *extra_args: str, directory: Path | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.extra_args = extra_args
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="asgi-cache-redis-"))
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the server."""
        return ("127.0.0.1", self.port)

    @property
    def running(self) -> bool:
        """Whether the process is alive (it may still be paused)."""
        return self.proc is not None and self.proc.poll() is None

    def args(self) -> list[str]:
        """The command line that starts this server."""
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--maxmemory", "256mb",
            "--maxmemory-policy", "allkeys-lru",
            "--enable-debug-command", "local",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        """Start the process and wait until it answers ``PING``."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting (so several servers boot side by side)."""
        self.proc = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir
        )

    def wait_ready(self) -> None:
        """Wait until the launched process answers ``PING`` (10 s at most)."""
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        """Kill the server (connections to it are then refused)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections hang instead of failing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def command(self, *args: str) -> bytes:
        """Run one command with redis-cli and return its raw output."""
        cli = shutil.which("redis-cli")
        if cli is None:  # pragma: no cover - redis-cli ships with redis-server
            raise RuntimeError("redis-cli not found")
        return subprocess.run(
            [cli, "-p", str(self.port), *args], check=True, capture_output=True, timeout=10
        ).stdout

    def client(self) -> redis.Redis:
        """A synchronous redis-py client (strings, RESP2) for the harness's own commands.

        One per server, kept until :meth:`stop`; it reconnects by itself after a restart.
        """
        if self._client is None:
            self._client = redis.Redis(
                host="127.0.0.1", port=self.port, decode_responses=True, protocol=2,
                socket_timeout=5, socket_connect_timeout=1,
            )  # fmt: skip
        return self._client

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
