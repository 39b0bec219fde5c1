"""The ``asgi-cache`` command: see and steer a cache from a shell.

::

    asgi-cache demo [--once]                    run the demo app and its workload
    asgi-cache health [--json]                  probe Redis: status, latency, memory, policy
    asgi-cache stats [--json]                   the namespace's keys and Redis's counters
    asgi-cache invalidate --tag T --key K --url PAGE --prefix P   (each repeatable)
    asgi-cache clear [--yes]                    invalidate every entry of the namespace
    asgi-cache inspect KEY [--json] [--value]   one entry's metadata (TTL, tags, size, ...)
    asgi-cache inspect --url URL [--header H]   a page's keys, its variants and their states
    asgi-cache top [--dashboard URL] [--once]   a live view of Redis and the app (q quits)
    asgi-cache diagnose [--json] [--sample N]   check Redis for the cache: findings, fixes
    asgi-cache worker module:wb [--status | --dead-letters | --replay [ID ...] | --drain]
                                                run (or inspect) a write-behind worker

Every command reads ``ASGI_CACHE_URL``, ``ASGI_CACHE_NAMESPACE`` and the other
``ASGI_CACHE_*`` variables; ``--url`` (the Redis URL; ``--redis-url`` in ``invalidate`` and
``inspect``, where ``--url`` names a page) and ``--namespace`` take precedence. Exit codes: 0
on success, 1 when the operation failed (Redis unreachable, no such entry, invalidation not
applied), 2 for bad input (the message says what is allowed), 141 when the reader of the
output went away (``asgi-cache stats --json | head``; no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence

from .._exceptions import ConfigurationError
from . import _clear, _demo, _diagnose, _health, _inspect, _invalidate, _stats, _top, _worker
from ._base import EXIT_BROKEN_PIPE, EXIT_USAGE, Command, CommandFailed, Parsers, seconds_arg
from ._base import redact as redact

COMMANDS: tuple[Command, ...] = (
    _demo.COMMAND,
    _health.COMMAND,
    _stats.COMMAND,
    _invalidate.COMMAND,
    _clear.COMMAND,
    _inspect.COMMAND,
    _top.COMMAND,
    _diagnose.COMMAND,
    _worker.COMMAND,
)
"""Every subcommand, in the order ``--help`` lists them. A new command is a module with a
``COMMAND`` and a line here."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asgi-cache`` command line and return its exit code.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when omitted.

    Returns:
        0 on success, 1 when the operation failed, 2 for bad input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        code: int = args.run(args, out, err)
    except ConfigurationError as exc:
        print(f"asgi-cache: error: {exc}", file=err)
        return EXIT_USAGE
    except CommandFailed as exc:
        print(f"asgi-cache: {exc}", file=err)
        return exc.code
    except KeyboardInterrupt:
        print("asgi-cache: interrupted", file=err)
        return 130
    except BrokenPipeError:
        # The reader went away (``stats --json | head``): not an error worth a traceback.
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit does not fail on the
    closed pipe again ("Exception ignored ... BrokenPipeError")."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``asgi-cache`` command."""
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument(
        "--namespace",
        default=argparse.SUPPRESS,
        help="key namespace (default: $ASGI_CACHE_NAMESPACE, else 'cache')",
    )
    conn.add_argument(
        "--timeout",
        type=seconds_arg,
        default=argparse.SUPPRESS,
        help="seconds to wait for each Redis operation (default: 5)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[conn])
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help="Redis URL (default: $ASGI_CACHE_URL)"
    )
    parser = argparse.ArgumentParser(
        prog="asgi-cache",
        description="Inspect and steer an asgi-cache namespace, or run the demo app.",
        parents=[common],
        epilog="Exit codes: 0 success, 1 operation failed, 2 bad input.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = Parsers(conn, common)
    for command in COMMANDS:
        command.add(sub, parents).set_defaults(run=command.run)
    return parser
