"""``asgi-cache inspect``: one entry's metadata (state, TTL, tags, size) and value."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from redis.exceptions import RedisError

from .. import Cache
from ..entry_info import describe_entry, format_entry
from ..keys import validate_key
from ._base import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    Parsers,
    dump,
    raw_client,
    run_with_cache,
    unreachable,
)


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``inspect`` parser."""
    inspect: argparse.ArgumentParser = sub.add_parser(
        "inspect", parents=[parents.common], help="show one entry's metadata"
    )
    inspect.add_argument(
        "key", help="a data key (users:42:profile) or a full key (<namespace>:h:<digest>)"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument("--value", action="store_true", help="also print the decoded value")
    return inspect


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the command against the namespace the arguments name."""
    return run_with_cache(_inspect, args, out, err)


async def _inspect(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    keys = cache.keys
    full_key = args.key
    if not full_key.startswith((keys.prefix + "d:", keys.prefix + "h:")):
        full_key = keys.data(validate_key(args.key))
    client = raw_client(cache.settings)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.get(full_key)
            pipe.pttl(full_key)
            raw, pttl = await pipe.execute()
        info = describe_entry(full_key, raw, pttl, keys, cache.serializer)
        if info.get("tags"):
            versions = await client.mget([t["tag_key"] for t in info["tags"]])
            for tag, current in zip(info["tags"], versions, strict=True):
                recorded = tag.pop("version").encode()
                if isinstance(current, str):
                    current = current.encode()
                tag["current"] = current == recorded
            if not all(t["current"] for t in info["tags"]):
                info["state"] = "invalidated"
    except (RedisError, OSError) as exc:
        raise unreachable(cache.settings, exc) from None
    finally:
        await client.aclose(close_connection_pool=True)
    if not args.value:
        info.pop("value", None)
    if args.json:
        print(dump(info), file=out)
    else:
        print(format_entry(info), file=out)
    if not info["exists"]:
        print(f"asgi-cache: no entry at {full_key!r}", file=err)
        return EXIT_FAILED
    return EXIT_FAILED if "error" in info else EXIT_OK


COMMAND = Command("inspect", add, run)
"""The ``inspect`` command."""
