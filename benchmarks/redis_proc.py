"""The benchmark's own ``redis-server``: a free loopback port, LRU eviction, no persistence.

The runner never touches a Redis it did not start (and never 127.0.0.1:6379).
Database 0 holds the caches' entries; database 1 holds the origin counters, so measuring an
entry's memory never sees them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CACHE_DB = 0
COUNTER_DB = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchRedis:
    """A private ``redis-server`` child process.

    Args:
        maxmemory: The ``maxmemory`` setting (eviction is ``allkeys-lru``).
    """

    def __init__(self, *, maxmemory: str = "512mb") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found on PATH (Debian/Ubuntu: apt-get install redis-server)"
            )
        self.binary = binary
        self.maxmemory = maxmemory
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="asgi-cache-bench-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    def url(self, db: int = CACHE_DB) -> str:
        """URL of database ``db`` on this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def __enter__(self) -> BenchRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "allkeys-lru",
            "--maxclients", "4096",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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

    def client(self, db: int = CACHE_DB) -> Any:
        """A synchronous redis-py client on database ``db``."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db)

    def version(self) -> str:
        """The server's version."""
        with contextlib.closing(self.client()) as c:
            return str(c.info("server")["redis_version"])

    def flush(self, db: int) -> None:
        """Empty database ``db``."""
        with contextlib.closing(self.client(db)) as c:
            c.flushdb()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
