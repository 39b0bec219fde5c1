"""``cache.aside(loader, key=...)``: cache-aside as a FastAPI dependency or a plain helper.

The callable returned mirrors the loader's signature (``__signature__``), so FastAPI resolves
the loader's own path, query and ``Depends`` parameters and passes them in; the key and tag
templates are filled from those arguments by name (``"users:{user_id}:profile"``). Outside
FastAPI it is awaited like the loader itself: ``await profile(42, db=session)``; its type is
the loader's own (``Callable[P, Awaitable[T]]``).

Type fidelity: a hit must return what a miss returns. Hits are rebuilt into the loader's
return annotation (see :mod:`asgi_cache._rebuild`), so a pydantic model or dataclass comes
back as one, never as the dict it was stored as.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import string
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from ._exceptions import ConfigurationError
from ._options import LoadOptions
from .keys import validate_key, validate_tag
from .loading import Loading

P = ParamSpec("P")
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
    loading: Loading,
    loader: Callable[P, Awaitable[T]],
    *,
    key: str,
    tags: Sequence[str],
    options: LoadOptions,
    returns: Any,
) -> Callable[P, Awaitable[T]]:
    """Build the dependency behind :meth:`Cache.aside <asgi_cache.Cache.aside>`.

    Args:
        loading: The cache-aside engine that serves it.
        loader: The function whose results are cached.
        key: The key template.
        tags: The tag templates.
        options: The resolved options (tags and rebuilding are filled in here).
        returns: The type hits are rebuilt into; ``None`` means the loader's annotation.

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
    resolved = options.with_rebuild(loading.rebuilder(annotation))
    tag_templates = tuple(tags)
    loader_name = getattr(loader, "__qualname__", repr(loader))

    async def dependency(*args: P.args, **kwargs: P.kwargs) -> T:
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
        value: T = await loading.get_or_load(filled_key, load, resolved.with_tags(filled_tags))
        return value

    # No __wrapped__ (FastAPI would unwrap to the loader): the resolved signature is the
    # dependency's own, and FastAPI passes the loader's arguments to it by name.
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        with contextlib.suppress(AttributeError):
            setattr(dependency, attr, getattr(loader, attr))
    dependency.__signature__ = sig  # type: ignore[attr-defined]
    return dependency
