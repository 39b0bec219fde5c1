"""Value serializers and the versioned stored-entry format.

An entry is what the :class:`~asgi_cache.Cache` stores under one key: a fixed binary header
followed by an opaque ``extra`` block (used by the HTTP middleware for status and headers) and
the body. The header carries everything later features need without a second round trip::

    offset size field
    0      2    magic b"\\xacE"
    2      1    format version (1)
    3      1    kind (value-json, value-msgpack, raw bytes, raw str, negative, response)
    4      8    fingerprint of the full Redis key the entry was written under
    12     8    created at (unix seconds, float64)
    20     8    fresh until (unix seconds)
    28     8    stale until (unix seconds; the key's physical expiry)
    36     8    load time (seconds the loader or origin took; used by early refresh)
    44     1    flags (bit 0: the JSON body holds tagged non-JSON types to revive)
    45     4    length of ``extra``
    49     ...  extra, then body

Values are never pickled. JSON (orjson) is the default serializer; ``bytes``, ``datetime``,
``date``, ``time``, ``UUID``, ``Decimal`` and tuples survive a round trip through tagged
objects (``{"__ac__": type, "v": value}``), decoded only when the entry's flag says so.
Anything that is not well-formed is reported as :class:`CorruptEntry`, which callers treat as
a miss.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import hashlib
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

import orjson

from ._exceptions import ConfigurationError, SerializationError

MAGIC: Final = b"\xacE"
FORMAT_VERSION: Final = 1
_HEADER = struct.Struct(">2sBB8sddddBI")
HEADER_SIZE: Final = _HEADER.size
_FLAG_TAGGED = 1
_TAG = "__ac__"


class CorruptEntry(Exception):
    """Stored bytes are not a valid entry for this key (truncated, foreign or moved)."""


class EntryKind(enum.IntEnum):
    """What an entry's body holds."""

    JSON = 1
    """A value encoded with orjson."""
    MSGPACK = 2
    """A value encoded with msgpack."""
    BYTES = 3
    """A ``bytes`` value stored raw."""
    STR = 4
    """A ``str`` value stored as UTF-8."""
    NEGATIVE = 5
    """A cached "not found": the loader returned ``None``."""
    RESPONSE = 6
    """An HTTP response: status and headers in ``extra``, the raw body as body."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A decoded stored entry.

    ``body`` is the raw body bytes; use :meth:`Serializer.decode` (via the cache) for values.
    """

    kind: EntryKind
    body: bytes
    created_at: float
    fresh_until: float
    stale_until: float
    load_time: float = 0.0
    extra: bytes = b""
    tagged: bool = False

    def is_fresh(self, now: float) -> bool:
        """Whether the entry is within its freshness lifetime at ``now``."""
        return now < self.fresh_until

    def age(self, now: float) -> float:
        """Seconds since the entry was created (never negative)."""
        return max(0.0, now - self.created_at)


@lru_cache(maxsize=4096)  # a hit checks the fingerprint of a key it has usually seen before
def fingerprint(full_key: str) -> bytes:
    """Eight bytes identifying the key an entry belongs to."""
    return hashlib.blake2b(full_key.encode(), digest_size=8).digest()


def encode_entry(entry: Entry, full_key: str) -> bytes:
    """Encode ``entry`` for storage under ``full_key``."""
    header = _HEADER.pack(
        MAGIC,
        FORMAT_VERSION,
        entry.kind,
        fingerprint(full_key),
        entry.created_at,
        entry.fresh_until,
        entry.stale_until,
        entry.load_time,
        _FLAG_TAGGED if entry.tagged else 0,
        len(entry.extra),
    )
    return b"".join((header, entry.extra, entry.body))


def decode_entry(data: bytes | memoryview, full_key: str) -> Entry:
    """Decode bytes stored under ``full_key``.

    Raises:
        CorruptEntry: The bytes are not an entry of this format, are truncated, or were
            written under another key.
    """
    if len(data) < HEADER_SIZE:
        raise CorruptEntry("truncated header")
    try:
        magic, version, kind, fp, created, fresh, stale, load, flags, extra_len = (
            _HEADER.unpack_from(data)
        )
        kind = EntryKind(kind)
    except (struct.error, ValueError) as exc:
        raise CorruptEntry(str(exc)) from None
    if magic != MAGIC or version != FORMAT_VERSION:
        raise CorruptEntry("unknown magic or format version")
    if fp != fingerprint(full_key):
        raise CorruptEntry("entry belongs to another key")
    end_extra = HEADER_SIZE + extra_len
    if end_extra > len(data):
        raise CorruptEntry("truncated extra block")
    view = memoryview(data)
    return Entry(
        kind=kind,
        body=bytes(view[end_extra:]),
        created_at=created,
        fresh_until=fresh,
        stale_until=stale,
        load_time=load,
        extra=bytes(view[HEADER_SIZE:end_extra]),
        tagged=bool(flags & _FLAG_TAGGED),
    )


class Serializer:
    """Turns Python values into entry bodies and back.

    ``str`` and ``bytes`` are stored raw; everything else goes through orjson or msgpack.
    Supported: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, lists, tuples (come
    back as tuples), dicts with ``str`` keys, ``datetime``/``date``/``time``, ``UUID``,
    ``Decimal``, dataclasses and pydantic models (both come back as dicts; ``cache.aside``
    rebuilds them from the loader's annotation).
    """

    def __init__(self, name: str) -> None:
        if name not in ("json", "msgpack"):
            raise ConfigurationError(
                f"serializer={name!r} is not allowed: expected json or msgpack"
            )
        self.name = name
        self._msgpack: Any = None
        if name == "msgpack":
            try:
                import msgpack
            except ImportError:  # pragma: no cover - depends on the environment
                raise ConfigurationError(
                    "serializer='msgpack' needs the msgpack package: "
                    "pip install 'asgi-cache[msgpack]'"
                ) from None
            self._msgpack = msgpack

    def encode(self, value: Any, *, key: str = "?") -> tuple[EntryKind, bytes, bool]:
        """Encode ``value``; return its kind, body and whether it holds tagged types.

        Raises:
            SerializationError: The value (or something inside it) cannot be encoded; the
                message names the key and the offending type.
        """
        if type(value) is bytes:
            return EntryKind.BYTES, value, False
        if type(value) is str:
            return EntryKind.STR, value.encode(), False
        state = _EncodeState()
        try:
            if self._msgpack is not None:
                body = self._msgpack.packb(
                    _pretag(value, state), default=state.default, datetime=False
                )
                return EntryKind.MSGPACK, body, state.tagged
            body = orjson.dumps(
                _pretag(value, state),
                default=state.default,
                option=orjson.OPT_PASSTHROUGH_DATETIME,
            )
        except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError) as exc:
            bad = state.bad_type or type(value).__name__
            raise SerializationError(
                f"cannot cache the value for key {key!r}: {bad} is not serializable with the "
                f"{self.name} serializer ({exc})"
            ) from None
        return EntryKind.JSON, body, state.tagged

    def _msgpack_module(self) -> Any:
        if self._msgpack is None:
            import msgpack

            self._msgpack = msgpack
        return self._msgpack

    def decode(self, entry: Entry) -> Any:
        """Decode the value held by ``entry``.

        Raises:
            CorruptEntry: The body does not decode.
        """
        kind = entry.kind
        try:
            if kind is EntryKind.BYTES:
                return entry.body
            if kind is EntryKind.STR:
                return entry.body.decode()
            if kind is EntryKind.JSON:
                value = orjson.loads(entry.body)
            elif kind is EntryKind.MSGPACK:
                value = self._msgpack_module().unpackb(entry.body, strict_map_key=False)
            else:
                return None
        except Exception as exc:
            raise CorruptEntry(f"body does not decode: {exc}") from None
        return _revive(value) if entry.tagged else value


class _EncodeState:
    __slots__ = ("bad_type", "tagged")

    def __init__(self) -> None:
        self.tagged = False
        self.bad_type: str | None = None

    def default(self, obj: Any) -> Any:
        encoder = _ENCODERS.get(type(obj))
        if encoder is not None:
            self.tagged = True
            return {_TAG: encoder[0], "v": encoder[1](obj)}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return _pretag({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, self)
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return _pretag(dump(mode="python"), self)
        if isinstance(obj, enum.Enum):
            return obj.value
        self.bad_type = type(obj).__name__
        raise TypeError(f"type {type(obj).__name__} is not supported")


def _pretag(value: Any, state: _EncodeState) -> Any:
    # orjson and msgpack turn tuples into arrays, and orjson turns UUIDs into strings, without
    # asking ``default``; tag those before encoding so they come back as what they were.
    t = type(value)
    if t is tuple:
        state.tagged = True
        return {_TAG: "tuple", "v": [_pretag(v, state) for v in value]}
    if t is uuid.UUID:
        state.tagged = True
        return {_TAG: "uuid", "v": str(value)}
    if t is list:
        return [_pretag(v, state) for v in value] if _needs_pretag(value) else value
    if t is dict:
        return {k: _pretag(v, state) for k, v in value.items()} if _needs_pretag(value) else value
    return value


def _needs_pretag(value: Any) -> bool:
    items = value.values() if type(value) is dict else value
    for v in items:
        t = type(v)
        if t is tuple or t is uuid.UUID or ((t is list or t is dict) and _needs_pretag(v)):
            return True
    return False


_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    bytes: ("bytes", lambda b: base64.b64encode(b).decode()),
    bytearray: ("bytes", lambda b: base64.b64encode(b).decode()),
    dt.datetime: ("datetime", lambda d: d.isoformat()),
    dt.date: ("date", lambda d: d.isoformat()),
    dt.time: ("time", lambda d: d.isoformat()),
    uuid.UUID: ("uuid", str),
    Decimal: ("decimal", str),
}

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "bytes": base64.b64decode,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": Decimal,
}


def _revive(value: Any) -> Any:
    t = type(value)
    if t is dict:
        tag = value.get(_TAG)
        if tag is not None and len(value) == 2 and "v" in value:
            if tag == "tuple":
                return tuple(_revive(v) for v in value["v"])
            decoder = _DECODERS.get(tag)
            if decoder is not None:
                return decoder(value["v"])
        return {k: _revive(v) for k, v in value.items()}
    if t is list:
        return [_revive(v) for v in value]
    return value
