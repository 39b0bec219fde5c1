"""Running the in-process worker (``python -m benchmarks.inproc``) as a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from ..server import REPO


def run_inproc(args: list[str], env: dict[str, str], *, timeout: float = 300) -> dict[str, Any]:
    """Run the worker with ``args``; its JSON result, or ``{"error": ...}``."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.inproc", *args],
        cwd=REPO,
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        return {"error": f"exit {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
