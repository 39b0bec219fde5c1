"""``asgi-cache inspect``: one entry's metadata (state, TTL, tags, size) and value, or a page's.

``inspect KEY`` describes one entry: a data key (``users:42:profile``) or a full key
(``<namespace>:h:<digest>``); an HTTP entry shows its status and headers. ``inspect --url
https://host/path?q`` goes from a page to its keys: the key the middleware computes for that
URL (for the headers given with ``--header``, none by default, and the Vary names the
middleware remembered for the URL), and every cached variant of the page's path (any query,
host or Vary value), found by the path's tag in a scan of the namespace's HTTP entries.

The key is computed with the middleware's default keying options (tracking parameters such
as ``utm_*`` ignored) from the Vary names the responses sent and the names of the headers
given: a route's own ``vary=[...]`` is not stored, so name its headers with ``--header``
(``--header 'Accept-Language:'`` for a request without one). A middleware configured with
other ``ignored_query_params`` keys differently; the scan by path finds its entries anyway.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .. import Cache
from .._exceptions import ConfigurationError
from ..backends._wire import decode_deps_header
from ..entry_info import describe_entry, format_entry
from ..http.keying import (
    DEFAULT_IGNORED_QUERY_PARAMS,
    KeyOptions,
    RequestKey,
    VaryMemory,
    url_tag,
)
from ..keys import KeySpace, validate_key
from ._base import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    Parsers,
    dump,
    glob_escape,
    page_arg,
    raw_client,
    redis_url_option,
    run_with_cache,
    unreachable,
)

_HEAD_BYTES = 8192  # enough for the dependency header of any entry with a sane tag count


def add(sub: Any, parents: Parsers) -> argparse.ArgumentParser:
    """Add the ``inspect`` parser."""
    inspect: argparse.ArgumentParser = sub.add_parser(
        "inspect",
        parents=[parents.conn],
        help="show one entry's metadata, or a page's keys and variants",
        description="Give a KEY, or --url with a page's absolute URL.",
    )
    inspect.add_argument(
        "key",
        nargs="?",
        help="a data key (users:42:profile) or a full key (<namespace>:h:<digest>)",
    )
    inspect.add_argument(
        "--url",
        dest="page",
        type=page_arg,
        metavar="URL",
        help="a cached page's absolute URL (https://host/path?q): its keys and variants",
    )
    inspect.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="with --url: a request header the key varies on, as the route's vary= names "
        "it; an empty value stands for a request without it (repeatable)",
    )
    redis_url_option(inspect)
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument("--value", action="store_true", help="also print the decoded value")
    return inspect


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the command against the namespace the arguments name."""
    if (args.key is None) == (args.page is None):
        raise ConfigurationError("inspect needs either a KEY or --url URL (not both)")
    if args.page is not None:
        return run_with_cache(_inspect_page, args, out, err)
    return run_with_cache(_inspect, args, out, err)


async def _inspect(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    keys = cache.keys
    full_key = args.key
    if not full_key.startswith((keys.prefix + "d:", keys.prefix + "h:")):
        full_key = keys.data(validate_key(args.key))
    client = raw_client(cache.settings)
    try:
        info = await _describe(client, full_key, cache)
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


async def _describe(client: aioredis.Redis, full_key: str | bytes, cache: Cache) -> dict[str, Any]:
    """`describe_entry` of one key, with each tag marked current or invalidated."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(full_key)
        pipe.pttl(full_key)
        raw, pttl = await pipe.execute()
    name = full_key.decode("utf-8", "replace") if isinstance(full_key, bytes) else full_key
    info = describe_entry(name, raw, pttl, cache.keys, cache.serializer)
    if info.get("tags"):
        versions = await client.mget([t["tag_key"] for t in info["tags"]])
        for tag, current in zip(info["tags"], versions, strict=True):
            recorded = tag.pop("version").encode()
            if isinstance(current, str):
                current = current.encode()
            tag["current"] = current == recorded
        if not all(t["current"] for t in info["tags"]):
            info["state"] = "invalidated"
    return info


def request_key(url: str, headers: list[str]) -> RequestKey:
    """The middleware's key material for a GET of the absolute ``url`` with ``headers``.

    Raises:
        ConfigurationError: ``url`` is not absolute, or a header is not ``Name: value``.
    """
    parts = urlsplit(url)
    if not parts.netloc:
        raise ConfigurationError(
            f"--url {url!r} is not allowed here: inspect needs the page's absolute URL "
            "(https://host/path?query), since its key depends on scheme and host"
        )
    raw_headers = [(b"host", parts.netloc.rpartition("@")[2].encode("idna"))]
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise ConfigurationError(f"--header {header!r} is not allowed: expected 'Name: value'")
        raw_headers.append((name.strip().lower().encode("latin-1"), value.strip().encode()))
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": parts.scheme.lower(),
        "path": unquote(parts.path) or "/",
        "query_string": parts.query.encode("latin-1", "replace"),
        "headers": raw_headers,
    }
    return RequestKey(scope, KeyOptions.build(None, DEFAULT_IGNORED_QUERY_PARAMS))


async def _inspect_page(args: argparse.Namespace, cache: Cache, out: TextIO, err: TextIO) -> int:
    key = request_key(args.page, args.header)
    keys = cache.keys
    client = raw_client(cache.settings)
    try:
        remembered = await client.get(keys.vary(key.url_digest))
        learned, _ = VaryMemory.decode(remembered if isinstance(remembered, bytes) else None)
        # The route's own vary= names are not stored anywhere: they come with --header
        # (an empty value, 'Accept-Language:', stands for a request without the header).
        vary = sorted({*learned, *(h.partition(":")[0].strip().lower() for h in args.header)})
        full_key = keys.http(key.digest(vary))
        this = await _describe(client, full_key, cache)
        variants = [
            await _describe(client, k, cache) for k in await _keys_tagged(client, keys, args.page)
        ]
    except (RedisError, OSError) as exc:
        raise unreachable(cache.settings, exc) from None
    finally:
        await client.aclose(close_connection_pool=True)
    for info in (this, *variants):
        info.pop("value", None)
    report = {
        "page": args.page,
        "url_digest": key.url_digest,
        "vary": vary,
        "learned_vary": list(learned),
        "key": full_key,
        "entry": this,
        "variants": variants,
    }
    if args.json:
        print(dump(report), file=out)
    else:
        print(_format_page(report), file=out)
    if not this["exists"] and not variants:
        print(f"asgi-cache: no cached response of {args.page!r}", file=err)
        return EXIT_FAILED
    return EXIT_OK


async def _keys_tagged(client: aioredis.Redis, keys: KeySpace, page: str) -> list[bytes]:
    """The HTTP entries of the namespace that depend on ``page``'s path tag (a scan)."""
    tag_key = keys.tag(url_tag(page))
    found: list[bytes] = []
    batch: list[bytes] = []

    async def check() -> None:
        async with client.pipeline(transaction=False) as pipe:
            for k in batch:
                pipe.getrange(k, 0, _HEAD_BYTES - 1)
            heads = await pipe.execute(raise_on_error=False)
        for k, head in zip(batch, heads, strict=True):
            parsed = decode_deps_header(head) if isinstance(head, bytes) else None
            if parsed is not None and any(t == tag_key for t, _ in parsed[0]):
                found.append(k)
        batch.clear()

    pattern = glob_escape(keys.http("")) + "*"
    async for k in client.scan_iter(match=pattern, count=500):
        batch.append(k)
        if len(batch) >= 500:
            await check()
    if batch:
        await check()
    return sorted(found)


def _format_page(report: dict[str, Any]) -> str:
    this = report["entry"]
    lines = [
        f"page      {report['page']}",
        f"vary      {', '.join(report['vary']) or 'nothing remembered'}",
        f"key       {report['key']} ({_state(this)})",
        f"variants  {len(report['variants'])} cached for this path (any query, host or "
        "Vary value):",
    ]
    for info in report["variants"]:
        mark = "  <- this request" if info["full_key"] == report["key"] else ""
        lines.append(f"  {info['full_key']}  {_state(info)}{mark}")
    return "\n".join(lines)


def _state(info: dict[str, Any]) -> str:
    if not info["exists"]:
        return "no entry"
    if "error" in info and "state" not in info:
        return f"unreadable: {info['error']}"
    parts = [info["state"]]
    if "status" in info:
        parts.append(f"status {info['status']}")
    parts += [f"age {info['age']:.1f} s", f"{info['size']} bytes"]
    return ", ".join(parts)


COMMAND = Command("inspect", add, run)
"""The ``inspect`` command."""
