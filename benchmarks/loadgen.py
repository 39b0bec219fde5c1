"""Load generators: wrk when installed, else a closed-loop asyncio generator; plus bursts.

Every generator here targets 127.0.0.1 only and is bounded in time or count.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .http_client import Connection
from .workload import percentile

# wrk reports through this Lua hook: one JSON line, latencies in microseconds.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


@dataclass
class LoadResult:
    """Throughput and latency of one load run (latencies in microseconds)."""

    tool: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_version() -> str | None:
    """wrk's version string when wrk is on PATH, else ``None``."""
    path = shutil.which("wrk")
    if path is None:
        return None
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return f"wrk {match.group(1)}" if match else "wrk"


def run_wrk(port: int, path: str, *, connections: int, seconds: float) -> LoadResult:
    """``wrk -t1 -c<connections> -d<seconds>`` against ``127.0.0.1:port``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_REPORT)
    try:
        out = subprocess.run(
            [
                "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                "--timeout", "10s", "-s", script.name, f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    secs = data["duration_us"] / 1e6
    return LoadResult(
        tool="wrk",
        connections=connections,
        seconds=secs,
        requests=data["requests"],
        rps=data["requests"] / secs,
        p50_us=data["p50_us"],
        p90_us=data["p90_us"],
        p99_us=data["p99_us"],
        mean_us=data["mean_us"],
        errors=data["non2xx"] + data["socket_errors"],
    )


async def closed_loop(port: int, path: str, *, connections: int, seconds: float) -> LoadResult:
    """The fallback: ``connections`` keep-alive clients sending back to back for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        conn = Connection("127.0.0.1", port, timeout=10.0)
        raw = conn.prepare("GET", path)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    response = await conn.send(raw)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1e6)
                if response.status >= 400:
                    errors += 1
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(
        tool="python-asyncio",
        connections=connections,
        seconds=elapsed,
        requests=len(latencies),
        rps=len(latencies) / elapsed,
        p50_us=percentile(latencies, 50),
        p90_us=percentile(latencies, 90),
        p99_us=percentile(latencies, 99),
        mean_us=sum(latencies) / len(latencies) if latencies else float("nan"),
        errors=errors,
    )


def load(port: int, path: str, *, connections: int, seconds: float, use_wrk: bool) -> LoadResult:
    """Run wrk (when ``use_wrk``) or the asyncio fallback."""
    if use_wrk:
        return run_wrk(port, path, connections=connections, seconds=seconds)
    return asyncio.run(closed_loop(port, path, connections=connections, seconds=seconds))


@dataclass
class BurstResult:
    """One burst of simultaneous requests."""

    statuses: dict[int, int]
    latencies_us: list[float]
    failures: int  # connection errors and time-outs


async def burst(port: int, path: str, *, count: int, limit_s: float = 30.0) -> BurstResult:
    """Open ``count`` connections, then send one ``GET path`` on each at the same moment."""
    conns = [Connection("127.0.0.1", port, timeout=limit_s) for _ in range(count)]
    await asyncio.gather(*(c.open() for c in conns))
    go = asyncio.Event()
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    failures = 0

    async def one(conn: Connection) -> None:
        nonlocal failures
        raw = conn.prepare("GET", path)
        await go.wait()
        t0 = time.perf_counter()
        try:
            response = await conn.send(raw)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            failures += 1
            return
        latencies.append((time.perf_counter() - t0) * 1e6)
        statuses[response.status] = statuses.get(response.status, 0) + 1

    tasks = [asyncio.create_task(one(c)) for c in conns]
    await asyncio.sleep(0.05)  # let every task reach go.wait()
    go.set()
    await asyncio.gather(*tasks)
    await asyncio.gather(*(c.close() for c in conns))
    return BurstResult(statuses, sorted(latencies), failures)


async def sequential(port: int, paths: list[str]) -> tuple[dict[int, int], list[float], int]:
    """Send ``paths`` one after another on one keep-alive connection.

    Returns:
        Status counts, latencies in microseconds, and connection failures.
    """
    conn = Connection("127.0.0.1", port, timeout=10.0)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    failures = 0
    try:
        for path in paths:
            t0 = time.perf_counter()
            try:
                response = await conn.request("GET", path)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                failures += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1e6)
            statuses[response.status] = statuses.get(response.status, 0) + 1
    finally:
        await conn.close()
    return statuses, latencies, failures
