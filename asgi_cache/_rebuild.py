"""Type fidelity: a hit returns what a miss returns.

Values are stored as JSON or msgpack, so a pydantic model or dataclass comes back as a dict;
:func:`rebuilder` turns it back into the loader's return annotation (``User``, ``list[User]``,
``User | None``, ``dict[str, Item]``...). With pydantic installed it uses a ``TypeAdapter``;
without, a small walker rebuilds dataclasses, lists, tuples, dicts and optionals.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

Rebuild = Callable[[Any], Any]
"""Turns a decoded value back into the caller's type."""


def _needs_rebuild(annotation: Any) -> bool:
    """Whether values of ``annotation`` contain a model or dataclass somewhere."""
    if isinstance(annotation, type):
        if dataclasses.is_dataclass(annotation):
            return True
        return callable(getattr(annotation, "model_validate", None))
    return any(_needs_rebuild(arg) for arg in typing.get_args(annotation))


def rebuilder(annotation: Any, *, use_pydantic: bool = True) -> Callable[[Any], Any] | None:
    """A function turning a decoded value back into ``annotation``; ``None`` if not needed.

    Only annotations that mention a dataclass or a pydantic model need it: plain JSON types
    already come back as they went in.
    """
    if annotation is inspect.Signature.empty or not _needs_rebuild(annotation):
        return None
    if use_pydantic:
        try:
            from pydantic import TypeAdapter
        except ImportError:  # pragma: no cover - pydantic is a dev dependency
            pass
        else:
            return TypeAdapter(annotation).validate_python
    return functools.partial(_walk, annotation)


def _walk(tp: Any, value: Any) -> Any:
    """Rebuild ``value`` as ``tp`` without pydantic (dataclasses and containers of them)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _walk(args[0], value)
    if origin is typing.Union or origin is types.UnionType:
        # Members that need rebuilding first: ``int | Account`` must not stop at ``int``.
        for arg in sorted(args, key=lambda a: not _needs_rebuild(a)):
            try:
                return _walk(arg, value)
            except (TypeError, ValueError, KeyError):
                continue
        return value
    if origin in (list, Sequence, set, frozenset) and args:
        container = list if origin is Sequence else origin
        return container(_walk(args[0], v) for v in value)
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_walk(args[0], v) for v in value)
        return tuple(_walk(a, v) for a, v in zip(args, value, strict=True))
    if origin in (dict, typing.Mapping) and len(args) == 2:
        return {k: _walk(args[1], v) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"cannot rebuild {tp.__name__} from {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {
            f.name: _walk(hints.get(f.name, Any), value[f.name])
            for f in dataclasses.fields(tp)
            if f.init and f.name in value
        }
        return tp(**kwargs)
    validate = getattr(tp, "model_validate", None)
    if callable(validate):
        return validate(value)
    return value
