"""Type fidelity: a hit returns what a miss returns.

Values are stored as JSON or msgpack, so a pydantic model or dataclass comes back as a dict;
`rebuilder` turns it back into the type the caller names (``returns=``) or the loader's
return annotation (``User``, ``list[User]``, ``User | None``, ``dict[int, Item]``...), found
by `return_type`. With pydantic installed it uses a ``TypeAdapter`` in lax mode (models
are dumped in JSON mode, so a ``datetime`` comes back as a string for the adapter to parse,
even for a model declared strict); without, a small walker rebuilds dataclasses, lists,
tuples, dicts and optionals.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final

Rebuild = Callable[[Any], Any]
"""Turns a decoded value back into the caller's type."""

NO_TYPE: Final = inspect.Signature.empty
"""What `return_type` answers for a loader without a usable return annotation."""


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
            # Lax: JSON-mode dumps hold strings where a strict model wants datetimes.
            return functools.partial(TypeAdapter(annotation).validate_python, strict=False)
    return functools.partial(_walk, annotation)


def return_type(loader: Callable[..., Any]) -> Any:
    """The type ``loader`` says it returns (``async def load() -> User``: ``User``), or
    `NO_TYPE` when it has none (a lambda) or it cannot be resolved.

    ``functools.partial`` is looked through; ``Awaitable[User]`` (a plain function returning
    an awaitable) means ``User``. A string annotation (``from __future__ import
    annotations``) is evaluated in the loader's module.
    """
    while isinstance(loader, functools.partial):
        loader = loader.func
    annotations = getattr(loader, "__annotations__", None)
    if not isinstance(annotations, dict) or "return" not in annotations:
        return NO_TYPE
    annotation = annotations["return"]
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(loader).get("return", NO_TYPE)
        except Exception:  # a name defined inside a function, a typo: no usable type
            return NO_TYPE
    origin: Any = typing.get_origin(annotation)
    if origin in (Awaitable, Coroutine) and typing.get_args(annotation):
        annotation = typing.get_args(annotation)[-1]
    return annotation


def untyped_hint(loader: Callable[..., Any], model: str) -> str:
    """How to fix a loader whose ``model`` values come back from a hit as dicts."""
    short = model.rpartition(".")[2]
    while isinstance(loader, functools.partial):
        loader = loader.func
    name = getattr(loader, "__qualname__", None) or repr(loader)
    annotation = return_type(loader)
    if name == "<lambda>" or name.endswith(".<lambda>"):
        why = "the loader is a lambda, and a lambda has no return annotation"
    elif annotation is NO_TYPE:
        why = f"the loader {name} has no return annotation the cache can resolve"
    else:
        why = f"the loader's return annotation ({annotation!r}) names no model or dataclass"
    return f"{why}; pass returns={short} (or annotate the loader: async def load() -> {short})"


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
