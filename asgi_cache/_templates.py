"""Key and tag templates (``"users:{user_id}:profile"``): one way to read them, one to fill them.

``cache.response(tags=[...])``, ``cache.invalidates(...)`` and ``cache.aside(tags=[...])`` fill
tag templates with `fill_tags`, so one tag has one spelling wherever it is named:
``"sku:{sku}"`` with ``sku="AB:1"`` is ``sku:AB:1`` for the page, for the cache-aside entry and
for ``cache.invalidate_tags("sku:AB:1")``. Values go in as they are (``str(value)``), except CR,
LF and NUL, which no tag may hold and which become ``%0D``, ``%0A`` and ``%00``; two values
that fill to the same tag (``"a:b"`` in ``"{x}"``, ``"a"`` and ``"b"`` in ``"{x}:{y}"``) only
make an invalidation reach a little more, which is safe. [`fill_tag`][asgi_cache.fill_tag] is the
same fill for callers computing a tag to invalidate.

Keys are different: two values sharing a key would serve one caller's value to the other, so
`fill_key` also escapes ``%`` and ``:`` in values (``users:{a}:{b}`` with ``a="1:2"``
and with ``b="2:3"`` stay two keys). Plain ids are left readable either way.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import ConfigurationError

_FIELD_ROOT = re.compile(r"[.\[]")


class _Filler(string.Formatter):
    """``str.format`` that translates every filled value with ``escapes``."""

    def __init__(self, escapes: dict[int, str]) -> None:
        self._escapes = escapes

    def format_field(self, value: Any, format_spec: str) -> str:
        return str(super().format_field(value, format_spec)).translate(self._escapes)


_TAG_FILLER = _Filler(str.maketrans({"\r": "%0D", "\n": "%0A", "\0": "%00"}))
_KEY_FILLER = _Filler(
    str.maketrans({"%": "%25", ":": "%3A", "\r": "%0D", "\n": "%0A", "\0": "%00"})
)


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
                f"template {template!r} is not allowed: fields must name parameters, such as "
                "'{user_id}'"
            )
        names.add(root)
    return names


def fill_tags(templates: Iterable[str], values: Mapping[str, Any]) -> list[str]:
    """Fill tag ``templates`` from ``values`` (path parameters, a loader's arguments).

    Raises:
        KeyError: A template names something ``values`` does not hold.
        IndexError, ValueError, AttributeError: A field does not apply to its value.
    """
    return [_TAG_FILLER.vformat(t, (), values) if "{" in t else t for t in templates]


def fill_tag(template: str, /, **values: Any) -> str:
    """The tag ``template`` names for ``values``, spelled as the cache spells it.

    ``fill_tag("sku:{sku}", sku="AB:1")`` is ``"sku:AB:1"``: the tag that
    ``cache.response(tags=["sku:{sku}"])``, ``cache.invalidates("sku:{sku}")`` and
    ``cache.aside(..., tags=["sku:{sku}"])`` give the entries of that sku, ready for
    ``cache.invalidate_tags``. Values are used as ``str(value)``; CR, LF and NUL (never valid in
    a tag) become ``%0D``, ``%0A`` and ``%00``.

    Raises:
        ConfigurationError: The template is malformed or names a value not given.
    """
    template_fields(template)
    try:
        return fill_tags((template,), values)[0]
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigurationError(
            f"template {template!r} cannot be filled from {sorted(values)}: {exc!r}"
        ) from None


def fill_key(template: str, values: Mapping[str, Any]) -> str:
    """Fill a key ``template`` from ``values``, escaping ``%``, ``:``, CR, LF and NUL in them.

    Raises:
        KeyError: The template names something ``values`` does not hold.
        IndexError, ValueError, AttributeError: A field does not apply to its value.
    """
    return _KEY_FILLER.vformat(template, (), values)
