"""``asgi-cache clear``: invalidate every entry of a namespace (``cache.clear()``).

One command whatever the namespace holds: every entry depends on the namespace-wide tag, and
retiring its version stops serving them all at once (they expire on their own). It asks for
confirmation unless ``--yes``, and refuses to run unattended (no terminal) without it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from .. import Cache
from ._base import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    CommandFailed,
    Parsers,
    applied_check,
    redact,
    run_with_cache,
    settings_from,
)


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``clear`` parser."""
    clear: argparse.ArgumentParser = sub.add_parser(
        "clear",
        parents=[parents.common],
        help="invalidate every entry of the namespace",
        description="Stop serving every entry of the namespace (data and pages) at once: one "
        "command, whatever the namespace holds. Asks for confirmation unless --yes.",
    )
    clear.add_argument(
        "--yes", "-y", action="store_true", help="do not ask for confirmation (for scripts)"
    )
    return clear


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Confirm, then clear the namespace the arguments name."""
    if not args.yes:
        settings = settings_from(args)
        stdin = sys.stdin
        if stdin is None or not stdin.isatty():
            raise CommandFailed(
                "clear invalidates every entry of the namespace and needs a confirmation: "
                "run it at a terminal, or pass --yes",
                code=EXIT_USAGE,
            )
        err.write(
            f"invalidate every entry of namespace {settings.namespace!r} at "
            f"{redact(settings.url)}? [y/N] "
        )
        err.flush()
        if stdin.readline().strip().lower() not in ("y", "yes"):
            print("asgi-cache: not cleared", file=err)
            return EXIT_FAILED
    return run_with_cache(_clear, args, out, err)


async def _clear(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    check = await applied_check(cache)
    await cache.clear()
    check("clear")
    print(f"cleared namespace {cache.settings.namespace!r}: every entry invalidated", file=out)
    return EXIT_OK


COMMAND = Command("clear", add, run)
"""The ``clear`` command."""
