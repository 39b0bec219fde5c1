"""Describe a stored entry for people: what ``asgi-cache inspect KEY`` prints.

It reads the bytes exactly as Redis holds them (dependency header, then the entry) and never
changes anything: unlike a cache read, inspecting an invalidated entry does not delete it.
An HTTP entry is decoded as the middleware serves it: status, headers (the ETag included),
whether the body is stored gzip-coded. Its URL is not stored in it (the key is a digest);
``asgi-cache inspect --url`` goes the other way, from a page to its keys.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson

from ._entries import MAGIC, CorruptEntry, EntryKind, decode_entry, model_name
from .backends._wire import decode_deps_header
from .codec import Serializer
from .http.responses import FLAG_GZIP, StoredResponse
from .keys import ALL_TAG, URL_TAG_PREFIX, KeySpace

_VALUE_PREVIEW = 2000


def describe_entry(
    full_key: str,
    raw: bytes | None,
    pttl_ms: int,
    keys: KeySpace,
    serializer: Serializer,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Describe the bytes ``raw`` stored under ``full_key``.

    Args:
        full_key: The Redis key.
        raw: Its value as stored, or ``None`` when the key does not exist.
        pttl_ms: Redis ``PTTL`` of the key (milliseconds; negative when none).
        keys: The namespace's key space (to name tags and the caller's key).
        serializer: Decodes the value for the ``value`` field.
        now: Unix time to compute ages and deadlines against; the current time by default.

    Returns:
        A JSON-serializable dict: ``exists``, ``size``, ``ttl_left``, ``tags`` (each with its
        ``tag_key`` and recorded ``version``), ``format_version``, ``kind``, the creation
        time, fresh and stale deadlines, ``state`` (``fresh``, ``stale`` or ``expired``),
        ``load_time_ms``, body and extra sizes and, for values, the decoded ``value``. A value
        that is not a valid entry gets an ``error`` instead of the entry fields.
    """
    now = time.time() if now is None else now
    info: dict[str, Any] = {"full_key": full_key, "exists": raw is not None}
    if full_key.startswith(keys.prefix + "d:"):
        info["key"] = keys.user_key(full_key)
    if raw is None:
        return info
    info["size"] = len(raw)
    info["ttl_left"] = round(pttl_ms / 1000, 3) if pttl_ms >= 0 else None
    parsed = decode_deps_header(raw)
    body = raw
    if parsed is not None:
        deps, offset = parsed
        body = raw[offset:]
        info["tags"] = [
            {"tag": _tag_name(tag_key, keys), "tag_key": tag_key, "version": version}
            for tag_key, version in deps
        ]
    if body[:2] == MAGIC and len(body) > 2:
        info["format_version"] = body[2]
    try:
        entry = decode_entry(body, full_key)
    except CorruptEntry as exc:
        info["error"] = f"not a valid asgi-cache entry: {exc}"
        return info
    if entry.is_fresh(now):
        state = "fresh"
    elif now < entry.stale_until:
        state = "stale"
    else:
        state = "expired"
    info.update(
        kind=entry.kind.name.lower(),
        state=state,
        created_at=_iso(entry.created_at),
        age=round(entry.age(now), 3),
        fresh_until=_iso(entry.fresh_until),
        fresh_for=round(entry.fresh_until - now, 3),
        stale_until=_iso(entry.stale_until),
        stale_for=round(entry.stale_until - now, 3),
        load_time_ms=round(entry.load_time * 1000, 3),
        body_bytes=len(entry.body),
        extra_bytes=len(entry.extra),
    )
    if entry.kind is EntryKind.RESPONSE:
        _describe_response(entry, info)
    elif entry.kind is not EntryKind.NEGATIVE:
        model = model_name(entry)
        if model is not None:
            info["model"] = model
        try:
            info["value"] = serializer.decode(entry)
        except CorruptEntry as exc:
            info["error"] = f"the value does not decode: {exc}"
    return info


def _describe_response(entry: Any, info: dict[str, Any]) -> None:
    stored = StoredResponse.from_entry(entry)
    if stored is None:
        info["error"] = "not a valid HTTP response entry"
        return
    info["status"] = stored.status
    info["headers"] = [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, value in stored.headers_with_etag()
    ]
    info["gzip"] = bool(stored.flags & FLAG_GZIP)


def format_entry(info: dict[str, Any]) -> str:
    """Render `describe_entry`'s dict as aligned ``name  value`` lines."""
    rows: list[tuple[str, Any]] = [("key", info.get("key", info["full_key"]))]
    rows.append(("full key", info["full_key"]))
    if not info["exists"]:
        rows.append(("exists", "no"))
        return _render(rows)
    ttl = info["ttl_left"]
    rows += [
        ("size", f"{info['size']} bytes"),
        ("ttl left", "none" if ttl is None else f"{ttl:.3f} s"),
    ]
    if "format_version" in info:
        rows.append(("format", f"version {info['format_version']}"))
    if "error" in info and "kind" not in info:
        rows.append(("error", info["error"]))
        return _render(rows)
    rows += [
        ("kind", info["kind"]),
        ("state", info["state"]),
        ("created", f"{info['created_at']} ({info['age']:.3f} s ago)"),
        ("fresh until", f"{info['fresh_until']} ({_relative(info['fresh_for'])})"),
        ("stale until", f"{info['stale_until']} ({_relative(info['stale_for'])})"),
        ("load time", f"{info['load_time_ms']:.3f} ms"),
        ("body", f"{info['body_bytes']} bytes"),
        ("extra", f"{info['extra_bytes']} bytes"),
    ]
    if "model" in info:
        rows.append(("model", info["model"]))
    if "status" in info:
        rows.append(("status", info["status"]))
        rows += [("header", f"{name}: {value}") for name, value in info["headers"]]
        if info["gzip"]:
            rows.append(("body coding", "gzip (as stored by the middleware)"))
    tags = info.get("tags") or []
    for tag in tags:
        current = tag.get("current")
        mark = "" if current is None else (" (current)" if current else " (INVALIDATED)")
        rows.append(("tag", f"{tag['tag']}{mark}"))
    if "error" in info:
        rows.append(("error", info["error"]))
    if "value" in info:
        text = orjson.dumps(info["value"], default=repr).decode()
        if len(text) > _VALUE_PREVIEW:
            text = text[:_VALUE_PREVIEW] + f"... ({len(text)} characters)"
        rows.append(("value", text))
    return _render(rows)


def _render(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _tag_name(tag_key: str, keys: KeySpace) -> str:
    tag_prefix = keys.prefix + "t:"
    name = tag_key[len(tag_prefix) :] if tag_key.startswith(tag_prefix) else tag_key
    if name.startswith(URL_TAG_PREFIX):
        return f"{name} (its page's path)"
    return "(whole namespace)" if name == ALL_TAG else name


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def _relative(seconds: float) -> str:
    return f"in {seconds:.3f} s" if seconds >= 0 else f"{-seconds:.3f} s ago"
