"""Every python block of README.md and docs/ runs (or type-checks) as written.

One test per Markdown file: its blocks run in order in one fresh ``__main__`` module, with
one event loop for top-level ``await``, so a page reads top to bottom like a script (see
tests/docs_examples.py for the markers that exempt a block). Blocks that name a Redis URL
run against the suite's own ``redis-server``. Caches a page leaves open are closed after it,
as an app's lifespan would.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from asgi_cache import Cache

from .docs_examples import (
    MACHINE_REDIS,
    ROOT,
    Block,
    MarkdownError,
    Mode,
    all_blocks,
    blocks,
    compile_block,
    markdown_files,
)

PAGES = [p for p in markdown_files() if any(b.mode is Mode.RUN for b in blocks(p))]


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_page_examples_run(page: Path, request: pytest.FixtureRequest) -> None:
    runnable = [b for b in blocks(page) if b.mode is Mode.RUN]
    redis_url = None
    if any(b.uses_redis() for b in runnable):
        redis_url = request.getfixturevalue("redis_url").rsplit("/", 1)[0]
    # The page runs as a script would (``python page.py``): its module is ``__main__``, which
    # pydantic and dataclasses look up by name, so it stands in for the suite's own meanwhile.
    module = types.ModuleType("__main__")
    module.__file__ = str(page)
    real_main = sys.modules["__main__"]
    sys.modules["__main__"] = module
    # A block with top-level await runs in the page's own loop; a block may also call
    # asyncio.run() itself (a script's ending), since no loop is running between blocks.
    loop = asyncio.new_event_loop()
    try:
        for block in runnable:
            source = block.padded() if redis_url is None else block.for_redis(redis_url)
            assert not MACHINE_REDIS.search(source), f"{block.where}: the machine's Redis"
            result = eval(compile_block(block, source), module.__dict__)
            if inspect.iscoroutine(result):
                loop.run_until_complete(result)
    finally:
        sys.modules["__main__"] = real_main
        for value in list(module.__dict__.values()):
            if isinstance(value, Cache):
                loop.run_until_complete(value.aclose())
        loop.close()


def test_exceptions_are_rare_and_typecheck_blocks_pass_mypy(tmp_path: Path) -> None:
    found = all_blocks()
    typed = [b for b in found if b.mode is Mode.TYPECHECK]
    # Exceptions are for code that cannot run here (a server, another library), not for
    # examples that were inconvenient to make runnable.
    assert len(typed) <= 5, [b.where for b in typed]
    assert all(
        b.path.name in {"comparison.md", "migrating.md"}
        for b in found
        if b.mode is Mode.NOT_EXECUTED
    ), "not-executed blocks belong to the comparison and migration pages only"
    if not typed:
        return
    files = []
    for i, block in enumerate(typed):
        f = tmp_path / f"block_{i}.py"
        f.write_text(block.code, encoding="utf-8")
        files.append((f, block))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--ignore-missing-imports",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *(str(f) for f, _ in files),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        check=False,
    )
    report = proc.stdout
    for f, block in files:
        report = report.replace(str(f), block.where)
    assert proc.returncode == 0, report


def test_every_block_is_found_and_every_marker_has_a_reason(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\n```\n\n- item\n\n  ```py\n  y = x + 1\n  ```\n\n"
        "<!-- docs: typecheck: starts a server -->\n```python\nimport uvicorn\n```\n\n"
        "````markdown\n```python\nnot a block\n```\n````\n\n```text\nnot python\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.line, b.mode, b.code) for b in found] == [
        (4, Mode.RUN, "x = 1\n"),
        (10, Mode.RUN, "y = x + 1\n"),
        (15, Mode.TYPECHECK, "import uvicorn\n"),
    ]
    assert found[2].reason == "starts a server"
    assert found[1].padded().splitlines()[9] == "y = x + 1"
    for bad in (
        "<!-- docs: typecheck: -->\n```python\nx\n```\n",
        "<!-- docs: skip: why -->\n```python\nx\n```\n",
        "<!-- docs: typecheck: why -->\ntext\n```python\nx\n```\n",
        "<!-- docs: typecheck: why -->\n```bash\nx\n```\n",
        "<!-- docs: typecheck: why -->\n",
    ):
        page.write_text(bad, encoding="utf-8")
        with pytest.raises(MarkdownError):
            blocks(page)


def test_machine_redis_url_is_rewritten_to_the_suites() -> None:
    block = Block(
        Path(ROOT / "README.md"), 3, 'Cache.from_url("redis://127.0.0.1:6379/0")\n', Mode.RUN
    )
    assert block.for_redis("redis://127.0.0.1:41234") == (
        '\n\nCache.from_url("redis://127.0.0.1:41234/0")\n'
    )
