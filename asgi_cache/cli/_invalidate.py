"""``asgi-cache invalidate``: invalidate tags, keys, page URLs or key prefixes."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from .. import Cache
from .._exceptions import BackendError, ConfigurationError
from ._base import (
    EXIT_OK,
    Command,
    Parsers,
    applied_check,
    page_arg,
    positive_int,
    redis_url_option,
    run_with_cache,
    unreachable,
)


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``invalidate`` parser."""
    inv: argparse.ArgumentParser = sub.add_parser(
        "invalidate",
        parents=[parents.conn],
        help="invalidate tags, keys, URLs or key prefixes",
        description="Each option may be repeated; all given are applied in order: tags, "
        "keys, URLs, prefixes.",
    )
    inv.add_argument("--tag", action="append", default=[], metavar="T", help="a tag")
    inv.add_argument("--key", action="append", default=[], metavar="K", help="a data key")
    inv.add_argument(
        "--url",
        dest="target_urls",
        action="append",
        default=[],
        type=page_arg,
        metavar="PAGE",
        help="a cached page: a path (/users/42) or an http(s) URL; every variant, query "
        "and host of its path (the Redis URL is --redis-url)",
    )
    inv.add_argument(
        "--prefix",
        action="append",
        default=[],
        metavar="P",
        help="every data key starting with P (scans the keyspace)",
    )
    redis_url_option(inv)
    inv.add_argument("--batch", type=positive_int, default=500, help="keys per SCAN batch")
    return inv


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the command against the namespace the arguments name."""
    return run_with_cache(_invalidate, args, out, err)


async def _invalidate(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    if not (args.tag or args.key or args.target_urls or args.prefix):
        raise ConfigurationError(
            "invalidate needs at least one of --tag T, --key K, --url PAGE or --prefix P "
            "(to invalidate every entry of the namespace: asgi-cache clear)"
        )
    check = await applied_check(cache)
    if args.tag:
        live = await cache.invalidate_tags(*args.tag)
        check("tag invalidation")
        print(f"invalidated {len(args.tag)} tag(s); {live} had live entries", file=out)
    if args.key:
        deleted = await cache.delete(*args.key)
        check("key deletion")
        print(f"deleted {deleted} of {len(args.key)} key(s)", file=out)
    for url in args.target_urls:
        live = await cache.invalidate_url(url)
        check(f"invalidation of {url}")
        print(f"invalidated {url} ({'had' if live else 'no'} live responses)", file=out)
    for prefix in args.prefix:
        progress = _Progress(err, f"deleting {prefix}*")
        try:
            deleted = await cache.invalidate_prefix(prefix, batch=args.batch, progress=progress)
        except BackendError as exc:
            progress.done()
            raise unreachable(cache.settings, exc) from None
        progress.done()
        print(f"deleted {deleted} entries under {prefix!r}", file=out)
    return EXIT_OK


class _Progress:
    """A one-line progress indicator on a terminal; silent when the stream is not one."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.live = stream.isatty()
        self.shown = False

    def __call__(self, count: int) -> None:
        if self.live:
            self.stream.write(f"\r{self.label}: {count} deleted")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


COMMAND = Command("invalidate", add, run)
"""The ``invalidate`` command."""
