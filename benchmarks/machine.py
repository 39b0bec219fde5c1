"""A description of the machine and software a run measured, for the report."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "asgi-cache", "fastapi", "starlette", "fastapi-cache2", "cashews", "aiocache", "litestar",
    "redis", "hiredis", "uvicorn", "uvloop", "httptools",
)  # fmt: skip


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    """Total memory in GiB, when /proc/meminfo says."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def describe(*, redis_version: str, load_tool: str, loop: str) -> dict[str, object]:
    """Cores, CPU, memory, OS, Python, Redis, load tool, loop and package versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    mem = memory_gib()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": round(mem, 1) if mem else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis": redis_version,
        "load_generator": load_tool,
        "event_loop": loop,
        "packages": versions,
    }
