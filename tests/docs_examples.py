"""The code blocks of README.md and docs/: found, classified and prepared for the suite.

Every fenced ``python`` block is an example a reader may paste, so the suite runs it
(tests/test_docs_examples.py). The blocks of one Markdown file run in order in one module
namespace, like a doctest file: a page may define ``cache`` in one block and use it in the
next. Top-level ``await`` is allowed, as in the asyncio REPL.

A block that cannot run says so in the Markdown, with an HTML comment (invisible on the
site and on GitHub) on the line right before its fence, giving the reason::

    <!-- docs: typecheck: starts a server (uvicorn.run) -->
    <!-- docs: not-executed: cashews is not a dependency of this project -->

``typecheck`` blocks are checked by mypy instead of run; each must be a complete module.
``not-executed`` blocks (code written for other libraries, on the comparison and migration
pages) are only parsed. Keep both rare: ``python -m tests.docs_examples`` lists the counts.

A block that names the machine's Redis (``redis://127.0.0.1:6379``) runs against the suite's
own ``redis-server`` instead: the URL is rewritten, never contacted.
"""

from __future__ import annotations

import ast
import enum
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON_INFO = frozenset({"python", "py", "python3"})
_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs:\s*(?P<mode>[a-z-]+)\s*:\s*(?P<reason>.*?)\s*-->\s*$")
MACHINE_REDIS = re.compile(r"(?:127\.0\.0\.1|localhost):6379\b")


class Mode(enum.Enum):
    """What the suite does with a block."""

    RUN = "run"
    TYPECHECK = "typecheck"
    NOT_EXECUTED = "not-executed"


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced ``python`` block of a Markdown file."""

    path: Path
    line: int
    """Line of the first code line (1-based), so tracebacks point into the Markdown."""
    code: str
    mode: Mode
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def padded(self) -> str:
        """The code preceded by blank lines, so its line numbers are the Markdown's."""
        return "\n" * (self.line - 1) + self.code

    def uses_redis(self) -> bool:
        return "redis://" in self.code

    def for_redis(self, url: str) -> str:
        """The padded code with the machine's Redis URL replaced by ``url`` (no db part)."""
        return MACHINE_REDIS.sub(url.removeprefix("redis://"), self.padded())


class MarkdownError(ValueError):
    """A marker without a block, an unknown mode or a missing reason."""


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced ``python`` blocks of ``path``, each with its mode.

    Raises:
        MarkdownError: A ``docs:`` marker is malformed or not followed by a python block.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    marker: tuple[int, Mode, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _MARKER.match(line)
        if m:
            try:
                mode = Mode(m["mode"])
            except ValueError:
                raise MarkdownError(
                    f"{path}:{i + 1}: unknown docs marker {m['mode']!r}: expected "
                    f"{', '.join(x.value for x in Mode if x is not Mode.RUN)}"
                ) from None
            if mode is Mode.RUN or not m["reason"]:
                raise MarkdownError(f"{path}:{i + 1}: a docs marker needs a mode and a reason")
            marker = (i + 1, mode, m["reason"])
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if marker is not None and line.strip():
                raise MarkdownError(f"{path}:{marker[0]}: docs marker not right before a block")
            i += 1
            continue
        indent, delim = len(fence["indent"]), fence["fence"]
        info = fence["info"].split(maxsplit=1)[0].lower() if fence["info"] else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if close and close["fence"].startswith(delim) and not close["info"]:
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if info in PYTHON_INFO:
            mode, reason = (Mode.RUN, "") if marker is None else (marker[1], marker[2])
            found.append(Block(path, i + 2, "\n".join(body) + "\n", mode, reason))
        elif marker is not None:
            raise MarkdownError(f"{path}:{marker[0]}: docs marker before a {info!r} block")
        marker = None
        i = j + 1
    if marker is not None:
        raise MarkdownError(f"{path}:{marker[0]}: docs marker at the end of the file")
    return found


def all_blocks() -> list[Block]:
    """Every python block of README.md and docs/."""
    return [b for p in markdown_files() for b in blocks(p)]


def compile_block(block: Block, source: str) -> object:
    """Compile ``source`` (the block, padded) allowing top-level ``await``."""
    return compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def summary(found: list[Block]) -> str:
    """Counts per mode and per file, and each exception with its reason."""
    counts = Counter(b.mode for b in found)
    out = [
        f"{len(found)} python blocks: {counts[Mode.RUN]} executed, "
        f"{counts[Mode.TYPECHECK]} type-checked, {counts[Mode.NOT_EXECUTED]} not executed"
    ]
    per_file = Counter(b.path.relative_to(ROOT).as_posix() for b in found)
    out += [f"  {name}: {n}" for name, n in sorted(per_file.items())]
    out += [f"  {b.mode.value} {b.where}: {b.reason}" for b in found if b.mode is not Mode.RUN]
    return "\n".join(out)


if __name__ == "__main__":  # python -m tests.docs_examples
    sys.stdout.write(summary(all_blocks()) + "\n")
