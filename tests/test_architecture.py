"""The package's layers and the import arrows that must never exist (docs/architecture.md).

Every module of ``asgi_cache`` is read with :mod:`ast` (nothing is imported) and checked:

1. it is in the layer map (:data:`LAYERS`, by module path: a new module under a mapped
   package, such as ``asgi_cache/backends/cluster.py``, takes its package's layer; a new
   top-level module must be added to the map, and the failure says so);
2. at run time it imports only its own layer or lower ones (``if TYPE_CHECKING:`` imports
   are left out: they never run); tools import anything but the store layer;
3. no module imports ``asgi_cache.cache`` at run time except the facade package itself
   (features and tools get the cache handed to them, or import ``asgi_cache``);
4. ``asgi_cache.http`` never imports ``asgi_cache.backends`` (it talks to the store);
5. cache-aside's engine (``loading``, ``_options``) never imports its FastAPI adapter
   (``aside``) or ``asgi_cache.http``;
6. no import of a package module inside a function or class body;
7. no module above :data:`MAX_LINES` lines except the facade (``cache.py``).

The checker is tested on a synthetic package too, so a rule that stopped finding anything
would fail here rather than pass silently.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import asgi_cache

PACKAGE = "asgi_cache"
PACKAGE_DIR = Path(asgi_cache.__file__).parent
MAX_LINES = 420
"""About 400: the budget of one module ("one concept per module")."""
SIZE_EXEMPT = frozenset({"asgi_cache.cache"})
"""The facade: its lines are mostly the public API's docstrings."""
OVER_BUDGET: Mapping[str, str] = {}
"""Known debts: modules over the budget, each with what to split. The test fails when one
is back under the budget (take it off this list) and for any module not on it."""


class Layer(enum.IntEnum):
    """The layers, lowest first (docs/architecture.md)."""

    FOUNDATION = 0
    BACKENDS = 1
    STORE = 2
    FEATURES = 3
    FACADE = 4
    TOOLS = 5


LAYERS: Mapping[str, Layer] = {
    # L0 foundation: no I/O of its own, used by everything.
    "asgi_cache._exceptions": Layer.FOUNDATION,
    "asgi_cache._validate": Layer.FOUNDATION,
    "asgi_cache._urls": Layer.FOUNDATION,
    "asgi_cache._rebuild": Layer.FOUNDATION,
    "asgi_cache._tasks": Layer.FOUNDATION,
    "asgi_cache._loops": Layer.FOUNDATION,
    "asgi_cache._templates": Layer.FOUNDATION,
    "asgi_cache.keys": Layer.FOUNDATION,
    "asgi_cache.codec": Layer.FOUNDATION,
    "asgi_cache._entries": Layer.FOUNDATION,
    "asgi_cache.settings": Layer.FOUNDATION,
    # L1 backends: every module under backends/ (memory, redis, cluster, sentinel, ...).
    "asgi_cache.backends": Layer.BACKENDS,
    # L2 store: entries, tags, locks, near-cache, stats.
    "asgi_cache._runtime": Layer.STORE,
    "asgi_cache._store": Layer.STORE,
    "asgi_cache._tags": Layer.STORE,
    "asgi_cache._retry": Layer.STORE,
    "asgi_cache._notify": Layer.STORE,
    "asgi_cache._stats": Layer.STORE,
    "asgi_cache._write_behind_status": Layer.STORE,
    "asgi_cache.locking": Layer.STORE,
    "asgi_cache._flights": Layer.STORE,
    "asgi_cache.near": Layer.STORE,
    "asgi_cache._near_tracking": Layer.STORE,
    "asgi_cache._frequency": Layer.STORE,
    # L3 features.
    "asgi_cache.http": Layer.FEATURES,
    "asgi_cache.loading": Layer.FEATURES,
    "asgi_cache._options": Layer.FEATURES,
    "asgi_cache.aside": Layer.FEATURES,
    "asgi_cache.health": Layer.FEATURES,
    "asgi_cache._readonly": Layer.FEATURES,
    "asgi_cache.write_behind": Layer.FEATURES,
    "asgi_cache.metrics": Layer.FEATURES,
    # L4 facade.
    "asgi_cache": Layer.FACADE,
    "asgi_cache.cache": Layer.FACADE,
    # Tools: they use the public API (and L0/L1 to inspect).
    "asgi_cache.cli": Layer.TOOLS,
    "asgi_cache.demo": Layer.TOOLS,
    "asgi_cache.entry_info": Layer.TOOLS,
}
"""Module path -> layer; a module takes the layer of its longest mapped prefix."""

FORBIDDEN: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("asgi_cache.http",), ("asgi_cache.backends",), "http/ never imports backends/"),
    (
        ("asgi_cache.loading", "asgi_cache._options"),
        ("asgi_cache.aside", "asgi_cache.http"),
        "the cache-aside engine never imports its FastAPI adapter or http/",
    ),
)
"""(importers, imported, why): arrows forbidden whatever the layers say."""


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, as the checker sees it."""

    target: str
    """The absolute module imported (``from .x import y``: ``<package>.x``, or
    ``<package>.x.y`` when that is a module)."""
    line: int
    runtime: bool
    """Not inside an ``if TYPE_CHECKING:`` block."""
    nested: bool
    """Inside a function or class body."""


def module_name(path: Path, root: Path, package: str) -> str:
    """The dotted name of the module at ``path`` in the package rooted at ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def layer_of(module: str, layers: Mapping[str, Layer]) -> Layer | None:
    """The layer of ``module``: that of its longest mapped prefix below the package root
    (the root itself maps only itself), else ``None``."""
    parts = module.split(".")
    if len(parts) == 1:
        return layers.get(module)
    for end in range(len(parts), 1, -1):
        found = layers.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(
    tree: ast.Module, module: str, is_package: bool, modules: frozenset[str], package: str
) -> Iterator[Import]:
    """Every import of a module of ``package`` in ``tree`` (the source of ``module``)."""
    base = module.split(".") if is_package else module.split(".")[:-1]

    def visit(node: ast.AST, runtime: bool, nested: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for item in child.body:
                    yield from visit_one(item, False, nested)
                for item in child.orelse:
                    yield from visit_one(item, runtime, nested)
                continue
            yield from visit_one(child, runtime, nested)

    def visit_one(node: ast.AST, runtime: bool, nested: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _within(alias.name, (package,)):
                    yield Import(alias.name, node.lineno, runtime, nested)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                source = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if not _within(source, (package,)):
                return
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                target = candidate if candidate in modules else source
                yield Import(target, node.lineno, runtime, nested)
        else:
            inner = nested or isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            )
            yield from visit(node, runtime, inner)

    yield from visit(tree, True, False)


def check_package(
    root: Path,
    package: str,
    layers: Mapping[str, Layer],
    *,
    max_lines: int = MAX_LINES,
    size_exempt: frozenset[str] = SIZE_EXEMPT,
    over_budget: Mapping[str, str] = OVER_BUDGET,
) -> list[str]:
    """Every broken rule of the package at ``root`` (empty when it keeps them all)."""
    sources = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    modules = frozenset(sources)
    problems: list[str] = []
    for module, path in sources.items():
        where = f"{package}/{path.relative_to(root)}"
        layer = layer_of(module, layers)
        if layer is None:
            problems.append(
                f"{where}: module {module} is not in the layer map; add it (or its package) "
                f"to LAYERS in tests/test_architecture.py as one of "
                f"{', '.join(m.name.lower() for m in Layer)} (docs/architecture.md says which)"
            )
            continue
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > max_lines and module not in size_exempt and module not in over_budget:
            problems.append(
                f"{where}: {lines} lines, more than {max_lines}: split it by concept "
                "(one concept per module)"
            )
        elif lines <= max_lines and module in over_budget:
            problems.append(f"{where}: {lines} lines, within budget again: take it off OVER_BUDGET")
        tree = ast.parse(text, filename=str(path))
        is_package = path.name == "__init__.py"
        for imp in imports_of(tree, module, is_package, modules, package):
            problems += _import_problems(where, module, layer, imp, layers, package)
    return problems


def _import_problems(
    where: str, module: str, layer: Layer, imp: Import, layers: Mapping[str, Layer], package: str
) -> list[str]:
    at = f"{where}:{imp.line}: imports {imp.target}"
    problems: list[str] = []
    if imp.nested:
        problems.append(f"{at} inside a function or class: import package modules at the top")
    for importers, imported, why in FORBIDDEN:
        importers = tuple(p.replace("asgi_cache", package, 1) for p in importers)
        imported = tuple(p.replace("asgi_cache", package, 1) for p in imported)
        if _within(module, importers) and _within(imp.target, imported):
            problems.append(f"{at}: {why}")
    if not imp.runtime:
        return problems
    facade_module = f"{package}.cache"
    if imp.target == facade_module and module != package:
        problems.append(
            f"{at}: nothing but the package's __init__ imports the facade at run time "
            "(features are handed the store; tools import the package)"
        )
    target = layer_of(imp.target, layers)
    if target is None:
        return problems  # reported where that module is checked
    if layer is Layer.TOOLS:
        if target is Layer.STORE:
            problems.append(f"{at}: tools reach the store through a Cache, never directly")
    elif target > layer and target is not Layer.TOOLS:
        problems.append(
            f"{at}: layer {layer.name.lower()} imports the higher layer "
            f"{target.name.lower()} (upper layers import lower ones only)"
        )
    elif target is Layer.TOOLS:
        problems.append(f"{at}: the package never imports its tools")
    return problems


def test_every_module_keeps_the_layer_rules() -> None:
    problems = check_package(PACKAGE_DIR, PACKAGE, LAYERS)
    assert not problems, "\n".join(problems)


def test_the_map_names_only_modules_that_exist() -> None:
    # A stale entry would keep a deleted or renamed module's layer for a newcomer.
    modules = {module_name(p, PACKAGE_DIR, PACKAGE) for p in PACKAGE_DIR.rglob("*.py")}
    planned = {"asgi_cache.write_behind", "asgi_cache.metrics"}  # being added (wave 2)
    stale = [name for name in LAYERS if name not in modules and name not in planned]
    assert not stale


# -- the checker on a synthetic package ---------------------------------------------------------

SYNTHETIC = {
    "__init__.py": "from .cache import Cache\n",
    "cache.py": "from .http import middleware\nclass Cache: ...\n",
    "_exceptions.py": "from . import _store\n",  # foundation importing the store
    "_store.py": "from .backends import redis\n",
    "backends/__init__.py": "",
    "backends/redis.py": "from .._exceptions import x\n",
    "backends/cluster.py": "from ..loading import engine\n",  # new module: mapped by package
    "http/__init__.py": "",
    "http/middleware.py": (
        "from typing import TYPE_CHECKING\n"
        "from ..backends import redis\n"  # http importing backends
        "if TYPE_CHECKING:\n"
        "    from ..cache import Cache\n"  # fine: never runs
        "def handler():\n"
        "    from .. import _store\n"  # a function-level import
    ),
    "loading.py": "import asgi_cache_x.aside\nfrom .cache import Cache\n",
    "aside.py": "from .loading import x\n",
    "newthing.py": "",  # not in the map
    "cli/__init__.py": "from .. import _store\nfrom .. import Cache\n",
    "big.py": "x = 1\n" * 30,
}
SYNTHETIC_LAYERS = {
    name.replace("asgi_cache", "asgi_cache_x", 1): layer
    for name, layer in {**LAYERS, "asgi_cache.big": Layer.FOUNDATION}.items()
}


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    root = tmp_path / "asgi_cache_x"
    for name, text in SYNTHETIC.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_finds_every_kind_of_violation(synthetic: Path) -> None:
    problems = check_package(
        synthetic,
        "asgi_cache_x",
        SYNTHETIC_LAYERS,
        max_lines=20,
        over_budget={"asgi_cache_x.aside": "a debt paid off long ago"},
    )
    text = "\n".join(problems)

    def found(*fragments: str) -> bool:
        return any(all(f in p for f in fragments) for p in problems)

    assert found("_exceptions.py:1", "foundation imports the higher layer store"), text
    assert found("backends/cluster.py:1", "backends imports the higher layer features"), text
    assert found("http/middleware.py:2", "http/ never imports backends/"), text
    assert found("http/middleware.py:6", "inside a function or class"), text
    assert found("loading.py:1", "asgi_cache_x.aside", "FastAPI adapter"), text
    assert found("loading.py:2", "imports the facade at run time"), text
    assert found("newthing.py", "not in the layer map", "LAYERS"), text
    assert found("cli/__init__.py:1", "tools reach the store through a Cache"), text
    assert found("big.py", "30 lines, more than 20"), text
    assert found("aside.py", "within budget again", "OVER_BUDGET"), text
    # What is allowed stays quiet: the package's own facade import, TYPE_CHECKING imports,
    # lower layers, same-layer imports, tools importing the package.
    assert not found("__init__.py:1", "facade"), text
    assert not found("http/middleware.py:4"), text
    assert not found("_store.py"), text
    assert not found("backends/redis.py"), text
    assert not found("aside.py", "imports"), text
    assert not found("cli/__init__.py:2"), text
    assert not found("cache.py"), text
    assert len(problems) == 11, text


def test_the_layer_of_a_new_module_comes_from_its_package() -> None:
    assert layer_of("asgi_cache.backends.cluster", LAYERS) is Layer.BACKENDS
    assert layer_of("asgi_cache.write_behind.stream", LAYERS) is Layer.FEATURES
    assert layer_of("asgi_cache.metrics.prometheus", LAYERS) is Layer.FEATURES
    assert layer_of("asgi_cache.cli._worker", LAYERS) is Layer.TOOLS
    assert layer_of("asgi_cache.http.exchange", LAYERS) is Layer.FEATURES
    assert layer_of("asgi_cache.unknown", LAYERS) is None
