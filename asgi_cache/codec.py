"""Value serializers: Python values to entry bodies and back.

Values are never pickled. JSON (orjson) is the default serializer; ``bytes``, ``datetime``,
``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal``, tuples, sets, frozensets, paths, IP
addresses and dicts with non-``str`` keys survive a round trip through tagged objects
(``{"__ac__": type, "v": value}``), decoded only when the entry's flag says so. Pydantic models
are dumped in JSON mode (every field type pydantic knows becomes JSON) and rebuilt through
their type (`asgi_cache._rebuild`); dataclasses are dumped field by field.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import ipaddress
import pathlib
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, NamedTuple

import orjson

from ._entries import CorruptEntry, Entry, EntryKind
from ._exceptions import ConfigurationError, SerializationError

_TAG = "__ac__"
"""The key that marks a tagged non-JSON value in a JSON body (``{"__ac__": type, "v": ...}``)."""


class Encoded(NamedTuple):
    """An encoded value (see `Serializer.encode`)."""

    kind: EntryKind
    """How the body is encoded."""
    body: bytes
    """The encoded value."""
    tagged: bool
    """Whether the body holds tagged non-JSON types to revive."""
    model: str | None = None
    """Qualified name of the (first) model or dataclass in the value, if any: a hit needs
    its type to come back as one rather than as a dict."""


class Serializer:
    """Turns Python values into entry bodies and back.

    ``str`` and ``bytes`` are stored raw; everything else goes through orjson or msgpack.
    Supported: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, lists, tuples, sets
    and frozensets (each comes back as itself), dicts (any hashable keys of these types),
    ``datetime``/``date``/``time``/``timedelta``, ``UUID``, ``Decimal``, paths, IP addresses
    and networks, enums (as their value), dataclasses (field by field) and pydantic models (in
    JSON mode, so every field type pydantic can serialize works). Models and dataclasses come
    back as dicts; ``returns=`` or the loader's return annotation rebuilds them
    (`asgi_cache._rebuild`).
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

    def encode(self, value: Any, *, key: str = "?") -> Encoded:
        """Encode ``value``: its kind, body, whether it holds tagged types, and the model
        it was dumped from.

        Raises:
            SerializationError: The value (or something inside it) cannot be encoded; the
                message names the key, the field (``Order.items[0].price``) and its type.
        """
        if type(value) is bytes:
            return Encoded(EntryKind.BYTES, value, False)
        if type(value) is str:
            return Encoded(EntryKind.STR, value.encode(), False)
        state = _EncodeState()
        try:
            if self._msgpack is not None:
                body = self._msgpack.packb(
                    _pretag(value, state), default=state.default, datetime=False
                )
                return Encoded(EntryKind.MSGPACK, body, state.tagged, state.model)
            body = orjson.dumps(
                _pretag(value, state),
                default=state.default,
                # Dataclasses through ``default`` too: orjson's own refuses int dict keys
                # and would not tag their datetimes, sets or tuples.
                option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS,
            )
        except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError) as exc:
            where, bad = locate_unencodable(value)
            raise SerializationError(
                f"cannot cache the value for key {key!r}: {where} ({bad}) is not serializable "
                f"with the {self.name} serializer ({exc})"
            ) from None
        return Encoded(EntryKind.JSON, body, state.tagged, state.model)

    def _msgpack_module(self) -> Any:
        if self._msgpack is None:
            import msgpack

            self._msgpack = msgpack
        return self._msgpack

    def decode(self, entry: Entry) -> Any:
        """Decode the value held by ``entry``.

        Total: whatever the body holds, the value or `CorruptEntry`.

        Raises:
            CorruptEntry: The body does not decode (or a tagged value inside it does not).
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
            return _revive(value) if entry.tagged else value
        except Exception as exc:
            # Anything: a body that does not parse, a tagged value that does not revive
            # (``{"__ac__": "datetime", "v": 5}``), nesting too deep to walk.
            raise CorruptEntry(f"body does not decode: {type(exc).__name__}: {exc}") from None


class _EncodeState:
    __slots__ = ("model", "tagged")

    def __init__(self) -> None:
        self.tagged = False
        self.model: str | None = None

    def default(self, obj: Any) -> Any:
        encoder = _ENCODERS.get(type(obj))
        if encoder is not None:
            self.tagged = True
            return {_TAG: encoder[0], "v": encoder[1](obj, self)}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            self._saw_model(obj)
            return _pretag({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, self)
        if _is_model(obj):
            self._saw_model(obj)
            return _dump_model(obj, self)
        if isinstance(obj, enum.Enum):
            return _pretag(obj.value, self)
        for base, (name, encode) in _SUBCLASS_ENCODERS:
            if isinstance(obj, base):
                self.tagged = True
                return {_TAG: name, "v": encode(obj, self)}
        raise TypeError(f"type {type(obj).__name__} is not supported")

    def _saw_model(self, obj: Any) -> None:
        if self.model is None:
            cls = type(obj)
            self.model = f"{cls.__module__}.{cls.__qualname__}"


def _dump_model(obj: Any, state: _EncodeState) -> Any:
    # JSON mode: every type pydantic knows (sets, timedeltas, URLs, paths, IP addresses,
    # int-keyed dicts...) becomes JSON, and the model's type rebuilds it. A field JSON mode
    # refuses (bytes that are not UTF-8) is dumped in Python mode instead, for our own
    # encoders (bytes are kept as base64).
    try:
        return obj.model_dump(mode="json")
    except Exception:
        data: dict[str, Any] = {}
        for field in type(obj).model_fields:
            try:
                data.update(obj.model_dump(mode="json", include={field}))
            except Exception:
                data.update(obj.model_dump(mode="python", include={field}))
        return _pretag(data, state)


def _is_model(obj: Any) -> bool:
    return callable(getattr(obj, "model_dump", None)) and hasattr(type(obj), "model_fields")


def _pretag(value: Any, state: _EncodeState) -> Any:
    # orjson and msgpack turn tuples into arrays, and orjson turns UUIDs into strings, without
    # asking ``default``; dicts with keys other than str are refused (orjson) or come back
    # untyped. Tag those before encoding so they come back as what they were.
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
        if any(type(k) is not str for k in value):
            state.tagged = True
            return {
                _TAG: "dict",
                "v": [[_pretag(k, state), _pretag(v, state)] for k, v in value.items()],
            }
        return {k: _pretag(v, state) for k, v in value.items()} if _needs_pretag(value) else value
    return value


def _needs_pretag(value: Any) -> bool:
    items = value.values() if type(value) is dict else value
    for v in items:
        t = type(v)
        if t is tuple or t is uuid.UUID:
            return True
        if t is dict and (any(type(k) is not str for k in v) or _needs_pretag(v)):
            return True
        if t is list and _needs_pretag(v):
            return True
    return False


def _b64(b: bytes, _: _EncodeState) -> str:
    return base64.b64encode(b).decode()


def _items(value: Any, state: _EncodeState) -> list[Any]:
    return [_pretag(v, state) for v in value]


_Encoder = tuple[str, Callable[[Any, _EncodeState], Any]]

_ENCODERS: dict[type, _Encoder] = {
    bytes: ("bytes", _b64),
    bytearray: ("bytes", _b64),
    dt.datetime: ("datetime", lambda d, _: d.isoformat()),
    dt.date: ("date", lambda d, _: d.isoformat()),
    dt.time: ("time", lambda d, _: d.isoformat()),
    dt.timedelta: ("timedelta", lambda d, _: [d.days, d.seconds, d.microseconds]),
    uuid.UUID: ("uuid", lambda u, _: str(u)),
    Decimal: ("decimal", lambda d, _: str(d)),
    set: ("set", _items),
    frozenset: ("frozenset", _items),
    ipaddress.IPv4Address: ("ip", lambda a, _: str(a)),
    ipaddress.IPv6Address: ("ip", lambda a, _: str(a)),
    ipaddress.IPv4Network: ("ipnet", lambda a, _: str(a)),
    ipaddress.IPv6Network: ("ipnet", lambda a, _: str(a)),
}

_SUBCLASS_ENCODERS: tuple[tuple[type, _Encoder], ...] = (
    # PosixPath and WindowsPath are subclasses: matched by isinstance, revived as Path.
    (pathlib.PurePath, ("path", lambda p, _: str(p))),
)

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "ip": ipaddress.ip_address,
    "ipnet": ipaddress.ip_network,
    "path": pathlib.Path,
}


def _revive(value: Any) -> Any:
    t = type(value)
    if t is dict:
        tag = value.get(_TAG)
        if tag is not None and len(value) == 2 and "v" in value:
            inner = value["v"]
            if tag == "tuple":
                return tuple(_revive(v) for v in inner)
            if tag == "set":
                return {_revive(v) for v in inner}
            if tag == "frozenset":
                return frozenset(_revive(v) for v in inner)
            if tag == "dict":
                return {_revive(k): _revive(v) for k, v in inner}
            decoder = _DECODERS.get(tag)
            if decoder is not None:
                return decoder(inner)
        return {k: _revive(v) for k, v in value.items()}
    if t is list:
        return [_revive(v) for v in value]
    return value


_PLAIN: Final = (str, bool, type(None))


def locate_unencodable(value: Any, path: str = "value") -> tuple[str, str]:
    """Where inside ``value`` the first thing no serializer can store is, and its type:
    ``("Order.items[0].price", "complex")``. For error messages only (a slow walk)."""
    found = _locate(value, path, depth=0)
    return found if found is not None else (path, type(value).__name__)


def _locate(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    if depth > 64:
        return path, "nesting deeper than 64 levels"
    t = type(value)
    if isinstance(value, _PLAIN):
        return None
    if t is int:
        return None if -(2**63) <= value < 2**64 else (path, "int beyond 64 bits")
    if t is float or t in _ENCODERS or isinstance(value, pathlib.PurePath):
        return None
    if isinstance(value, enum.Enum):
        return _locate(value.value, path, depth + 1)
    if t is dict:
        for k, v in value.items():
            found = _locate(k, f"{path} key {k!r}", depth + 1) or _locate(
                v, f"{path}[{k!r}]", depth + 1
            )
            if found is not None:
                return found
        return None
    if t in (list, tuple, set, frozenset):
        for i, v in enumerate(value):
            found = _locate(v, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__qualname__
        for f in dataclasses.fields(value):
            found = _locate(getattr(value, f.name), f"{name}.{f.name}", depth + 1)
            if found is not None:
                return found
        return None
    if _is_model(value):
        name = type(value).__qualname__
        for field in type(value).model_fields:
            try:
                value.model_dump(mode="json", include={field})
                continue
            except Exception:
                pass
            found = _locate(getattr(value, field, None), f"{name}.{field}", depth + 1)
            if found is not None:
                return found
        return None
    return path, t.__name__
