"""``cache.aside(loader, key=...)``: cache-aside as a FastAPI dependency or a plain helper.

The callable returned mirrors the loader's signature (``__signature__``), so FastAPI resolves
the loader's own path, query and ``Depends`` parameters and passes them in; the key and tag
templates are filled from those arguments by name (``"users:{user_id}:profile"``), by
`asgi_cache._templates` (tags exactly as the middleware fills them). Outside
FastAPI it is awaited like the loader itself: ``await profile(42, db=session)``; its type is
the loader's own (``Callable[P, Awaitable[T]]``).

Type fidelity: a hit must return what a miss returns. Hits are rebuilt into the loader's
return annotation (see `asgi_cache._rebuild`), so a pydantic model or dataclass comes
back as one, never as the dict it was stored as.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from ._exceptions import ConfigurationError
from ._options import LoadOptions
from ._templates import fill_key, fill_tags, template_fields
from .keys import validate_key, validate_tag
from .loading import Loading

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("asgi_cache")


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
    """Build the dependency behind [`Cache.aside`][asgi_cache.Cache.aside].

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

        load.__qualname__ = loader_name  # warnings name the loader, not this closure
        load.__annotations__ = {"return": annotation}

        try:
            filled_key = validate_key(fill_key(key, arguments))
            # Tags are filled as the middleware fills them: one tag, one spelling.
            filled_tags = [validate_tag(t) for t in fill_tags(tag_templates, arguments)]
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
