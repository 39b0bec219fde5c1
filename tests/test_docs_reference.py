"""The API reference (docs/reference/) covers the whole public surface, so it cannot fall behind.

Public means: every name in the ``__all__`` of the public modules (``MODULES`` of
test_public_api: ``asgi_cache``, ``asgi_cache.http``, ...), every subcommand and option of
the ``asgi-cache`` command, and every ``ASGI_CACHE_*`` variable. Each test names what is
missing and where it belongs; the strict site build (``scripts/docs build``) then checks that
the entries render without warnings.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

from asgi_cache import CacheSettings
from asgi_cache.cli import build_parser

from .test_public_api import MODULES

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
_DIRECTIVE = re.compile(r"^::: (?P<name>[\w.]+)\s*$", re.MULTILINE)
_CLI_HEADING = re.compile(r"^## (?:`asgi-cache (?P<cmd>[\w-]+)`|(?P<common>Common options))$")
_ENV_VAR = re.compile(r"ASGI_CACHE_[A-Z0-9_]*[A-Z0-9]")


def _resolve(dotted: str) -> Any:
    """The object a ``::: dotted.name`` directive documents: the longest importable module
    prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _directives() -> dict[str, str]:
    """Every ``:::`` directive of the reference pages, mapped to the page it is on."""
    found = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for match in _DIRECTIVE.finditer(page.read_text()):
            found[match["name"]] = page.name
    return found


def test_every_public_name_has_a_reference_entry() -> None:
    documented = [_resolve(name) for name in _directives()]
    missing = [
        f"{module_name}.{name}"
        for module_name in MODULES
        for name in importlib.import_module(module_name).__all__
        # Identity, not name: ``asgi_cache.CacheMiddleware`` is ``asgi_cache.http``'s.
        if not any(getattr(importlib.import_module(module_name), name) is d for d in documented)
    ]
    assert not missing, (
        f"public names without an API reference entry: {missing}; add a `::: <module>.<Name>` "
        "line to the page of docs/reference/ it belongs to (or a new page, in mkdocs.yml's nav) "
        "and a row to docs/reference/index.md"
    )


def test_every_directive_names_a_public_object() -> None:
    # An entry for a private name would make it look public (and break when it moves).
    public = {
        id(getattr(importlib.import_module(m), n))
        for m in MODULES
        for n in importlib.import_module(m).__all__
    }
    for name, page in _directives().items():
        assert id(_resolve(name)) in public, f"docs/reference/{page}: {name} is not public"


def test_every_reference_page_is_in_the_nav_and_the_index() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    index = (REFERENCE / "index.md").read_text()
    for page in sorted(REFERENCE.glob("*.md")):
        assert f"reference/{page.name}" in nav, f"docs/reference/{page.name} not in mkdocs.yml"
        if page.name != "index.md":
            assert f"]({page.name})" in index, f"docs/reference/index.md: no link to {page.name}"


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings (``--json``, ``-y``) and positional names a parser accepts."""
    names: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        names.update(action.option_strings or [action.dest])
    return names


def _cli_sections() -> dict[str, set[str]]:
    """Each ``## `asgi-cache NAME` `` section of cli.md (and ``Common options``), mapped to the
    options its tables name (the first word of each code span in a row's first cell)."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in (REFERENCE / "cli.md").read_text().splitlines():
        heading = _CLI_HEADING.match(line)
        if heading:
            current = heading["cmd"] or ""
            sections[current] = set()
        elif current is not None and line.startswith("| `"):
            first_cell = line.split("|")[1]
            sections[current].update(
                span.split()[0] for span in re.findall(r"`([^`]+)`", first_cell)
            )
    return sections


def test_every_cli_command_and_option_is_in_the_reference() -> None:
    parser = build_parser()
    sections = _cli_sections()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands: dict[str, argparse.ArgumentParser] = dict(subparsers.choices)
    assert set(sections) - {""} == set(commands), (
        "docs/reference/cli.md needs one `## `asgi-cache NAME`` section per subcommand"
    )
    assert sections[""] == _options(parser), "docs/reference/cli.md: Common options"
    for name, sub in commands.items():
        assert sections[name] == _options(sub), f"docs/reference/cli.md: asgi-cache {name}"


def test_every_environment_variable_is_in_the_configuration_reference() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    named = {f"ASGI_CACHE_{f.name.upper()}" for f in dataclasses.fields(CacheSettings)}
    for source in (ROOT / "asgi_cache").rglob("*.py"):
        named.update(_ENV_VAR.findall(source.read_text()))
    missing = sorted(v for v in named if f"`{v}" not in doc)
    assert not missing, f"docs/configuration.md does not list {missing}"


# A Sphinx role (``:class:`Cache` ``) renders as literal text on the site; a docstring names
# a public object as ``[`Cache`][asgi_cache.Cache]`` (a link) and anything else as code.
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj|const|ref):`")
_LINK_TARGET = re.compile(r"\]\[([A-Za-z_][\w.]*)\]")


def _docstrings() -> list[tuple[str, str]]:
    """Every docstring of the package (modules, classes, functions and the string statements
    that document attributes), with where it is."""
    found = []
    for source in sorted((ROOT / "asgi_cache").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            body = getattr(node, "body", None)
            for statement in body if isinstance(body, list) else []:
                if (
                    isinstance(statement, ast.Expr)
                    and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)
                ):
                    where = f"{source.relative_to(ROOT)}:{statement.lineno}"
                    found.append((where, statement.value.value))
    return found


def test_no_docstring_uses_a_sphinx_role() -> None:
    roles = [where for where, text in _docstrings() if _SPHINX_ROLE.search(text)]
    assert not roles, (
        f"Sphinx roles render as text on the site: {roles}; write [`Name`][asgi_cache.Name] "
        "for a public name (docs/reference/), `name` for anything else"
    )


def test_docstring_links_name_reference_entries() -> None:
    # The site build checks the links of the docstrings it renders; this checks every other
    # docstring's links too, so a private docstring cannot point at a name the site lacks.
    entries = set(_directives())
    bad = []
    for where, text in _docstrings():
        for target in _LINK_TARGET.findall(text):
            entry = target
            while entry and entry not in entries:
                entry = entry.rpartition(".")[0]
            try:
                _resolve(target)
            except (ImportError, AttributeError):
                entry = ""
            if not entry:
                bad.append(f"{where}: [{target}]")
    assert not bad, f"links to names without a reference entry: {bad}"
