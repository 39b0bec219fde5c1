"""The public surface: one sorted ``__all__``, every name documented, nothing done at import."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import asgi_cache

MODULES = [
    "asgi_cache",
    "asgi_cache.backends",
    "asgi_cache.http",
    "asgi_cache.metrics",
    "asgi_cache.write_behind",
]
"""The public namespaces: the only modules with an ``__all__``; everything else is internal."""


def test_all_is_sorted_and_resolves() -> None:
    assert asgi_cache.__all__ == sorted(asgi_cache.__all__)
    for name in asgi_cache.__all__:
        assert getattr(asgi_cache, name) is not None, name


def test_fixed_names_from_design_are_exported() -> None:
    for name in ("Cache", "CacheSettings", "CacheError", "BackendError", "ConfigurationError"):
        assert name in asgi_cache.__all__


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        assert module.__doc__, module_name
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if not inspect.getdoc(obj):
                    missing.append(f"{module_name}.{name}")
                if inspect.isclass(obj):
                    for attr, member in vars(obj).items():
                        if attr.startswith("_") or not inspect.isfunction(member):
                            continue
                        if not inspect.getdoc(member):
                            missing.append(f"{module_name}.{name}.{attr}")
    assert not missing, missing


def test_import_does_no_io() -> None:
    # Importing the package must not connect anywhere or start threads or tasks.
    code = (
        "import socket, threading\n"
        "def no(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = no\n"
        "before = threading.active_count()\n"
        "import asgi_cache\n"
        "assert threading.active_count() == before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_exception_tree() -> None:
    assert issubclass(asgi_cache.ConfigurationError, ValueError)
    assert issubclass(asgi_cache.SerializationError, TypeError)
    assert issubclass(asgi_cache.BackendTimeoutError, asgi_cache.BackendError)
    assert issubclass(asgi_cache.BackendBusyError, asgi_cache.BackendError)
    assert issubclass(asgi_cache.BackendReplyError, asgi_cache.BackendError)
    for name in ("BackendError", "ConfigurationError", "SerializationError"):
        assert issubclass(getattr(asgi_cache, name), asgi_cache.CacheError)


def package_modules() -> list[str]:
    return [i.name for i in pkgutil.walk_packages(asgi_cache.__path__, "asgi_cache.")]


def test_only_the_public_namespaces_export_and_every_module_is_documented() -> None:
    internal_exports = []
    for name in package_modules():
        module = importlib.import_module(name)
        assert module.__doc__, name
        if name not in MODULES and hasattr(module, "__all__"):
            internal_exports.append(name)
    assert not internal_exports, internal_exports


def test_internal_modules_document_their_classes_and_functions() -> None:
    # Internal does not mean undocumented: every class and function a module defines without
    # a leading underscore says what it is for.
    missing = []
    for name in package_modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj):
                missing.append(f"{name}.{attr}")
    assert not missing, missing
