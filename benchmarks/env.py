"""The benchmark environment: ``.venv-bench`` with the pinned peers and the project.

The project's own dev install stays lean; the runner creates this second virtualenv from
``benchmarks/requirements.txt`` (plus the project, editable) and re-runs itself inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-bench"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
MARKER = VENV / ".installed"


def python() -> Path:
    """The benchmark environment's interpreter."""
    return VENV / "bin" / "python"


def inside() -> bool:
    """Whether this interpreter is the benchmark environment's."""
    return Path(sys.prefix).resolve() == VENV.resolve()


def stale() -> bool:
    """Whether the environment is missing or older than its requirements."""
    if not MARKER.exists():
        return True
    installed = MARKER.stat().st_mtime
    return any(p.stat().st_mtime > installed for p in (REQUIREMENTS, REPO / "pyproject.toml"))


def setup(*, force: bool = False) -> None:
    """Create or update ``.venv-bench`` (pip, from PyPI) when needed."""
    if not force and not stale():
        return
    print(f"setting up the benchmark environment in {VENV} ...", file=sys.stderr, flush=True)
    if not python().exists():
        base = sys.executable
        if inside():  # pragma: no cover - only when rebuilding from within
            base = "python3"
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS), "-e", str(REPO)], check=True)
    MARKER.touch()


def reexec(argv: list[str]) -> None:
    """Replace this process with ``python -m benchmarks argv`` inside ``.venv-bench``."""
    os.execv(str(python()), [str(python()), "-m", "benchmarks", *argv])
