"""Instructions per in-process HTTP hit, for comparing revisions of the package.

``python -m benchmarks.hit_instructions --url redis://127.0.0.1:6379/9 [--l1-ttl 30]``
runs itself under ``valgrind --tool=callgrind`` twice, with 200 and 1,200 hits of one
``@cache.response`` route behind ``CacheMiddleware`` (ASGI calls, no sockets), and prints
the difference divided by 1,000: start-up, imports and warm-up cancel out, and instruction
counts do not depend on what else the machine runs (wall time on a shared 2-core machine
does). To compare two revisions, run the same command with ``PYTHONPATH=<checkout>`` for
each (an old checkout of the package needs only its own ``asgi_cache/`` directory; compile
it first, ``python -m compileall -q <checkout>/asgi_cache``, so that compiling is not
counted) and give each its own Redis database, as entry formats differ between revisions.

The script only uses names every revision has had since the first wave (``Cache.from_url``,
``cache.response``, ``CacheMiddleware``), so it runs unchanged on all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_cache import Cache, CacheMiddleware

from .callgrind import instructions

FEW, MANY = 200, 1200


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/u",
        "raw_path": b"/u",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }


async def drive(url: str, hits: int, l1_ttl: float) -> None:
    """Warm one entry, then serve ``hits`` hits of it (each checked to be a hit)."""
    options: dict[str, Any] = {"op_timeout": 5.0, "namespace": "hitcount"}
    if l1_ttl:
        options["l1_ttl"] = l1_ttl
    cache = Cache.from_url(url, **options)

    @cache.response(ttl=600)
    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"id": 1, "name": "x" * 50})

    app = CacheMiddleware(Starlette(routes=[Route("/u", user)]), cache=cache)
    outcomes: list[bytes | None] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            outcomes.append(dict(message["headers"]).get(b"x-cache"))

    async with cache:
        for _ in range(3):
            await app(_scope(), receive, send)
        outcomes.clear()
        for _ in range(hits):
            await app(_scope(), receive, send)
    if set(outcomes) != {b"HIT"}:
        raise SystemExit(f"not every request was a hit: {set(outcomes)}")


def count(url: str, hits: int, l1_ttl: float) -> int:
    """Instructions of one run of ``hits`` hits under callgrind."""
    return instructions(
        "benchmarks.hit_instructions", "--url", url, "--l1-ttl", str(l1_ttl), "--hits", str(hits)
    )


def main(argv: list[str] | None = None) -> int:
    """Print the instructions per hit (or, with ``--hits``, just serve that many)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hit_instructions")
    parser.add_argument("--url", default="memory://", help="the cache URL (default memory://)")
    parser.add_argument("--l1-ttl", type=float, default=0.0, help="L1 lifetime; 0 = off")
    parser.add_argument("--hits", type=int, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args(argv)
    if args.hits is not None:
        asyncio.run(drive(args.url, args.hits, args.l1_ttl))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 1
    few = count(args.url, FEW, args.l1_ttl)
    many = count(args.url, MANY, args.l1_ttl)
    per_hit = (many - few) // (MANY - FEW)
    print(f"url={args.url} l1_ttl={args.l1_ttl}: {per_hit:,} instructions per hit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
