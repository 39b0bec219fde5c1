"""``cache.aside(loader, key=...)``: cache-aside as a FastAPI dependency or a plain helper.

The callable returned mirrors the loader's signature (``__signature__``), so FastAPI resolves
the loader's own path, query and ``Depends`` parameters and passes them in; the key and tag
templates are filled from those arguments by name (``"users:{user_id}:profile"``). Outside
FastAPI it is awaited like the loader itself: ``await profile(42, db=session)``.

Type fidelity: a hit must return what a miss returns. Values are stored as JSON or msgpack,
so a pydantic model or dataclass comes back as a dict; :func:`rebuilder` turns it back into
the loader's return annotation (``User``, ``list[User]``, ``User | None``,
``dict[str, Item]``...). With pydantic installed it uses a ``TypeAdapter``; without, a small
walker rebuilds dataclasses, lists, tuples, dicts and optionals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import re
import string
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import ConfigurationError
from .keys import validate_key, validate_tag

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["build_aside", "rebuilder", "template_fields"]

T = TypeVar("T")

_FIELD_ROOT = re.compile(r"[.\[]")

logger = logging.getLogger("asgi_cache")


class _KeyFormatter(string.Formatter):
    """``str.format`` that percent-escapes the filled values.

    Arguments often come from requests. Escaping ``%`` and ``:`` keeps keys unambiguous
    (``users:{a}:{b}`` with ``a="1:2", b="3"`` and ``a="1", b="2:3"`` stay two keys), and
    escaping CR, LF and NUL keeps every filled key valid. Plain ids are left readable.
    """

    _ESCAPES = str.maketrans({"%": "%25", ":": "%3A", "\r": "%0D", "\n": "%0A", "\0": "%00"})

    def format_field(self, value: Any, format_spec: str) -> str:
        return str(super().format_field(value, format_spec)).translate(self._ESCAPES)


_FORMATTER = _KeyFormatter()


def template_fields(template: str) -> set[str]:
    """The argument names a ``str.format`` template refers to (``{user.id}`` -> ``user``).

    Raises:
        ConfigurationError: The template is malformed or uses positional fields (``{}``).
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(f"template {template!r} is not allowed: {exc}") from None
    names = set()
    for _, field, _, _ in parsed:
        if field is None:
            continue
        root = _FIELD_ROOT.split(field, maxsplit=1)[0]
        if not root or root.isdigit():
            raise ConfigurationError(
                f"template {template!r} is not allowed: fields must name the loader's "
                "parameters, such as '{user_id}'"
            )
        names.add(root)
    return names


def _loader_signature(loader: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(loader, eval_str=True)
    except (NameError, TypeError, SyntaxError) as exc:
        raise ConfigurationError(
            f"cache.aside({getattr(loader, '__qualname__', loader)!r}): cannot resolve the "
            f"loader's annotations ({exc}); define the types it names at module level"
        ) from None


def build_aside(
    cache: Cache,
    loader: Callable[..., Awaitable[T]],
    *,
    key: str,
    tags: Sequence[str],
    options: dict[str, Any],
    returns: Any,
) -> Callable[..., Awaitable[T]]:
    """Build the dependency behind :meth:`Cache.aside <asgi_cache.Cache.aside>`.

    Raises:
        ConfigurationError: ``key`` or a tag names something that is not a loader parameter,
            or the loader's annotations cannot be resolved.
    """
    if not callable(loader):
        raise ConfigurationError(f"loader={loader!r} is not allowed: expected a callable")
    if isinstance(tags, str):
        raise ConfigurationError(f"tags={tags!r} is not allowed: expected a list of templates")
    sig = _loader_signature(loader)
    params = set(sig.parameters)
    for template in (key, *tags):
        if not isinstance(template, str):
            raise ConfigurationError(
                f"template {template!r} is not allowed: expected a str such as "
                "'users:{user_id}:profile'"
            )
        unknown = template_fields(template) - params
        if unknown:
            raise ConfigurationError(
                f"template {template!r} is not allowed: {', '.join(sorted(unknown))} "
                f"is not a parameter of the loader (it has: {', '.join(sig.parameters) or 'none'})"
            )
    annotation = sig.return_annotation if returns is None else returns
    tag_templates = tuple(tags)
    loader_name = getattr(loader, "__qualname__", repr(loader))

    async def dependency(*args: Any, **kwargs: Any) -> T:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments

        def load() -> Awaitable[T]:
            return loader(*bound.args, **bound.kwargs)

        try:
            filled_key = validate_key(_FORMATTER.vformat(key, (), arguments))
            filled_tags = [
                validate_tag(_FORMATTER.vformat(t, (), arguments)) for t in tag_templates
            ]
        except ConfigurationError as exc:
            # Arguments come from requests: one that makes no valid key (an oversized string)
            # bypasses the cache rather than failing the request.
            logger.debug("asgi-cache: bypassing the cache for %s: %s", loader_name, exc)
            return await load()
        value: T = await cache.get_or_load(
            filled_key, load, tags=filled_tags, returns=annotation, **options
        )
        return value

    # No __wrapped__ (FastAPI would unwrap to the loader): the resolved signature is the
    # dependency's own, and FastAPI passes the loader's arguments to it by name.
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        with contextlib.suppress(AttributeError):
            setattr(dependency, attr, getattr(loader, attr))
    dependency.__signature__ = sig  # type: ignore[attr-defined]
    return dependency


# -- type fidelity -----------------------------------------------------------------------------


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
