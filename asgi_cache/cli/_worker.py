"""``asgi-cache worker module:wb``: run a write-behind worker, or look at its log.

The target names a [`WriteBehind`][asgi_cache.WriteBehind] in an importable module
(``app.tasks:wb``, ``app:cache_tasks.visits``), as uvicorn names an app; the module builds
its own cache, so the worker uses the app's settings. The current directory is importable.

::

    asgi-cache worker app.tasks:wb                 run until SIGTERM or Ctrl-C
    asgi-cache worker app.tasks:wb --drain         handle what is there, then exit
    asgi-cache worker app.tasks:wb --status        counters, backlog, pending, lag (JSON)
    asgi-cache worker app.tasks:wb --dead-letters  the dead letter, with reasons (JSON)
    asgi-cache worker app.tasks:wb --replay [ID ...]   move dead letters back (all if no ID)

The first SIGTERM (or SIGINT) stops gracefully: the batch in hand is finished and what the
handler committed is acknowledged. A second one cancels it: that batch stays pending and the
next worker (or this one, restarted) hands it to the handler again.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from contextlib import suppress
from typing import Any, TextIO

from .. import BackendError, WriteBehind
from ._base import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    CommandFailed,
    Parsers,
    dump,
    positive_int,
)

EXIT_INTERRUPTED = 130
"""A second signal cancelled the worker mid-batch (128 + SIGINT, as a shell reports it)."""


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``worker`` parser."""
    worker: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="run a write-behind worker (module:attribute names the WriteBehind)",
        description="Run a write-behind worker until SIGTERM, or show its status and dead "
        "letter. TARGET is module:attribute naming a WriteBehind (cache.write_behind(...)); "
        "its module builds the cache, with the app's settings.",
    )
    worker.add_argument("target", metavar="TARGET", help="module:attribute, e.g. app.tasks:wb")
    mode = worker.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="print the status as JSON and exit")
    mode.add_argument(
        "--dead-letters", action="store_true", help="list the dead letter as JSON and exit"
    )
    mode.add_argument(
        "--replay",
        nargs="*",
        metavar="ID",
        help="move dead letters back into the stream (every one when no ID is given)",
    )
    mode.add_argument(
        "--drain", action="store_true", help="handle every change there is, then exit"
    )
    worker.add_argument(
        "--consumer",
        help="this worker's name in the consumer group (default: host-pid-random); a stable "
        "name takes its own pending changes back at once after a restart",
    )
    worker.add_argument(
        "--limit", type=positive_int, default=100, help="most dead letters to list (100)"
    )
    return worker


def load_target(target: str) -> WriteBehind:
    """The [`WriteBehind`][asgi_cache.WriteBehind] that ``module:attribute`` names.

    Raises:
        CommandFailed: The target is malformed, cannot be imported or is not a WriteBehind.
    """
    module_name, _, path = target.partition(":")
    if not module_name or not path:
        raise CommandFailed(
            f"target={target!r} is not allowed: expected module:attribute, such as app.tasks:wb",
            code=EXIT_USAGE,
        )
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` and uvicorn do
    try:
        found: Any = importlib.import_module(module_name)
        for part in path.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise CommandFailed(f"cannot load {target!r}: {exc}", code=EXIT_USAGE) from exc
    if not isinstance(found, WriteBehind):
        raise CommandFailed(
            f"target={target!r} is not allowed: it names a {type(found).__name__}, expected a "
            "WriteBehind (wb = cache.write_behind(...))",
            code=EXIT_USAGE,
        )
    return found


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the worker, or the look-up the options ask for."""
    wb = load_target(args.target)
    try:
        return asyncio.run(_run(args, wb, out, err))
    except asyncio.CancelledError:
        print(f"asgi-cache worker: {wb.name!r} cancelled; its batch stays pending", file=err)
        return EXIT_INTERRUPTED
    except BackendError as exc:
        raise CommandFailed(f"write-behind {wb.name!r}: {exc}") from exc


async def _run(args: argparse.Namespace, wb: WriteBehind, out: TextIO, err: TextIO) -> int:
    async with wb:
        if args.status:
            status = await wb.probe()
            print(dump(status), file=out)
            return EXIT_OK if "error" not in status else EXIT_FAILED
        if args.dead_letters:
            letters = await wb.dead_letters(args.limit)
            print(dump([_letter(d) for d in letters]), file=out)
            return EXIT_OK
        if args.replay is not None:
            moved = await wb.replay(*args.replay)
            print(f"replayed {moved} dead letters of {wb.name!r}", file=out)
            return EXIT_OK
        if args.drain:
            settled = await wb.drain(consumer=args.consumer)
            print(f"settled {settled} changes of {wb.name!r}", file=out)
            return EXIT_OK
        return await _serve(wb, args.consumer, out, err)


def _letter(letter: Any) -> dict[str, Any]:
    change = letter.change
    return {
        "id": letter.id,
        "reason": letter.reason,
        "deliveries": letter.deliveries,
        "change": None
        if change is None
        else {
            "key": change.key,
            "version": change.version,
            "deleted": change.deleted,
            "id": change.id,
            "value": change.value,
        },
    }


async def _serve(wb: WriteBehind, consumer: str | None, out: TextIO, err: TextIO) -> int:
    logging.basicConfig(level=logging.INFO, stream=err, format="%(asctime)s %(message)s")
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            print(f"asgi-cache worker: stopping {wb.name!r} after the batch in hand", file=err)
            wb.shutdown()
        elif task is not None:
            task.cancel()  # the batch stays pending for the next worker

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    print(f"asgi-cache worker: running {wb.name!r} (SIGTERM or Ctrl-C stops it)", file=err)
    try:
        await wb.run(consumer=consumer)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(Exception):
                loop.remove_signal_handler(sig)
    print(dump(wb.status()), file=out)
    return EXIT_OK


COMMAND = Command("worker", add, run)
"""The ``worker`` command."""
