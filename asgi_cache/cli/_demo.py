"""``asgi-cache demo``: run the demo users service and its workload, with and without cache."""

from __future__ import annotations

import argparse
import importlib
from typing import Any, TextIO

from ._base import (
    EXIT_USAGE,
    Command,
    CommandFailed,
    Parsers,
    fraction_arg,
    non_negative_int,
    non_negative_seconds,
    port_arg,
    positive_int,
    seconds_arg,
)


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``demo`` parser (it takes no Redis options: the demo reads ASGI_CACHE_*)."""
    demo: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the demo users service, benchmark it with and without the cache",
        description="Start the demo FastAPI app under uvicorn, drive a short workload at it "
        "once without and once with the cache, print the comparison, then keep serving.",
    )
    _options(demo)
    return demo


def _options(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--port", type=port_arg, default=0, help="port on 127.0.0.1 (default: free)")
    demo.add_argument(
        "--once", action="store_true", help="exit after the comparison instead of serving"
    )
    demo.add_argument(
        "--requests", type=positive_int, default=600, help="measured requests per run"
    )
    demo.add_argument(
        "--warmup",
        type=non_negative_int,
        default=None,
        help="unmeasured requests that warm the cache first (default: twice --requests)",
    )
    demo.add_argument(
        "--users", type=positive_int, default=None, help="rows in the user table (default: 100)"
    )
    demo.add_argument("--concurrency", type=positive_int, default=20, help="parallel clients")
    demo.add_argument(
        "--think",
        type=non_negative_seconds,
        default=0.1,
        help="mean pause of each client between requests, in seconds (default: 0.1)",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the workload and data")
    demo.add_argument(
        "--write-ratio",
        type=fraction_arg,
        default=0.03,
        help="share of requests that are writes (default: 0.03)",
    )
    demo.add_argument(
        "--views",
        type=non_negative_int,
        default=300,
        help="page-view counts sent after the workload, saved with write-behind (default 300)",
    )
    demo.add_argument(
        "--time-limit", type=seconds_arg, default=60.0, help="longest time per run, in seconds"
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the demo; it prints its own report."""
    # Loaded on demand, not imported at the top: the demo needs the ``demo`` extra
    # (FastAPI, uvicorn, SQLAlchemy), which the other commands do without.
    try:
        demo = importlib.import_module("asgi_cache.demo.run")
    except ImportError as exc:
        raise CommandFailed(
            f"the demo needs its extra dependencies ({exc.name} is missing): "
            "pip install 'asgi-cache[demo]'",
            EXIT_USAGE,
        ) from None
    code: int = demo.run_demo(args)
    return code


COMMAND = Command("demo", add, run)
"""The ``demo`` command."""
