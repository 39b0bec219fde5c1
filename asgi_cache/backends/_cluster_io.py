"""What the cluster backend sends: pipelines, single-slot scripts, and the checked read.

A cluster pipeline (``transaction=False``) groups its commands by node and sends to every
node at once: one round trip whatever the number of nodes. Scripts go by ``EVALSHA`` with the
digest computed once; a node that answers ``NOSCRIPT`` (a promoted replica: ``SCRIPT LOAD`` is
not replicated, nor survives a restart) gets the script again (``SCRIPT LOAD`` on every
primary) and the affected calls are repeated.

`read_entries` is the read of [`ClusterBackend`][asgi_cache.backends.ClusterBackend]: what
`GET_SCRIPT` does on one node, in two round trips
(entries, then every tag version they record), with the dependency check done here. A
Sentinel replica's reads use it too: the read script would write (unlink) on a replica.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from ._scripts import (
    CHECK_TAG_SCRIPT,
    EXTEND_LOCK_SCRIPT,
    FENCED_SET_SCRIPT,
    RELEASE_LOCK_SCRIPT,
    UNLINK_IF_SAME_SCRIPT,
    VERSIONS_SCRIPT,
)
from ._wire import decode_deps_header
from .base import Dependency

Client = RedisCluster | aioredis.Redis
"""A cluster client, or a plain one (a Sentinel replica's reads use `read_entries`)."""


class Script(NamedTuple):
    """A Lua script and its ``EVALSHA`` digest."""

    text: str
    sha: str


def script(text: str) -> Script:
    """``text`` with its digest (SHA1: how Redis names scripts)."""
    return Script(text, hashlib.sha1(text.encode()).hexdigest())


CHECK_TAG = script(CHECK_TAG_SCRIPT)
VERSIONS = script(VERSIONS_SCRIPT)
EXTEND = script(EXTEND_LOCK_SCRIPT)
RELEASE = script(RELEASE_LOCK_SCRIPT)
FENCED_SET = script(FENCED_SET_SCRIPT)
UNLINK_IF_SAME = script(UNLINK_IF_SAME_SCRIPT)


async def pipeline(client: Client, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send ``commands`` in one cluster pipeline; an item that failed is its exception."""
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))


async def run_scripts(client: Client, lua: Script, calls: Sequence[Sequence[Any]]) -> list[Any]:
    """Run the one-key script ``lua`` once per ``(key, *args)`` of ``calls`` in one
    pipeline; return the replies, or raise the first failure."""
    results = await pipeline(client, [("EVALSHA", lua.sha, 1, *c) for c in calls])
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        await client.script_load(lua.text)  # on every primary
        again = await pipeline(client, [("EVALSHA", lua.sha, 1, *calls[i]) for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def run_script(
    client: RedisCluster, lua: Script, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """Run ``lua`` once on ``keys`` (one slot) with ``args``."""
    try:
        return await client.evalsha(lua.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.eval(lua.text, len(keys), *keys, *args)


async def read_entries(client: Client, keys: Sequence[str], *, tagged: bool = False) -> list[Any]:
    """Read ``keys`` and check the tag versions their entries record.

    Each item is the entry's bytes without its dependency header when every recorded tag
    still holds its version (``tagged``: a tuple of those bytes and the dependencies); ``None``
    on a miss or when a tag moved on (the entry is then
    unlinked, unless it changed meanwhile); the value whole when it has no well-formed header
    (foreign data, for the caller to reject); or an exception when the entry, or a tag it
    records, could not be read (nothing then vouches for the entry).
    """
    raws = await pipeline(client, [("GET", k) for k in keys])
    headers: list[tuple[list[Dependency], int] | None] = []
    tag_keys: dict[str, None] = {}  # each tag read once for every entry recording it
    for raw in raws:
        header = decode_deps_header(raw) if isinstance(raw, bytes) else None
        headers.append(header)
        for tag_key, _ in header[0] if header else ():
            tag_keys[tag_key] = None
    current: dict[str, Any] = {}
    if tag_keys:
        found = await pipeline(client, [("GET", t) for t in tag_keys])
        current = dict(zip(tag_keys, found, strict=True))
    results: list[Any] = []
    stale: list[tuple[str, bytes]] = []
    for key, raw, header in zip(keys, raws, headers, strict=True):
        if header is None:  # a miss, a failure, or a foreign value
            results.append(raw)
            continue
        deps, offset = header
        failed = next((current[t] for t, _ in deps if isinstance(current[t], Exception)), None)
        if failed is not None:
            results.append(failed)
        elif all(current[t] == v.encode() for t, v in deps):
            results.append((raw[offset:], tuple(deps)) if tagged else raw[offset:])
        else:
            results.append(None)
            stale.append((key, raw))
    if stale:
        # Best effort, like the miss it stands for: a failure here is the next read's to repeat.
        with contextlib.suppress(RedisError, RedisClusterException, OSError):
            await run_scripts(client, UNLINK_IF_SAME, stale)
    return results
