"""One system served by uvicorn in a child process, on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .apps import System
from .http_client import Connection
from .loop import loop_name
from .redis_proc import free_port

REPO = Path(__file__).resolve().parent.parent


def http_impl() -> str:
    """``httptools`` when installed (uvicorn's fast parser), else ``h11``."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


class Server:
    """uvicorn serving ``system`` with ``workers`` processes.

    Args:
        system: What to serve.
        env: ``BENCH_*`` settings for the app (see ``benchmarks.apps.common``).
        workers: uvicorn worker processes.
    """

    def __init__(self, system: System, env: dict[str, str], *, workers: int = 1) -> None:
        self.system = system
        self.env = env
        self.workers = workers
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix=f"bench-{system.name}-", suffix=".log", delete=False
        )

    def command(self) -> list[str]:
        """The uvicorn command line."""
        return [
            sys.executable, "-m", "uvicorn", self.system.factory, "--factory",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers),
            "--loop", loop_name(), "--http", http_impl(),
            "--no-access-log", "--log-level", "warning", "--lifespan", "on",
            "--timeout-keep-alive", "60",
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> None:
        """Start uvicorn and wait until ``GET /ping`` answers 200."""
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers are stopped with it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode}: {self.tail()}")
            if asyncio.run(self._ping()):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"uvicorn did not answer /ping within {timeout} s: {self.tail()}")

    async def _ping(self) -> bool:
        conn = Connection("127.0.0.1", self.port, timeout=2.0)
        try:
            return (await conn.request("GET", "/ping")).status == 200
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            return False
        finally:
            await conn.close()

    def tail(self, lines: int = 15) -> str:
        """The last lines of uvicorn's output."""
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """Stop uvicorn (SIGINT, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        """Stop and delete the log."""
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
