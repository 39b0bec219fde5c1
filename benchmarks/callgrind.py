"""Instructions of one run of a benchmark module, counted by ``valgrind --tool=callgrind``.

Instruction counts do not depend on what else the machine runs, so the benchmarks that
compare two code paths on a shared machine (``metrics_overhead``, ``hit_instructions``) count
instructions of a child run of themselves, each with a fixed hash seed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def instructions(module: str, *args: str) -> int:
    """Instructions of ``python -m module *args`` under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                module,
                *args,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        assert match is not None, "no totals in the callgrind output"
        return int(match.group(1))
