"""What every ``asgi-cache`` command shares: exit codes, argument types, settings, output.

A command is a `Command`: its name, a function adding its parser, and a function
running it. Commands that talk to a namespace open a [`Cache`][asgi_cache.Cache] with
`run_with_cache`; the others (``demo``) run on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TextIO
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis

from .. import Cache
from .._exceptions import ConfigurationError
from .._urls import mask_url
from .._validate import Check, number, seconds, whole
from ..settings import CacheSettings

EXIT_OK = 0
"""The command did what was asked."""
EXIT_FAILED = 1
"""The command ran but failed: Redis unreachable, no such entry, invalidation not applied."""
EXIT_USAGE = 2
"""Bad input: unknown option, invalid value, or a feature this install does not have."""
EXIT_BROKEN_PIPE = 141
"""The reader of the output went away (``asgi-cache stats --json | head``): 128 + SIGPIPE,
as a shell reports a command killed by it."""


class CommandFailed(Exception):
    """A command cannot complete; the message is printed and the exit code returned."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Parsers(NamedTuple):
    """The parent parsers a command's own parser may inherit options from."""

    conn: argparse.ArgumentParser
    """``--namespace`` and ``--timeout``."""
    common: argparse.ArgumentParser
    """``conn`` plus ``--url`` (the Redis URL)."""


CacheCommand = Callable[[argparse.Namespace, Cache, TextIO, TextIO], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand of ``asgi-cache``."""

    name: str
    """What is typed after ``asgi-cache``."""
    add: Callable[[Any, Parsers], argparse.ArgumentParser]
    """Adds the command's parser to the subparsers and returns it."""
    run: Callable[[argparse.Namespace, TextIO, TextIO], int]
    """Runs the parsed command and returns its exit code."""


def run_with_cache(
    command: CacheCommand, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    """Run ``command`` with a [`Cache`][asgi_cache.Cache] built from the arguments, closed after."""
    settings = settings_from(args)

    async def run() -> int:
        cache = Cache(settings)
        try:
            return await command(args, cache, out, err)
        finally:
            await cache.aclose()

    return asyncio.run(run())


# -- argument types -------------------------------------------------------------------------


def argument(convert: Callable[[str], Any], check: Check) -> Callable[[str], Any]:
    """An argparse type: ``convert(raw)``, accepted when it passes ``check``.

    argparse names the option itself ("argument --batch: '0' is not allowed: ..."), so the
    message quotes only what was typed, in the grammar of every other check.
    """

    def parse(raw: str) -> Any:
        try:
            value = convert(raw)
        except ValueError:
            value = None
        if value is None or not check.ok(value):
            raise argparse.ArgumentTypeError(f"{raw!r} is not allowed: expected {check.expected}")
        return value

    parse.__doc__ = f"An argparse type accepting {check.expected}."
    return parse


positive_int = argument(int, whole())
non_negative_int = argument(int, whole(minimum=0))
seconds_arg = argument(float, seconds())
non_negative_seconds = argument(float, seconds(zero=True))
_port_number = argument(int, Check(lambda v: v <= 65535, "a port 0-65535"))


def port_arg(raw: str) -> int:
    """An argparse type: a TCP port 0-65535 (0 picks a free one)."""
    # Two messages: a non-number is told what a number is, a number what a port is.
    non_negative_int(raw)
    value: int = _port_number(raw)
    return value


fraction_arg = argument(float, number(minimum=0, below=1, words="a fraction 0-0.99"))

_REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "memory", "redis+", "rediss+")


def page_arg(raw: str) -> str:
    """An argparse type: a cached page, a path starting with ``/`` or an http(s) URL.

    A Redis URL is refused with a pointer to ``--redis-url`` (in these commands ``--url``
    means a page), and so is a path without its leading ``/``.
    """
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme.startswith(_REDIS_SCHEMES):
        raise argparse.ArgumentTypeError(
            f"{raw!r} is a Redis URL, but --url names a cached page here (a path such as "
            "/users/42, or an http:// or https:// URL); give the Redis URL with --redis-url "
            "or ASGI_CACHE_URL"
        )
    if raw.startswith("/") or (scheme in ("http", "https") and parts.netloc):
        return raw
    raise argparse.ArgumentTypeError(
        f"{raw!r} is not allowed: expected a page path starting with / (such as /users/42) "
        "or an http:// or https:// URL"
    )


def redis_url_option(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``--redis-url`` option, for commands whose ``--url`` is a page."""
    parser.add_argument(
        "--redis-url",
        dest="url",
        default=argparse.SUPPRESS,
        help="Redis URL (here --url names a page; default: $ASGI_CACHE_URL)",
    )
    parser.set_defaults(redis_option="--redis-url")


# -- plumbing -------------------------------------------------------------------------------


def settings_from(args: argparse.Namespace) -> CacheSettings:
    """A command's settings: ``ASGI_CACHE_*``, then ``--url``, ``--namespace``, ``--timeout``."""
    overrides: dict[str, Any] = {}
    if getattr(args, "url", None) is not None:
        overrides["url"] = args.url
    if getattr(args, "namespace", None) is not None:
        overrides["namespace"] = args.namespace
    timeout = getattr(args, "timeout", 5.0)
    # A person at a shell can wait longer than a request path should.
    overrides["op_timeout"] = overrides["connect_timeout"] = timeout
    overrides["pool_timeout"] = timeout
    settings = CacheSettings.from_env(os.environ, **overrides)
    if settings.backend_scheme == "memory":
        option = getattr(args, "redis_option", "--url")
        raise ConfigurationError(
            f"url={settings.url!r} is not allowed here: a memory:// cache lives inside the "
            f"app's own process; give the Redis URL with {option} or ASGI_CACHE_URL"
        )
    return settings


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for printing."""
    return mask_url(url)


def raw_client(settings: CacheSettings) -> aioredis.Redis:
    """A plain redis-py client for commands that read keys the data API does not expose."""
    return aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.op_timeout,
        socket_connect_timeout=settings.connect_timeout,
    )


async def applied_check(cache: Cache) -> Callable[[str], None]:
    """Fail unless Redis answers; return a check that fails if Redis failed since.

    The data API fails open inside an app (counts the error and returns 0, queues an
    invalidation); an operator at a shell must know when a command was not applied.

    Raises:
        CommandFailed: Redis is down.
    """
    status = await cache.health()
    if status["status"] == "down":
        raise CommandFailed(f"cannot use Redis at {redact(cache.settings.url)}: {status['error']}")
    errors = cache.stats()["errors"]

    def check(what: str) -> None:
        if cache.stats()["errors"] > errors:
            raise CommandFailed(f"{what} was not applied: Redis failed during the operation")

    return check


def unreachable(settings: CacheSettings, exc: object) -> CommandFailed:
    """The failure to raise when Redis cannot be used (the URL is printed masked)."""
    return CommandFailed(f"cannot use Redis at {redact(settings.url)}: {exc}")


def dump(data: Any) -> str:
    """``data`` as indented JSON (non-JSON values as their ``str``)."""
    return orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode()


def memory_text(used: Any, limit: Any) -> str:
    """``1.2 MiB used of 256.0 MiB (0.5%)``, or ``... of no limit`` when maxmemory is 0."""
    text = f"{size_text(used)} used of {size_text(limit) if limit else 'no limit'}"
    if isinstance(used, int) and isinstance(limit, int) and limit:
        text += f" ({used / limit:.1%})"
    return text


def size_text(n: Any) -> str:
    """``n`` bytes in B/KiB/MiB/GiB, or ``-`` when unknown."""
    if not isinstance(n, int):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def table(rows: Sequence[tuple[str, Any]], out: TextIO) -> None:
    """Print ``rows`` as two aligned columns."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=out)


def glob_escape(text: str) -> str:
    """``text`` with SCAN ``MATCH`` wildcards escaped, so it matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
