"""``asgi-cache health``: probe the backend (status, latency, memory, policy, breaker)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from .. import Cache
from ._base import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    Parsers,
    dump,
    memory_text,
    redact,
    run_with_cache,
    table,
)


async def _health(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    report = await cache.health()
    if report.get("status") != "down":
        # The first probe paid for connecting; report the round trip an app would see.
        report = await cache.health()
    code = EXIT_FAILED if report.get("status") == "down" else EXIT_OK
    if args.json:
        print(dump(report), file=out)
        return code
    rows: list[tuple[str, Any]] = [
        ("status", report["status"]),
        ("backend", f"{report['backend']} {report.get('version') or ''}".rstrip()),
        ("url", redact(cache.settings.url)),
        ("namespace", report["namespace"]),
    ]
    if report["status"] == "down":
        rows.append(("error", report.get("error", "")))
    else:
        memory = memory_text(report.get("used_memory"), report.get("maxmemory"))
        rows += [
            ("latency", f"{report['latency_ms']:.2f} ms"),
            ("memory", memory),
            ("policy", report.get("maxmemory_policy") or "-"),
        ]
    if "breaker" in report:
        rows.append(("breaker", report["breaker"]))
    rows.append(("warnings", "; ".join(report.get("warnings") or []) or "-"))
    table(rows, out)
    return code


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``health`` parser."""
    health: argparse.ArgumentParser = sub.add_parser(
        "health", parents=[parents.common], help="probe the backend"
    )
    health.add_argument("--json", action="store_true", help="print JSON")
    return health


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the command against the namespace the arguments name."""
    return run_with_cache(_health, args, out, err)


COMMAND = Command("health", add, run)
"""The ``health`` command."""
