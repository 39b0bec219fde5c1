"""Stored parts of a response (RFC 9111 sections 3.3 and 3.4): the reads and answers around
the pure rules of `ranges`.

A response's parts live under their own key (`partial_key` of the complete
response's key), so a lookup of the complete response can never find a part. They are read
only for a range request that found no complete response (`answer_from_parts`) and
when the origin answers a range miss with a 206 (`combined_with_held`).
"""

from __future__ import annotations

from .context import HttpContext
from .ranges import combine, partial_key
from .responder import Responder
from .responses import StoredResponse
from .rules import RequestDirectives
from .serving import Standing, standing
from .status import CacheStatus


async def read_parts(ctx: HttpContext, full_key: str) -> StoredResponse | None:
    """The parts stored for the response under ``full_key``, if any."""
    entry = await ctx.store.read(partial_key(full_key))
    stored = StoredResponse.from_entry(entry) if entry is not None else None
    return stored if stored is not None and stored.status == 206 else None


async def answer_from_parts(
    ctx: HttpContext, responder: Responder, full_key: str, directives: RequestDirectives
) -> bool:
    """Answer a range request from the stored parts when they are fresh and hold every
    range it asks for (section 3.3: "the request is partial and specifies a range wholly
    within the incomplete response"); ``False`` when they cannot (nothing sent)."""
    stored = await read_parts(ctx, full_key)
    if stored is None:
        return False
    now = ctx.clock()
    if standing(stored, now, directives) is not Standing.FRESH:
        return False
    if not await responder.serve_part(stored, CacheStatus.fresh_hit(stored.fresh_until - now)):
        return False
    ctx.store.stats.hit()
    return True


async def combined_with_held(
    ctx: HttpContext, full_key: str, part: StoredResponse
) -> StoredResponse | None:
    """What to store after the origin's 206 ``part``: it combined with the fresh parts held
    for the same representation (`combine`); ``None`` if it describes no
    part of its body."""
    held = await read_parts(ctx, full_key)
    if held is not None and ctx.clock() >= held.fresh_until:
        held = None  # a stale part is not combined (nor revalidated): the new one replaces it
    return combine(held, part, max_bytes=ctx.options.max_body_bytes)
